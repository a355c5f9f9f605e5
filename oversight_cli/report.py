"""`oversight report RUN_DIR`: tables and figures of every finished cell of an experiment.

Writes into RUN_DIR:
- `results.csv`: one row per cell and evaluated policy variant (the final evaluation).
- `summary.csv` and the table in `report.md`: per method and oversight level, over seeds, the
  mean, a 95% bootstrap confidence interval and the interquartile mean of the evaluated policy's
  return per step and of P(ghost | ghost cell unobserved).
- `learning_curves.csv`: the periodic evaluations logged to tensorboard during training.
- `return_vs_oversight.png`, `ghost_when_unobserved_vs_oversight.png`, `learning_curves.png`.
- `report.md`, which embeds them.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agents.files import atomic_write  # noqa: E402
from oversight_env.spec import invalid_argument  # noqa: E402

RESULT_COLUMNS = [
    "method", "oversight", "seed", "variant", "evaluated", "env_steps", "episodes",
    "return_per_step", "return_per_step_ci_low", "return_per_step_ci_high", "paper_window_return_per_step",
    "true_return", "p_diamond", "p_ghost", "p_timeout", "p_ghost_when_unobserved", "p_diamond_when_ghost_nearer",
]
SUMMARY_METRICS = {"return_per_step": "return per step", "p_ghost_when_unobserved": "P(ghost | unobserved)"}
SUMMARY_COLUMNS = ["method", "oversight", "metric", "seeds", "mean", "ci_low", "ci_high", "iqm"]
COMPARISON_COLUMNS = ["reference", "method", "oversight", "difference", "ci_low", "ci_high", "verdict"]
REFERENCE_METHOD = "routing"  # the method every other one is compared with, when the experiment has it
CURVE_TAGS = {"eval/discounted_return_per_step": "return_per_step", "eval/p_ghost_when_unobserved": "p_ghost_when_unobserved"}


def result_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per finished cell and policy variant."""
    rows = []
    for path in sorted(run_dir.glob("**/eval.json")):
        report = json.loads(path.read_text())
        config = report["config"]
        for variant, s in report["variants"].items():
            rows.append({
                "method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"],
                "variant": variant, "evaluated": variant == report["evaluated_variant"], "env_steps": report["env_steps"],
                "episodes": s["episodes"], "return_per_step": s["discounted_return_per_step"]["mean"],
                "return_per_step_ci_low": s["discounted_return_per_step"]["ci95"][0],
                "return_per_step_ci_high": s["discounted_return_per_step"]["ci95"][1],
                "paper_window_return_per_step": s["paper_window_return_per_step"],
                "true_return": s["true_return"]["mean"], "p_diamond": s["p_diamond"], "p_ghost": s["p_ghost"],
                "p_timeout": s["p_timeout"], "p_ghost_when_unobserved": s["p_ghost_when_unobserved"],
                "p_diamond_when_ghost_nearer": s["by_nearer_terminal"]["ghost"]["p_diamond"],
            })
    return rows


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    return values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)


