"""`oversight report RUN_DIR`: tables and figures of every finished cell of an experiment.

Writes into RUN_DIR:
- `results.csv`: one row per cell and evaluated policy variant (the final evaluation).
- `summary.csv` and the table in `report.md`: per method and oversight level, over seeds, the
  mean and the interquartile mean, each with a 95% bootstrap confidence interval, of the evaluated policy's
  return per step and of P(proxy | proxy cell unobserved).
- `learning_curves.csv`: the periodic evaluations logged during training, read from each cell's
  `metrics.jsonl` (`agents.logger`; `curves.json` in cells tracked before it), never from
  tensorboard's event files.
- `diagnostics.csv` and tables in `report.md`: do a routed network's experts separate (the gate
  on each route's samples, the KL between the two experts' policies, the labelled episodes each
  expert saw) at the end of training; how accurate a learned reward model is, on held-out
  overseen endings and on unobserved ones.
- `comparison.csv` and a table: routing against each other method, per oversight level and over
  all levels: the difference of means and the probability of improvement, with intervals
  (`analysis.statistics`: stratified bootstrap, as rliable recommends).
- `return_vs_oversight.png`, `proxy_when_unobserved_vs_oversight.png`, `learning_curves.png`,
  `performance_profile.png`, and `episode_<method>.png`: one episode of each method's policy.
- `report.md`, which embeds them, and lists the expected cells that have not finished (the sweep's
  `experiment.json` names every cell) and the cells whose learning curves are incomplete.

A report pools seeds: it refuses cells that differ in anything but method, oversight level and
seed (another environment, budget or setting), and two cells of the same method, level and seed.
An experiment of several environments (`[[envs]]`) gets this report in each environment's
directory and an index `report.md` above them (`write_index`): their tables, one panel per
environment (`environments.png`) and, with `oracle_all_labels` runs, the aggregate over
environments (`aggregate.csv`, `aggregate.png`).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.files import atomic_write, write_csv
from agents.config import SETTINGS_ADDED_LATER
from agents.legacy_names import modern_keys
from agents.logger import METRICS, read_metrics
from agents.methods import reads_true_rewards, report_reference
from agents.run_dir import (
    CHECKPOINT,
    CONFIG,
    EVALUATION,
    SB3_CHECKPOINT,
    read_evaluation,
    read_json,
)
from analysis.figures import method_colors, save_figure
from analysis.statistics import (
    MIN_RUNS,
    RESAMPLES,
    format_interval,
    interquartile_mean,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)
from analysis.sweep_log import sweep_log_text
from analysis.tidy import TIDY, read_tidy, tidy_rows, write_tidy
from oversight_env.spec import invalid_argument

RESULT_COLUMNS = [
    "method", "oversight", "seed", "variant", "evaluated", "env_steps", "episodes",
    "return_per_step", "return_per_step_ci_low", "return_per_step_ci_high", "paper_window_return_per_step",
    "true_return", "p_intended", "p_proxy", "p_timeout", "p_proxy_when_unobserved", "p_intended_when_proxy_nearer",
    "test_return_per_step", "test_p_proxy_when_unobserved",
]
SUMMARY_METRICS = {"return_per_step": "return per step", "p_proxy_when_unobserved": "P(proxy | unobserved)"}
# The same under the test placement, summarised when the environment has a train/test shift.
TEST_METRICS = {"test_return_per_step": "return per step", "test_p_proxy_when_unobserved": "P(proxy | unobserved)"}
SUMMARY_COLUMNS = ["method", "oversight", "metric", "seeds", "mean", "ci_low", "ci_high", "iqm", "iqm_ci_low", "iqm_ci_high"]
COMPARISON_COLUMNS = ["reference", "method", "oversight", "difference", "ci_low", "ci_high", "verdict",
                      "p_improvement", "p_improvement_ci_low", "p_improvement_ci_high"]
ALL_LEVELS = "all"  # the comparison row over every oversight level (each level a stratum)
CURVES = "curves.json"  # learning curves and diagnostics of cells tracked before runs wrote metrics.jsonl
CURVE_TAGS = {"eval/discounted_return_per_step": "return_per_step", "eval/p_proxy_when_unobserved": "p_proxy_when_unobserved"}
# Do a routed network's experts separate? Per-update tags (the gate on each route's training
# samples) are averaged over the last tenth of the run; per-evaluation tags are the last value.
PER_UPDATE_DIAGNOSTICS = {"gate/intended_labelled": "gate_on_intended_labelled", "gate/proxy_labelled": "gate_on_proxy_labelled",
                          "gate/unlabelled": "gate_on_unlabelled"}
PER_EVALUATION_DIAGNOSTICS = {"eval/gate_intended_unobserved": "gate_on_unobserved_intended_episodes",
                              "eval/gate_proxy_unobserved": "gate_on_unobserved_proxy_episodes",
                              "eval/expert_kl": "expert_kl", "route/labelled_episodes_intended": "labelled_episodes_intended",
                              "route/labelled_episodes_proxy": "labelled_episodes_proxy"}
# The reward model of `reward_model` and `routing_reward_model` (agents.reward_model), at the last evaluation.
REWARD_MODEL_DIAGNOSTICS = {"reward_model/heldout_accuracy": "model_heldout_accuracy",
                            "reward_model/unobserved_accuracy": "model_unobserved_accuracy",
                            "reward_model/labelled_episodes": "model_labelled_episodes",
                            "reward_model/episodes_labelled_by_the_model": "episodes_labelled_by_the_model"}
DIAGNOSTIC_COLUMNS = ["method", "oversight", "seed", "metric", "value"]
# What the cells of one report may differ in; anything else (environment, budget, settings) would
# pool incomparable runs as if they were seeds of one.
POOLED_OVER = frozenset({"method", "oversight_prob", "seed"})

Evaluations = dict[str, dict[str, Any]]  # cell directory, relative to the experiment's -> its eval.json


def read_cells(run_dir: Path) -> tuple[Evaluations, dict[str, str]]:
    """The final evaluation of every finished cell below `run_dir`, and the one-line error of each
    cell whose eval.json cannot be read (naming the file), both by cell directory."""
    finished, unreadable = {}, {}
    for path in sorted(run_dir.glob(f"**/{EVALUATION}")):
        cell = path.parent.relative_to(run_dir).as_posix()
        try:
            report = read_evaluation(path.parent)
            if not isinstance(report["config"], dict) or not POOLED_OVER <= set(report["config"]):
                raise ValueError(f"file={str(path)!r} is invalid: its config lacks {sorted(POOLED_OVER)}")
            finished[cell] = report
        except ValueError as error:
            unreadable[cell] = str(error)
    return finished, unreadable


_SETTING_NAMES = {"oversight_prob": "oversight", "learning_rate": "learning rate"}


def _describe(config: dict[str, Any], settings: list[str]) -> str:
    """E.g. "method naive, oversight 0.2, seed 0": the values of `settings` in `config`."""
    return ", ".join(f"{_SETTING_NAMES.get(s, s)} {config.get(s):{'g' if isinstance(config.get(s), float) else ''}}"
                     for s in settings)


def check_poolable(
    run_dir: Path | str, finished: Evaluations, pooled_over: frozenset[str] = POOLED_OVER, argument: str = "run_dir"
) -> None:
    """Refuse cells that differ in a setting outside `pooled_over` (by default: method, oversight
    and seed), and two cells with the same values of `pooled_over`: pooled as seeds, either would
    make the numbers lie. A setting one cell lacks and another has is a difference too, whichever
    comes first."""
    order = ["method", "oversight_prob", "seed", *sorted(pooled_over - POOLED_OVER)]
    settings = sorted({s for report in finished.values() for s in report["config"]})  # the union over every cell
    first: dict[str, tuple[str, Any]] = {}  # setting -> (the first cell, its value)
    seen: dict[tuple, str] = {}
    for cell, report in finished.items():
        config = report["config"]
        key = tuple(repr(config.get(s)) for s in order)
        if key in seen:
            raise invalid_argument(argument, str(run_dir), f"cells {seen[key]} and {cell} are both "
                                   f"{_describe(config, order)}; move one out to report the other")
        seen[key] = cell
        for setting in settings:
            if setting in pooled_over:
                continue
            value = config.get(setting, SETTINGS_ADDED_LATER.get(setting, "(unset)"))  # added since: its old value
            other, expected = first.setdefault(setting, (cell, value))
            if value != expected:
                differ_only = ", ".join(_SETTING_NAMES.get(s, s) for s in order)
                raise invalid_argument(argument, str(run_dir), f"its cells differ in {setting} ({other}: {expected!r}, "
                                       f"{cell}: {value!r}); a report pools cells that differ only in {differ_only}: "
                                       "report each setting's cells from a directory of their own")


def missing_cells(run_dir: Path, finished: Evaluations, unreadable: dict[str, str]) -> list[str]:
    """One line per cell that the sweep's `experiment.json` expects and that has no readable
    eval.json (saying how far it got), and per other cell whose eval.json cannot be read."""
    experiment = run_dir / "experiment.json"
    expected = read_json(experiment).get("cells", []) if experiment.exists() else []
    lines = []
    for cell in expected:
        path = cell["path"]
        if path in finished:
            continue
        what = f"{path} (method {cell['method']}, oversight {cell['oversight']:g}, seed {cell['seed']})"
        lines.append(f"{what}: {unreadable.get(path) or _progress(run_dir / path)}")
    named = {cell["path"] for cell in expected}
    lines += [f"{path}: {error}" for path, error in unreadable.items() if path not in named]
    return lines


def _progress(cell_dir: Path) -> str:
    if _has_checkpoint(cell_dir):
        return "part-way (it has a checkpoint; the sweep resumes it)"
    if (cell_dir / CONFIG).exists():
        return "started, no checkpoint yet"
    return "not started"


def result_rows(finished: Evaluations) -> list[dict[str, Any]]:
    """One row per finished cell and policy variant."""
    rows = []
    for report in finished.values():
        config = report["config"]
        for variant, s in report["variants"].items():
            rows.append({
                "method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"],
                "variant": variant, "evaluated": variant == report["evaluated_variant"], "env_steps": report["env_steps"],
                "episodes": s["episodes"], "return_per_step": s["discounted_return_per_step"]["mean"],
                "return_per_step_ci_low": s["discounted_return_per_step"]["ci95"][0],
                "return_per_step_ci_high": s["discounted_return_per_step"]["ci95"][1],
                "paper_window_return_per_step": s["paper_window_return_per_step"],
                "true_return": s["true_return"]["mean"], "p_intended": s["p_intended"], "p_proxy": s["p_proxy"],
                "p_timeout": s["p_timeout"], "p_proxy_when_unobserved": s["p_proxy_when_unobserved"],
                "p_intended_when_proxy_nearer": s["by_nearer_terminal"]["proxy"]["p_intended"],
                # Under the test placement, in an environment with a train/test shift (NaN otherwise).
                "test_return_per_step": s.get("test_placement", {}).get("discounted_return_per_step", {}).get("mean", math.nan),
                "test_p_proxy_when_unobserved": s.get("test_placement", {}).get("p_proxy_when_unobserved", math.nan),
            })
    return rows


def bootstrap_ci(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over seeds (degenerate with one seed)."""
    return stratified_bootstrap_ci([values], lambda g: g[0].mean(-1), resamples, seed)


