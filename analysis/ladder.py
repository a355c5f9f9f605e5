"""`oversight ladder RUN_DIR... --out DIR`: each method's result as the training budget grows.

A sweep's experiment has one budget and one learning rate (`runs/ladder_*.toml`, one per rung);
the ladder draws several experiments together at one oversight level. Cells are grouped by
learning rate, method and budget (their `steps`), pooled over seeds; the cells may differ in
nothing else (another environment or setting would make the rungs incomparable). An experiment
whose cells are gone is read from its tracked `results_tidy.csv`, with the settings its
`experiment.json` records.

Writes into DIR:
- `ladder.csv`: per learning rate, method and budget, over seeds, the mean and the interquartile
  mean of the evaluated policy's return per step and of P(proxy | proxy unobserved), each with
  a 95% bootstrap interval.
- `ladder.png`: both against the budget, one column per learning rate.
- `ladder.md`: the table and the figure.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.files import atomic_write, write_csv
from analysis.figures import method_colors, save_figure
from agents.run_dir import read_json
from analysis.loading import POOLED_OVER, check_poolable, read_cells, result_rows
from analysis.metrics import HEADLINE, METRICS
from analysis.statistics import RESAMPLES, format_interval
from analysis.tables import summary_rows
from analysis.tidy import TIDY, read_tidy
from oversight_env.spec import invalid_argument

RUNG_SETTINGS = ("steps", "learning_rate")  # what the rungs of a ladder may differ in, besides the pooled
LADDER_COLUMNS = ["learning_rate", "method", "steps", "metric", "seeds", "mean", "ci_low", "ci_high", "iqm",
                  "iqm_ci_low", "iqm_ci_high"]


Rung = dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]  # cell -> (its config, its result rows)


def rung_cells(run_dir: Path, from_table: bool = False) -> Rung:
    """The finished cells of one experiment: each one's config and result rows, read from the cells,
    or, where they are gone (or `from_table`), from the tracked tidy table and the settings
    `experiment.json` says every cell shared."""
    cells = {} if from_table else read_cells(run_dir)[0]
    if cells:
        return {f"{run_dir.as_posix()}/{cell}": (report["config"], result_rows({cell: report})) for cell, report in cells.items()}
    record = read_json(run_dir / "experiment.json") if (run_dir / "experiment.json").exists() else {}
    if not (run_dir / TIDY).exists() or "config" not in record:
        raise invalid_argument("run_dir", str(run_dir), "holds no finished cell (no readable eval.json below it), nor a "
                               f"{TIDY} with an experiment.json that records its settings")
    found: Rung = {}
    for row in read_tidy(run_dir / TIDY)[0]:
        cell = f"{run_dir.as_posix()}/{row['method']}/p{row['oversight']:g}/s{row['seed']}"
        config = {**record["config"], "method": row["method"], "oversight_prob": row["oversight"], "seed": row["seed"]}
        found.setdefault(cell, (config, []))[1].append(row)
    return found


def read_ladder(run_dirs: list[Path], oversight: float | None, seeds: list[int] | None = None,
                from_tables: bool = False) -> tuple[Rung, float]:
    """The finished cells of every run directory at one oversight level (the only one they have
    when `oversight` is None), keyed `<run dir>/<cell>`, and that level; only the cells of `seeds`
    when given (so that every rung is measured on the same seeds)."""
    finished: Rung = {}
    for run_dir in run_dirs:
        if not Path(run_dir).is_dir():
            raise invalid_argument("run_dir", str(run_dir), "no such directory")
        finished.update(rung_cells(Path(run_dir), from_tables))
    levels = sorted({config["oversight_prob"] for config, _ in finished.values()})
    if oversight is None:
        if len(levels) > 1:
            raise invalid_argument("oversight", None, f"the cells have several levels {levels}: choose one with --oversight")
        oversight = levels[0]
    if oversight not in levels:
        raise invalid_argument("oversight", oversight, f"no finished cell has it; the cells' levels: {levels}")
    at_level = {cell: entry for cell, entry in finished.items() if entry[0]["oversight_prob"] == oversight}
    if seeds is not None:
        have = sorted({config["seed"] for config, _ in at_level.values()})
        if not set(seeds) <= set(have):
            raise invalid_argument("seeds", seeds, f"no finished cell at this level has seed(s) "
                                   f"{sorted(set(seeds) - set(have))}; the cells' seeds: {have}")
        at_level = {cell: entry for cell, entry in at_level.items() if entry[0]["seed"] in seeds}
    return at_level, oversight


def ladder_rows(finished: Rung) -> list[dict[str, Any]]:
    """`summary_rows` per learning rate and budget: one row per (learning rate, method, budget, metric)."""
    by_rung: dict[tuple[float, int], list[dict[str, Any]]] = defaultdict(list)
    for config, rows in finished.values():
        by_rung[(config["learning_rate"], config["steps"])].extend(rows)
    rows = []
    for (learning_rate, steps), results in by_rung.items():
        for row in summary_rows(results):
            del row["oversight"]
            rows.append({"learning_rate": learning_rate, "steps": steps, **row})
    return sorted(rows, key=lambda r: (r["learning_rate"], r["method"], r["steps"], r["metric"]))


def plot_ladder(rows: list[dict[str, Any]], path: Path) -> None:
    """Mean over seeds with its 95% interval against the budget (log scale): a row per metric, a
    column per learning rate."""
    rates = sorted({r["learning_rate"] for r in rows}, reverse=True)
    colors = method_colors(sorted({r["method"] for r in rows}))
    fig, axes = plt.subplots(len(HEADLINE), len(rates), figsize=(4.6 * len(rates), 3.3 * len(HEADLINE)),
                             squeeze=False, sharex=True, sharey="row")
    for column, rate in enumerate(rates):
        for line, metric in enumerate(HEADLINE):
            label = METRICS[metric].label
            ax = axes[line][column]
            for method, color in colors.items():
                pts = sorted((r["steps"], r["mean"], r["ci_low"], r["ci_high"]) for r in rows
                             if r["learning_rate"] == rate and r["method"] == method and r["metric"] == metric)
                if pts:
                    x, mean, low, high = map(np.array, zip(*pts))
                    ax.errorbar(x / 1e6, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=method,
                                color=color)
            ax.set_xscale("log")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if line == 0:
                ax.set_title(f"learning rate {rate:g}", fontsize=9)
        axes[-1][column].set_xlabel("environment steps (millions, log scale)")
    budgets = sorted({r["steps"] for r in rows})
    for ax in axes[-1]:
        ax.set_xticks([b / 1e6 for b in budgets], [f"{b / 1e6:g}" for b in budgets])
        ax.minorticks_off()
    handles = {}  # every method drawn in any column (a method may be missing at one learning rate)
    for ax in axes.flat:
        ax_handles, ax_labels = ax.get_legend_handles_labels()
        handles.update(zip(ax_labels, ax_handles))
    axes[0][-1].legend([handles[m] for m in colors if m in handles], [m for m in colors if m in handles], fontsize=7,
                       loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("mean over seeds, 95% bootstrap CI", fontsize=9)
    save_figure(fig, path)


def ladder_table(rows: list[dict[str, Any]]) -> str:
    table: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        table[(r["learning_rate"], r["method"], r["steps"])][r["metric"]] = r
    header = ("| learning rate | method | steps | seeds | return per step: mean [95% CI] "
              "| P(proxy \\| proxy unobserved): mean [95% CI] |")
    lines = [header, "|---:|---|---:|---:|---|---|"]
    for (rate, method, steps), metrics in sorted(table.items(), key=lambda kv: (-kv[0][0], kv[0][1], kv[0][2])):
        cells = [f"{m['mean']:.3f} {format_interval(m['ci_low'], m['ci_high'])}"
                 for m in (metrics["return_per_step"], metrics["p_proxy_when_unobserved"])]
        lines.append(f"| {rate:g} | {method} | {steps / 1e6:g}M | {metrics['return_per_step']['seeds']} | "
                     f"{cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def write_ladder(run_dirs: list[str | Path], out: str | Path, oversight: float | None = None,
                 seeds: list[int] | None = None) -> Path:
    """Write the ladder of `run_dirs` at `oversight` (only `seeds`, when given) into `out`; return
    the path of `ladder.md`."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise invalid_argument("run_dirs", [], "expected at least one experiment directory")
    finished, oversight = read_ladder(run_dirs, oversight, seeds)
    check_poolable(" ".join(d.as_posix() for d in run_dirs), {cell: {"config": config} for cell, (config, _) in finished.items()},
                   POOLED_OVER | set(RUNG_SETTINGS), "run_dirs")
    rows = ladder_rows(finished)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "ladder.csv", rows, LADDER_COLUMNS)
    plot_ladder(rows, out / "ladder.png")
    sources = "\n".join(f"- `{d}`" for d in run_dirs)
    seeds_note = "" if seeds is None else f" (seeds {', '.join(map(str, sorted(set(seeds))))} only)"
    text = f"""# Budget ladder at {100 * oversight:g}% oversight

{len(finished)} finished cells{seeds_note} from:
{sources}

Per learning rate, method and budget, over seeds (n in its column): the evaluated policy's
return per step (routed methods with the proxy expert ablated) and P(proxy | proxy unobserved),
each the mean with its 95% percentile bootstrap interval ({RESAMPLES:,} resamples of the seeds).
`ladder.csv` also has the interquartile means. Each rung is a run of its own budget (the entropy
bonus decays over the whole run), not a point on a longer run's learning curve.

{ladder_table(rows)}

![the ladder](ladder.png)
"""
    with atomic_write(out / "ladder.md") as tmp:
        tmp.write_text(text)
    return out / "ladder.md"