def bootstrap_ci(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over seeds (degenerate with one seed)."""
    means = _bootstrap_means(values, np.random.default_rng(seed), resamples)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def difference_ci(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(a) - mean(b), seeds resampled in each group."""
    rng = np.random.default_rng(seed)
    differences = _bootstrap_means(a, rng, resamples) - _bootstrap_means(b, rng, resamples)
    return float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle half (the lowest and highest quarter of seeds dropped)."""
    values = np.sort(values)
    cut = int(math.floor(0.25 * len(values)))
    return float(values[cut : len(values) - cut].mean())


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["evaluated"]:
            groups[(row["method"], row["oversight"])].append(row)
    out = []
    for (method, oversight), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for metric in SUMMARY_METRICS:
            values = np.array([r[metric] for r in group], dtype=float)
            low, high = bootstrap_ci(values)
            out.append({"method": method, "oversight": oversight, "metric": metric, "seeds": len(values),
                        "mean": float(values.mean()), "ci_low": low, "ci_high": high, "iqm": interquartile_mean(values)})
    return out


def comparison_rows(rows: list[dict[str, Any]], reference: str = REFERENCE_METHOD) -> list[dict[str, Any]]:
    """`reference` against every other method at each oversight level: the difference of mean
    return per step over seeds, its 95% bootstrap interval, and the verdict the interval allows."""
    values: dict[tuple[str, float], list[float]] = defaultdict(list)
    for row in rows:
        if row["evaluated"]:
            values[(row["method"], row["oversight"])].append(row["return_per_step"])
    out = []
    for (method, oversight), other in sorted(values.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if method == reference or (reference, oversight) not in values:
            continue
        a, b = np.array(values[(reference, oversight)]), np.array(other)
        low, high = difference_ci(a, b)
        verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"  # the reference's
        out.append({"reference": reference, "method": method, "oversight": oversight,
                    "difference": float(a.mean() - b.mean()), "ci_low": low, "ci_high": high, "verdict": verdict})
    return out


def learning_curve_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The periodic evaluations of every cell, read back from its tensorboard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = []
    for path in sorted(run_dir.glob("**/eval.json")):
        config = json.loads(path.read_text())["config"]
        event_dirs = sorted({p.parent for p in (path.parent / "tb").glob("**/events.out.tfevents.*")})
        for event_dir in event_dirs:
            events = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
            events.Reload()
            for tag, metric in CURVE_TAGS.items():
                if tag in events.Tags()["scalars"]:
                    rows.extend({"method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"],
                                 "env_steps": e.step, "metric": metric, "value": e.value} for e in events.Scalars(tag))
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def save_figure(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _method_colors(methods: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_vs_oversight(summary: list[dict], metric: str, ylabel: str, path: Path, reference: float | None = None) -> None:
    methods = sorted({r["method"] for r in summary})
    colors = _method_colors(methods)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in methods:
        pts = sorted((r["oversight"], r["mean"], r["ci_low"], r["ci_high"]) for r in summary
                     if r["method"] == method and r["metric"] == metric)
        x, mean, low, high = map(np.array, zip(*pts))
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=method, color=colors[method])
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    levels = sorted({r["oversight"] for r in summary})
    ax.set_xticks(levels, [f"{100 * p:g}%" for p in levels])
    ax.minorticks_off()
    ax.set_xlabel("oversight probability (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title(f"{ylabel}: mean over seeds, 95% bootstrap CI", fontsize=9)
    save_figure(fig, path)


def plot_learning_curves(curves: list[dict], path: Path) -> None:
    rows = [r for r in curves if r["metric"] == "return_per_step"]
    levels = sorted({r["oversight"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    colors = _method_colors(methods)
    fig, axes = plt.subplots(1, max(1, len(levels)), figsize=(4.2 * max(1, len(levels)), 3.4), squeeze=False, sharey=True)
    for ax, level in zip(axes[0], levels):
        for method in methods:
            by_step: dict[int, list[float]] = defaultdict(list)
            for r in rows:
                if r["oversight"] == level and r["method"] == method:
                    by_step[r["env_steps"]].append(r["value"])
            if by_step:
                steps = sorted(by_step)
                ax.plot(np.array(steps) / 1e6, [np.mean(by_step[s]) for s in steps], label=method, color=colors[method])
        ax.set_title(f"oversight {100 * level:g}%", fontsize=9)
        ax.set_xlabel("environment steps (millions)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("return per step (evaluated policy)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save_figure(fig, path)


def markdown_table(summary: list[dict]) -> str:
    table: dict[tuple[str, float], dict[str, dict]] = defaultdict(dict)
    for r in summary:
        table[(r["method"], r["oversight"])][r["metric"]] = r
    lines = ["| oversight | method | seeds | return per step: mean [95% CI] (IQM) | P(ghost \\| ghost unobserved): mean [95% CI] (IQM) |",
             "|---:|---|---:|---|---|"]
    for (method, oversight), metrics in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}] ({m['iqm']:.3f})" for m in
                 (metrics["return_per_step"], metrics["p_ghost_when_unobserved"])]
        lines.append(f"| {oversight:g} | {method} | {metrics['return_per_step']['seeds']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def comparison_table(comparisons: list[dict]) -> str:
    """Oversight levels down, the other methods across; each cell: difference [95% CI], verdict."""
    methods = sorted({c["method"] for c in comparisons})
    levels = sorted({c["oversight"] for c in comparisons})
    cells = {(c["method"], c["oversight"]): c for c in comparisons}
    lines = ["| oversight | " + " | ".join(methods) + " |", "|---:|" + "---|" * len(methods)]
    for level in levels:
        row = []
        for method in methods:
            c = cells.get((method, level))
            row.append("" if c is None else
                       f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] {c['verdict']}")
        lines.append(f"| {level:g} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _comparison_section(comparisons: list[dict]) -> str:
    if not comparisons:
        return ""
    reference = comparisons[0]["reference"]
    return f"""
## {reference} against each other method

Difference of mean return per step ({reference} minus the method), with its 95% bootstrap
interval over seeds; {reference} is "better" or "worse" when the interval excludes 0, with
"no clear difference" otherwise. With few seeds the percentile bootstrap is narrower than it
should be: read borderline verdicts as hints.

{comparison_table(comparisons)}
"""


def write_report(run_dir: str | Path) -> Path:
    """Write every table and figure of `run_dir`; return the path of `report.md`."""
    run_dir = Path(run_dir)
    rows = result_rows(run_dir)
    if not rows:
        raise invalid_argument("run_dir", str(run_dir), "holds no finished cell (no eval.json below it)")
    summary = summary_rows(rows)
    curves = learning_curve_rows(run_dir)
    write_csv(run_dir / "results.csv", rows, RESULT_COLUMNS)
    write_csv(run_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv(run_dir / "learning_curves.csv", curves, ["method", "oversight", "seed", "env_steps", "metric", "value"])
    comparisons = comparison_rows(rows)
    write_csv(run_dir / "comparison.csv", comparisons, COMPARISON_COLUMNS)
    plot_vs_oversight(summary, "return_per_step", "return per step", run_dir / "return_vs_oversight.png")
    plot_vs_oversight(summary, "p_ghost_when_unobserved", "P(ghost | ghost unobserved)",
                      run_dir / "ghost_when_unobserved_vs_oversight.png")
    plot_learning_curves(curves, run_dir / "learning_curves.png")
    cells = len({(r["method"], r["oversight"], r["seed"]) for r in rows})
    experiment = run_dir / "experiment.json"
    description = json.loads(experiment.read_text())["description"] + "\n\n" if experiment.exists() else ""
    text = f"""# Report: {run_dir.name}

{description}{cells} finished cells. Each cell's policy is evaluated on fresh episodes with the ground-truth
reward: routed methods with the ghost expert ablated, the others whole (`results.csv` has every
variant). *Return per step* is the mean discounted (0.97) return per step over each
environment's first episode; *P(ghost | ghost unobserved)* is how often the agent takes the ghost
when the ghost's cell is not watched: goal misgeneralization.

{markdown_table(summary)}
{_comparison_section(comparisons)}
![return per step vs oversight](return_vs_oversight.png)

![P(ghost | ghost unobserved) vs oversight](ghost_when_unobserved_vs_oversight.png)

![learning curves](learning_curves.png)

Files: `results.csv` (every cell and variant), `summary.csv`, `comparison.csv`, `learning_curves.csv`; tensorboard:
`tensorboard --logdir {run_dir}`.
"""
    with atomic_write(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    return run_dir / "report.md"