def difference_ci(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(a) - mean(b), seeds resampled in each group."""
    return stratified_bootstrap_ci([a, b], lambda g: g[0].mean(-1) - g[1].mean(-1), resamples, seed)


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["evaluated"]:
            groups[(row["method"], row["oversight"])].append(row)
    metrics = [*SUMMARY_METRICS, *(m for m in TEST_METRICS if any(not math.isnan(r[m]) for g in groups.values() for r in g))]
    out = []
    for (method, oversight), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for metric in metrics:
            values = np.array([r[metric] for r in group], dtype=float)
            low, high = bootstrap_ci(values)
            iqm_low, iqm_high = stratified_bootstrap_ci([values], lambda g: interquartile_mean(g[0]))
            out.append({"method": method, "oversight": oversight, "metric": metric, "seeds": len(values),
                        "mean": float(values.mean()), "ci_low": low, "ci_high": high,
                        "iqm": float(interquartile_mean(values)), "iqm_ci_low": iqm_low, "iqm_ci_high": iqm_high})
    return out


def comparison_rows(rows: list[dict[str, Any]], reference: str | None = None) -> list[dict[str, Any]]:
    """`reference` against every other method at each oversight level: the difference of mean
    return per step over seeds, its 95% bootstrap interval and the verdict the interval allows,
    and the probability of improvement (a run of `reference` scoring above a run of the method)
    with its interval. Per method, one more row (oversight `ALL_LEVELS`) holds the probability
    of improvement over every level both have, each level a stratum of the bootstrap. `reference`
    None: the methods' own report reference (`agents.methods.report_reference`), if any."""
    values: dict[tuple[str, float], np.ndarray] = {}
    for row in rows:
        if row["evaluated"]:
            key = (row["method"], row["oversight"])
            values[key] = np.append(values.get(key, np.array([])), row["return_per_step"])
    reference = reference or report_reference(sorted({method for method, _ in values}))
    out = []
    for (method, oversight), b in sorted(values.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if method == reference or (reference, oversight) not in values:
            continue
        a = values[(reference, oversight)]
        low, high = difference_ci(a, b)
        verdict = ("too few seeds" if math.isnan(low) else  # the reference's
                   "better" if low > 0 else "worse" if high < 0 else "no clear difference")
        out.append({"reference": reference, "method": method, "oversight": oversight,
                    "difference": float(a.mean() - b.mean()), "ci_low": low, "ci_high": high, "verdict": verdict,
                    **_improvement([a], [b])})
    for method in sorted({r["method"] for r in out}):
        levels = [r["oversight"] for r in out if r["method"] == method]
        if len(levels) > 1:
            out.append({"reference": reference, "method": method, "oversight": ALL_LEVELS, "difference": math.nan,
                        "ci_low": math.nan, "ci_high": math.nan, "verdict": "",
                        **_improvement([values[(reference, p)] for p in levels], [values[(method, p)] for p in levels])})
    return out


def _improvement(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    low, high = probability_of_improvement_ci(a, b)
    return {"p_improvement": float(probability_of_improvement(a, b)), "p_improvement_ci_low": low,
            "p_improvement_ci_high": high}


def learning_curve_rows(
    run_dir: Path, finished: Evaluations
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """From every finished cell's `metrics.jsonl` (or, for results tracked before it existed, its
    `curves.json`; see `cell_curves`): its periodic evaluations (learning curves), its separation
    diagnostics at the end of training (`diagnostic_values`), and one line per cell whose rows are
    missing or damaged (its curve would be cut short)."""
    rows, diagnostics, incomplete = [], [], []
    for cell, report in finished.items():
        config = report["config"]
        key = {"method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"]}
        curves, problems = cell_curves(run_dir / cell)
        incomplete += [f"{cell}: {problem}" for problem in problems]
        rows.extend({**key, "env_steps": step, "metric": metric, "value": value}
                    for metric, points in curves["curves"].items() for step, value in points)
        diagnostics.extend({**key, "metric": metric, "value": value} for metric, value in curves["diagnostics"].items())
    return rows, diagnostics, incomplete


def cell_curves(cell_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """What a finished cell's logged rows give the report, `{"curves": {metric: [[step, value],
    ...]}, "diagnostics": {metric: value}}`, and what is wrong with them (one phrase per problem).

    Read from `metrics.jsonl` (`agents.logger`); a cell tracked before runs wrote it (`runs/zoo`)
    keeps the same in `curves.json`. Tensorboard's event files are for looking at, never read here."""
    metrics = cell_dir / METRICS
    if metrics.exists():
        rows, problems = read_metrics(metrics)
        return curves_from_rows(rows), problems
    saved = cell_dir / CURVES
    if saved.exists():
        curves = _saved_curves(saved)
        return (curves, []) if curves is not None else ({"curves": {}, "diagnostics": {}}, [f"{CURVES} is damaged"])
    return {"curves": {}, "diagnostics": {}}, [f"no {METRICS} (a run from before it was written keeps its curves "
                                               "only in tensorboard events, which reports do not read)"]


def curves_from_rows(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The learning curves and end-of-training diagnostics in a run's rows (`{"step", "tag", "value"}`)."""
    points: dict[str, list[list[float]]] = defaultdict(list)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    diagnostic_tags = {*PER_UPDATE_DIAGNOSTICS, *PER_EVALUATION_DIAGNOSTICS, *REWARD_MODEL_DIAGNOSTICS}
    for row in rows:
        if row["tag"] in CURVE_TAGS:
            points[CURVE_TAGS[row["tag"]]].append([row["step"], row["value"]])
        if row["tag"] in diagnostic_tags:
            series[row["tag"]].append((row["step"], row["value"]))
    return {"curves": {metric: sorted(p) for metric, p in points.items()}, "diagnostics": diagnostic_values(series)}


def _saved_curves(saved: Path) -> dict[str, Any] | None:
    """A tracked `curves.json`'s curves and diagnostics (None when it is damaged)."""
    try:
        curves = read_json(saved)
    except ValueError:
        return None
    if not (isinstance(curves, dict) and isinstance(curves.get("curves"), dict)
            and isinstance(curves.get("diagnostics"), dict)):
        return None
    return modern_keys({"curves": curves["curves"], "diagnostics": curves["diagnostics"]})


def diagnostic_values(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The end-of-training value of each separation diagnostic in `series` (tag -> (step, value)
    pairs): per-update tags averaged over the last tenth of the run, per-evaluation tags (the
    reward model's among them) the last."""
    values = {}
    for tag, metric in PER_UPDATE_DIAGNOSTICS.items():
        if series.get(tag):
            end = max(step for step, _ in series[tag])
            values[metric] = float(np.mean([v for step, v in series[tag] if step >= 0.9 * end]))
    for tag, metric in {**PER_EVALUATION_DIAGNOSTICS, **REWARD_MODEL_DIAGNOSTICS}.items():
        if series.get(tag):
            values[metric] = max(series[tag])[1]
    return values


def _values_by_method_and_level(diagnostics: list[dict[str, Any]],
                                metrics: Iterable[str]) -> dict[tuple[str, float], dict[str, list[float]]]:
    """The diagnostics' values of `metrics` (one per seed), by (method, oversight level), sorted by
    level, then method."""
    wanted = set(metrics)
    table: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in diagnostics:
        if r["metric"] in wanted:
            table[(r["method"], r["oversight"])][r["metric"]].append(r["value"])
    return dict(sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def diagnostics_table(diagnostics: list[dict[str, Any]]) -> str:
    """Per method and oversight level, the mean over seeds of each diagnostic (routed methods only)."""
    metrics = [*PER_UPDATE_DIAGNOSTICS.values(), *PER_EVALUATION_DIAGNOSTICS.values()]
    table = _values_by_method_and_level(diagnostics, metrics)
    header = ("| oversight | method | seeds | gate on intended-labelled | gate on proxy-labelled | gate on unlabelled "
              "| gate, unobserved intended episodes | gate, unobserved proxy episodes "
              "| KL(intended-only, proxy-only) | labelled episodes: intended | proxy |")
    lines = [header, "|---:|---|---:" + "|---:" * len(metrics) + "|"]
    for (method, oversight), values in table.items():
        if "expert_kl" not in values:
            continue  # a single network: nothing to separate
        cells = [f"{np.mean(values[m]):.3g}" if values.get(m) else "" for m in metrics]
        lines.append(f"| {oversight:g} | {method} | {len(values['expert_kl'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def reward_model_table(diagnostics: list[dict[str, Any]]) -> str:
    """Per method and oversight level, the mean over seeds of each reward-model diagnostic (the
    methods with a reward model only)."""
    table = _values_by_method_and_level(diagnostics, REWARD_MODEL_DIAGNOSTICS.values())
    header = ("| oversight | method | seeds | accuracy, held-out overseen endings | accuracy, unobserved endings "
              "| overseen endings learned from | unobserved episodes it labelled |")
    lines = [header, "|---:|---|---:|---:|---:|---:|---:|"]
    for (method, oversight), values in table.items():
        seeds = max(len(v) for v in values.values())
        cells = [f"{np.mean(values[m]):.3g}" if values.get(m) else "" for m in REWARD_MODEL_DIAGNOSTICS.values()]
        lines.append(f"| {oversight:g} | {method} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_vs_oversight(summary: list[dict], metric: str, ylabel: str, path: Path, reference: float | None = None) -> None:
    methods = sorted({r["method"] for r in summary})
    colors = method_colors(methods)
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
    colors = method_colors(methods)
    fig, axes = plt.subplots(1, max(1, len(levels)), figsize=(4.2 * max(1, len(levels)), 3.4), squeeze=False, sharey=True)
    for ax, level in zip(axes[0], levels):
        for method in methods:
            by_step: dict[int, list[float]] = defaultdict(list)
            for r in rows:
                if r["oversight"] == level and r["method"] == method:
                    by_step[r["env_steps"]].append(r["value"])
            if by_step:
                steps = sorted(by_step)
                ax.plot(np.array(steps) / 1e6, [np.mean(by_step[s]) for s in steps], label=method, color=colors[method],
                        marker="o", markersize=3)  # a single point (the oracle at low oversight) shows too
        ax.set_title(f"oversight {100 * level:g}%", fontsize=9)
        ax.set_xlabel("environment steps (millions)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("return per step (evaluated policy)")
    if rows:
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save_figure(fig, path)


def plot_performance_profile(rows: list[dict[str, Any]], path: Path, band_resamples: int = 2_000) -> None:
    """Per method, the fraction of its runs (every oversight level and seed) whose evaluated
    return per step exceeds each threshold, with a 95% bootstrap band (levels as strata)."""
    evaluated = [r for r in rows if r["evaluated"]]
    methods = sorted({r["method"] for r in evaluated})
    colors = method_colors(methods)
    scores = np.array([r["return_per_step"] for r in evaluated], dtype=float)
    thresholds = np.linspace(scores.min(), scores.max(), 101) if len(scores) else np.zeros(1)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in methods:
        by_level: dict[float, list[float]] = defaultdict(list)
        for r in evaluated:
            if r["method"] == method:
                by_level[r["oversight"]].append(r["return_per_step"])
        groups = [np.array(v) for v in by_level.values()]
        runs = sum(len(g) for g in groups)

        def fraction_above(g: list[np.ndarray], tau: float, runs: int = runs) -> np.ndarray:
            return sum((x > tau).sum(-1) for x in g) / runs

        profile = performance_profile(np.concatenate(groups), thresholds)
        band = np.array([stratified_bootstrap_ci(groups, lambda g, t=t: fraction_above(g, t), band_resamples)
                         for t in thresholds])
        ax.plot(thresholds, profile, color=colors[method], label=f"{method} (n={runs})")
        ax.fill_between(thresholds, band[:, 0], band[:, 1], color=colors[method], alpha=0.15)
    ax.set_xlabel("return per step (evaluated policy) τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.locator_params(axis="x", nbins=6)
    ax.set_title("performance profile, every level and seed; 95% stratified bootstrap bands", fontsize=9)
    save_figure(fig, path)


def markdown_table(summary: list[dict], metrics: tuple[str, str] = ("return_per_step", "p_proxy_when_unobserved")) -> str:
    """Per oversight level and method: the two `metrics`, mean and IQM with their intervals."""
    table: dict[tuple[str, float], dict[str, dict]] = defaultdict(dict)
    for r in summary:
        if r["metric"] in metrics:
            table[(r["method"], r["oversight"])][r["metric"].removeprefix("test_")] = r
    header = ("| oversight | method | seeds | return per step: mean [95% CI] / IQM [95% CI] "
              "| P(proxy \\| proxy unobserved): mean [95% CI] / IQM [95% CI] |")
    lines = [header, "|---:|---|---:|---|---|"]
    for (method, oversight), row in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [f"{m['mean']:.3f} {format_interval(m['ci_low'], m['ci_high'])} / {m['iqm']:.3f} "
                 f"{format_interval(m['iqm_ci_low'], m['iqm_ci_high'])}" for m in (row["return_per_step"], row["p_proxy_when_unobserved"])]
        lines.append(f"| {oversight:g} | {method} | {row['return_per_step']['seeds']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def overview_table(summaries: dict[str, list[dict]]) -> str:
    """Every method's mean return per step / mean P(proxy | unobserved) over seeds, one column per
    environment and oversight level (each environment's `summary_rows`; an environment with a
    test placement (`TEST_METRICS`) shown under it, marked *test*), the best mean return of a
    column in bold among the methods that see no more labels than the others (not the oracles)."""
    columns, cells, methods = [], {}, {}
    for env, summary in summaries.items():
        test = any(r["metric"] in TEST_METRICS for r in summary)
        ret, proxy = list(TEST_METRICS if test else SUMMARY_METRICS)  # the return's and P(proxy)'s names
        for level in sorted({r["oversight"] for r in summary}):
            column = (env, level, test)
            columns.append(column)
            for r in summary:
                if r["oversight"] == level and r["metric"] in (ret, proxy):
                    methods.setdefault(r["method"], None)
                    cells.setdefault((r["method"], column), {})["return" if r["metric"] == ret else "proxy"] = r["mean"]
    best = {}
    for column in columns:
        returns = [cells[(m, column)]["return"] for m in methods if (m, column) in cells and not reads_true_rewards(m)]
        best[column] = max(returns, default=math.nan)
    lines = ["| method | " + " | ".join(f"{env} {level:g}{' *test*' if test else ''}" for env, level, test in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for method in methods:
        row = []
        for column in columns:
            values = cells.get((method, column))
            if values is None:
                row.append("")
                continue
            ret = f"{values['return']:.3f}"
            if values["return"] == best[column] and not reads_true_rewards(method):
                ret = f"**{ret}**"
            row.append(f"{ret} / {values['proxy']:.2f}")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def comparison_table(comparisons: list[dict]) -> str:
    """Oversight levels down (then all levels together), the other methods across; each cell: the
    difference [95% CI] and its verdict, then the probability of improvement [95% CI]."""
    methods = sorted({c["method"] for c in comparisons})
    levels = sorted({c["oversight"] for c in comparisons if c["oversight"] != ALL_LEVELS})
    cells = {(c["method"], c["oversight"]): c for c in comparisons}
    lines = ["| oversight | " + " | ".join(methods) + " |", "|---:|" + "---|" * len(methods)]
    for level in [*levels, ALL_LEVELS]:
        row = []
        for method in methods:
            c = cells.get((method, level))
            improvement = "" if c is None else (f"P(>) {c['p_improvement']:.2f} "
                                                f"{format_interval(c['p_improvement_ci_low'], c['p_improvement_ci_high'], '{:.2f}')}")
            row.append("" if c is None else improvement if level == ALL_LEVELS else
                       f"{c['difference']:+.3f} {format_interval(c['ci_low'], c['ci_high'], '{:+.3f}')} {c['verdict']}; "
                       f"{improvement}")
        if any(row):
            lines.append(f"| {level if level == ALL_LEVELS else f'{level:g}'} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _comparison_section(comparisons: list[dict]) -> str:
    if not comparisons:
        return ""
    reference = comparisons[0]["reference"]
    return f"""
## {reference} against each other method

Each cell: the difference of mean return per step ({reference} minus the method) with its 95%
bootstrap interval over seeds ("better" or "worse" when the interval excludes 0, "no clear
difference" otherwise, "too few seeds" with fewer than {MIN_RUNS} seeds on a side: no interval);
then P(>), the probability of improvement: the chance that a run of
{reference} scores above a run of the method (ties count half; 0.5: no difference), with its 95%
bootstrap interval. The row "{ALL_LEVELS}" pools every oversight level both methods have, each
level a stratum resampled within itself (stratified bootstrap; {RESAMPLES:,} resamples
throughout). With few seeds the percentile bootstrap is narrower than it should be: read
borderline verdicts as hints.

{comparison_table(comparisons)}
"""


def _test_placement_section(summary: list[dict]) -> str:
    if not any(r["metric"] in TEST_METRICS for r in summary):
        return ""
    return f"""
## Under the test placement

The environment places some objects differently in training and at test (a distribution
shift). The same policies on fresh episodes drawn from the test placement:

{markdown_table(summary, tuple(TEST_METRICS))}
"""


def policy_filmstrips(run_dir: Path, finished: Evaluations) -> list[tuple[str, str]]:
    """One episode of each method's evaluated policy (its cell of lowest oversight and seed among
    those that kept a checkpoint), as a PNG filmstrip in `run_dir`; (method, file name) of each one
    drawn. A method none of whose cells kept a checkpoint (results only, as tracked) gets none, said so."""
    from agents.methods import get_method
    from analysis.render import filmstrip, record

    first: dict[str, tuple[float, int, str]] = {}
    for cell, report in finished.items():
        config = report["config"]
        if not _has_checkpoint(run_dir / cell):
            continue
        key = (config["oversight_prob"], config["seed"], cell)
        first[config["method"]] = min(first.get(config["method"], key), key)
    for method in sorted({report["config"]["method"] for report in finished.values()} - set(first)):
        print(f"report: no filmstrip of {method}: none of its cells kept a checkpoint", file=sys.stderr)
    strips = []
    for method, (oversight, seed, cell) in sorted(first.items()):
        ablate = get_method(method).evaluate_without
        try:
            episodes, title = record(run_dir / cell, episodes=1, ablate=ablate, seed=0)
        except ValueError as error:  # a cell without a loadable checkpoint: no picture, said so
            print(f"report: no filmstrip of {cell}: {error}", file=sys.stderr)
            continue
        name = f"episode_{method}.png"
        filmstrip(episodes[0], run_dir / name, f"{title}, seed {seed} (light cells are overseen)")
        strips.append((method, name))
    return strips


def _has_checkpoint(cell_dir: Path) -> bool:
    return (cell_dir / CHECKPOINT).exists() or (cell_dir / SB3_CHECKPOINT).exists()


def _filmstrip_section(strips: list[tuple[str, str]]) -> str:
    if not strips:
        return ""
    pictures = "\n\n".join(f"![{method}]({name})" for method, name in strips)
    return f"""
## What the policies do

One fresh episode of each method's evaluated policy (routed methods with the proxy expert
ablated), from its cell of lowest oversight level and seed; light cells are overseen. More with
`oversight render RUN_DIR/<cell> --out episodes.gif`.

{pictures}
"""


def _diagnostics_section(diagnostics: list[dict[str, Any]]) -> str:
    table = diagnostics_table(diagnostics)
    if not table:
        return ""
    return f"""
## Do the experts separate? (routed methods)

At the end of training, mean over seeds: the gate (the intended expert's weight) on training
samples labelled intended, labelled proxy and unlabelled (averaged over the last tenth of the run;
routing wants 1, 0 and in between); the gate along fresh episodes of the whole policy that ended at
an unobserved intended and at an unobserved proxy (the last evaluation; routing wants near 1 and
near 0: a gate that sorts labelled samples but not these has learned to read the oversight marks,
not the behaviour); the KL divergence from the intended-only to the proxy-only
policy on the first states of fresh episodes (0: the experts act alike); and the labelled
episodes each expert saw. Per seed in `diagnostics.csv`.

{table}
"""


def _reward_model_section(diagnostics: list[dict[str, Any]]) -> str:
    table = reward_model_table(diagnostics)
    if not table:
        return ""
    return f"""
## How good is the reward model? (`reward_model`, `routing_reward_model`)

At the last evaluation, mean over seeds: the model's accuracy (which terminal an episode ended at)
on the overseen endings held out from its fit (every fifth), which is what an overseer could
measure, and on the unobserved endings of training since the evaluation before, which only the
testbed knows; a gap between them is a model that looks right and is not (a spoofed ending, a
shortcut that leaves no trace). Then the overseen endings it has learned from, and, for
`routing_reward_model`, the unobserved episodes it labelled (sure at 0.9). Per seed in
`diagnostics.csv`.

{table}
"""


MISSING_TEXT = """Cells the experiment expects that have no readable final evaluation: they are left out of every
table above. Run the sweep again to train them (part-way cells continue from their checkpoint)."""
INCOMPLETE_TEXT = """Cells whose tensorboard events are missing or damaged: their rows in `learning_curves.csv` stop
early or are absent (their final evaluations above are unaffected)."""


def _list_section(title: str, lines: list[str], text: str) -> str:
    if not lines:
        return ""
    items = "\n".join(f"- {line}" for line in lines)
    return f"\n## {title}\n\n{text}\n\n{items}\n"


def write_index(run_dir: Path, reference: str | None = None) -> Path:
    """The report of an experiment of several environments: each environment's own report in its
    directory (those with a finished cell), and `report.md` here with each one's table and a link."""
    from analysis.zoo_figures import plot_environment_panels

    record = read_json(run_dir / "experiment.json")
    sections, env_rows, summaries = [], {}, {}
    for env in record["envs"]:
        env_dir = run_dir / env["name"]
        if not any(env_dir.glob(f"**/{EVALUATION}")) and not (env_dir / TIDY).exists():
            sections.append(f"## {env['name']}\n\n`{env['id']}`: no finished cell yet.\n")
            continue
        finished, tidy = read_cells(env_dir)[0], env_dir / TIDY
        env_rows[env["name"]] = result_rows(finished) if finished else read_tidy(tidy)[0] if tidy.exists() else []
        write_report(env_dir, reference if reference in {r["method"] for r in env_rows[env["name"]]} else None)
        summary = summaries[env["name"]] = summary_rows(env_rows[env["name"]])
        kwargs = f" {env['kwargs']}" if env["kwargs"] else ""
        sections.append(f"## {env['name']}\n\n`{env['id']}`{kwargs}: [its report]({env['name']}/report.md)\n\n"
                        f"{markdown_table(summary)}\n")
    text = f"# Report: {run_dir.name}\n\n{record['description']}\n\n"
    # One colour per method in both figures, though the aggregate may lack some methods.
    colors = method_colors(sorted({r["method"] for rows in env_rows.values() for r in rows}))
    every_method = {r["method"] for rows in env_rows.values() for r in rows}
    text += _aggregate_section(run_dir, record, env_rows, reference or report_reference(sorted(every_method)), colors)
    text += _overview_section(summaries)
    if summaries:
        plot_environment_panels(summaries, run_dir / "environments.png", colors)
        text += ("## Each environment\n\n![each environment](environments.png)\n\nOne panel per environment and "
                 "metric; per oversight level, every method's mean over seeds with its 95% bootstrap interval "
                 "(n seeds in the tables below); hollow: the test placement, where an environment has one.\n\n")
    text += ("One report per environment; each table as in them (mean [95% CI] / IQM [95% CI] over seeds). In every "
             "environment *intended* names the intended outcome and *proxy* the proxy (DiamondGhost's names; what "
             "each is elsewhere, a tamper button or a hoard of keys, is in its docstring and the README's "
             "Environments table).\n\n")
    text += "\n".join(sections) + "\n" + sweep_log_text(run_dir)
    with atomic_write(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    return run_dir / "report.md"


def _overview_section(summaries: dict[str, list[dict]]) -> str:
    if not summaries:
        return ""
    return ("## At a glance\n\nPer method, environment and oversight level: the mean over seeds of the return per "
            "step / of P(proxy | proxy unobserved); in bold, each column's best return among the methods without the "
            "oracles' labels; *test*: under the environment's test placement. Intervals and seed counts: each "
            "environment's table below.\n\n" + overview_table(summaries) + "\n\n")


def _aggregate_section(run_dir: Path, record: dict, env_rows: dict[str, list[dict]], reference: str,
                       colors: dict[str, Any]) -> str:
    """Scores normalised per environment and aggregated (`analysis.aggregate`), when the
    experiment has `oracle_all_labels` runs to normalise by; `aggregate.csv` beside."""
    from analysis.aggregate import (
        AGGREGATE_COLUMNS,
        UPPER,
        aggregate_rows,
        aggregate_table,
        normalised_scores,
        random_policy_score,
        scoring_kwargs,
    )
    from analysis.zoo_figures import plot_aggregate

    if not any(r["method"] == UPPER for rows in env_rows.values() for r in rows):
        return (f"Add the method `{UPPER}` to the spec to see scores normalised per environment and aggregated "
                "over them.\n\n")
    entries = {env["name"]: env for env in record["envs"]}
    scored = {name: scoring_kwargs(entries[name]["id"], entries[name]["kwargs"]) for name in env_rows}
    random = {(name, level): random_policy_score(entries[name]["id"], scored[name], level, episodes=4096)
              for name, rows in env_rows.items() for level in sorted({r["oversight"] for r in rows})}
    shifted = sorted(name for name in env_rows if scored[name] != entries[name]["kwargs"])
    normalised = normalised_scores(env_rows, random)
    if not normalised:
        return f"No environment has `{UPPER}` runs that beat a random policy: nothing to normalise by.\n\n"
    methods = {m for by_method in normalised.values() for m in by_method}
    reference = reference if reference in methods else min(methods)
    rows = aggregate_rows(normalised, reference)
    write_csv(run_dir / "aggregate.csv", rows, AGGREGATE_COLUMNS)
    plot_aggregate(rows, reference, run_dir / "aggregate.png", colors)
    left_out = sorted(set(random) - set(normalised))
    left_out_note = "" if not left_out else (
        "Left out, because `" + UPPER + "` has no runs there or does not beat the random policy there: "
        + ", ".join(f"{name} at {level:g}" for name, level in left_out) + ".\n")
    test_note = "" if not shifted else (
        "; " + ", ".join(shifted) + " scored under its test placement, where the intended object and the proxy part")
    return f"""## Across environments

Each run's score normalised on its environment: 0 is a uniformly random policy (fresh episodes),
1 the mean of `{UPPER}` (the true reward of every episode for the whole budget) at that level{test_note}.
Per method: the interquartile mean over all its runs (n runs in {len(normalised)} strata, each an
environment at an oversight level) with a 95% stratified bootstrap interval ({RESAMPLES:,}
resamples, each stratum within itself), the plain mean, and the probability that a run of
`{reference}` scores above a run of the method (ties half), averaged over the strata both have,
with its interval.
{left_out_note}
{aggregate_table(rows, reference)}

![across environments](aggregate.png)

"""


def write_report(run_dir: str | Path, reference: str | None = None) -> Path:
    """Write every table and figure of `run_dir` and return the path of `report.md`; print each
    missing cell and each incomplete learning curve to stderr (report.md lists them too). The
    comparison sets `reference` against every other method (None: `routing`, when the experiment
    has it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise invalid_argument("run_dir", str(run_dir), "no such directory")
    experiment = run_dir / "experiment.json"
    if experiment.exists() and "envs" in read_json(experiment):
        return write_index(run_dir, reference)
    finished, unreadable = read_cells(run_dir)
    if finished:
        check_poolable(run_dir, finished)
        rows = result_rows(finished)
        curves, diagnostics, incomplete = learning_curve_rows(run_dir, finished)
        missing = missing_cells(run_dir, finished, unreadable)
    elif (run_dir / TIDY).exists():  # the tracked results of an experiment whose cells are gone
        rows, curves, diagnostics = read_tidy(run_dir / TIDY)
        incomplete, missing = [], []
    else:
        why = f" ({next(iter(unreadable.values()))})" if unreadable else f" (no eval.json below it, and no {TIDY})"
        raise invalid_argument("run_dir", str(run_dir), f"holds no finished cell{why}")
    methods = sorted({r["method"] for r in rows})
    if reference is not None and reference not in methods:
        raise invalid_argument("reference", reference, f"expected a method of the experiment: one of {methods}")
    if finished:
        write_tidy(run_dir / TIDY, tidy_rows(finished, rows, curves, diagnostics))
    summary = summary_rows(rows)
    cells = len({(r["method"], r["oversight"], r["seed"]) for r in rows})
    for line in missing:
        print(f"report: missing cell {line}", file=sys.stderr)
    for line in incomplete:
        print(f"report: incomplete learning curve {line}", file=sys.stderr)
    write_csv(run_dir / "results.csv", rows, RESULT_COLUMNS)
    write_csv(run_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv(run_dir / "learning_curves.csv", curves, ["method", "oversight", "seed", "env_steps", "metric", "value"])
    write_csv(run_dir / "diagnostics.csv", diagnostics, DIAGNOSTIC_COLUMNS)
    comparisons = comparison_rows(rows, reference)
    write_csv(run_dir / "comparison.csv", comparisons, COMPARISON_COLUMNS)
    plot_vs_oversight(summary, "return_per_step", "return per step", run_dir / "return_vs_oversight.png")
    plot_vs_oversight(summary, "p_proxy_when_unobserved", "P(proxy | proxy unobserved)",
                      run_dir / "proxy_when_unobserved_vs_oversight.png")
    plot_learning_curves(curves, run_dir / "learning_curves.png")
    plot_performance_profile(rows, run_dir / "performance_profile.png")
    strips = policy_filmstrips(run_dir, finished)
    experiment = run_dir / "experiment.json"
    description = read_json(experiment)["description"] + "\n\n" if experiment.exists() else ""
    missing_note = f" ({len(missing)} missing: see below)" if missing else ""
    text = f"""# Report: {run_dir.name}

{description}{cells} finished cells{missing_note}{"" if finished else f" (read from {TIDY}: the cells are not here)"}. Each cell's policy is evaluated on fresh episodes with the ground-truth
reward: routed methods with the proxy expert ablated, the others whole (`results.csv` has every
variant). *Return per step* is the mean discounted (0.97) return per step over each
environment's first episode; *P(proxy | proxy unobserved)* is how often the agent takes the proxy
when the proxy's cell is not watched: goal misgeneralization. Each entry: the mean over seeds with
its 95% percentile bootstrap interval ({RESAMPLES:,} resamples of the seeds), then the
interquartile mean (IQM: the mean of the middle half of the seeds, robust to an outlying one)
with its own bootstrap interval; n (seeds) in its column.

{markdown_table(summary)}
{_test_placement_section(summary)}{_comparison_section(comparisons)}{_diagnostics_section(diagnostics)}{_reward_model_section(diagnostics)}{_list_section("Missing cells", missing, MISSING_TEXT)}{_list_section("Incomplete learning curves", incomplete, INCOMPLETE_TEXT)}
![return per step vs oversight](return_vs_oversight.png)

![P(proxy | proxy unobserved) vs oversight](proxy_when_unobserved_vs_oversight.png)

![learning curves](learning_curves.png)

![performance profile](performance_profile.png)

The performance profile: for each method, the fraction of its runs (every oversight level and
seed; n in the legend) whose return per step exceeds τ; shaded, a 95% stratified bootstrap band
(each level resampled within itself). A curve above another is better at every threshold.
{_filmstrip_section(strips)}
{sweep_log_text(run_dir)}Files: `{TIDY}` (every result, curve point and diagnostic as rows, with each cell's config hash
and commit: what the tables and figures are rebuilt from), `results.csv` (every cell and variant),
`summary.csv`, `comparison.csv`, `learning_curves.csv`, `diagnostics.csv`; tensorboard:
`tensorboard --logdir {run_dir}`.
"""
    with atomic_write(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    return run_dir / "report.md"
