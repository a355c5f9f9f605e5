"""The report's tables as data and as markdown: per method and oversight level, summaries over seeds
(mean and IQM with bootstrap intervals), the comparison of a reference method against each other
one, the diagnostics; and the overview across environments. Metrics and labels come from
`analysis.metrics`; intervals and verdicts from `analysis.statistics`."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from agents.methods import reads_true_rewards, report_reference
from analysis.metrics import COMPARED, FINAL_METRICS, HEADLINE, METRICS, ROW_KEYS, TEST_HEADLINE, diagnostics_of
from analysis.statistics import (
    RESAMPLES,
    format_interval,
    interquartile_mean,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

SUMMARY_COLUMNS = ["method", "oversight", "metric", "seeds", "mean", "ci_low", "ci_high", "iqm", "iqm_ci_low", "iqm_ci_high"]
COMPARISON_COLUMNS = ["reference", "method", "oversight", "difference", "ci_low", "ci_high", "verdict",
                      "p_improvement", "p_improvement_ci_low", "p_improvement_ci_high"]
ALL_LEVELS = "all"  # the comparison row over every oversight level (each level a stratum)
DIAGNOSTIC_COLUMNS = ["method", "oversight", "seed", "metric", "value"]


def result_columns() -> list[str]:
    """results.csv's columns: which cell and variant a row is, then every registered metric."""
    return [*ROW_KEYS, *(m.name for m in FINAL_METRICS)]


def bootstrap_ci(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over seeds (degenerate with one seed)."""
    return stratified_bootstrap_ci([values], lambda g: g[0].mean(-1), resamples, seed)


def difference_ci(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(a) - mean(b), seeds resampled in each group."""
    return stratified_bootstrap_ci([a, b], lambda g: g[0].mean(-1) - g[1].mean(-1), resamples, seed)


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method, oversight level and headline metric (`analysis.metrics.HEADLINE`, and
    `TEST_HEADLINE` where an environment has a test placement), over the seeds' evaluated policies:
    the mean and the interquartile mean, each with its 95% bootstrap interval."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        if row["evaluated"]:
            groups[(row["method"], row["oversight"])].append(row)
    metrics = [*HEADLINE, *(m for m in TEST_HEADLINE if any(not math.isnan(r[m]) for g in groups.values() for r in g))]
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
    return per step (`analysis.metrics.COMPARED`) over seeds, its 95% bootstrap interval and the verdict the interval allows,
    and the probability of improvement (a run of `reference` scoring above a run of the method)
    with its interval. Per method, one more row (oversight `ALL_LEVELS`) holds the probability
    of improvement over every level both have, each level a stratum of the bootstrap. `reference`
    None: the methods' own report reference (`agents.methods.report_reference`), if any."""
    values: dict[tuple[str, float], np.ndarray] = {}
    for row in rows:
        if row["evaluated"]:
            key = (row["method"], row["oversight"])
            values[key] = np.append(values.get(key, np.array([])), row[COMPARED])
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
    """Per method and oversight level, the mean over seeds of each diagnostic of the experts (routed
    methods only: a single network has nothing to separate)."""
    return _group_table(diagnostics, "experts", only_with="expert_kl")


def reward_model_table(diagnostics: list[dict[str, Any]]) -> str:
    """Per method and oversight level, the mean over seeds of each reward-model diagnostic (the
    methods with a reward model only)."""
    return _group_table(diagnostics, "reward_model")


def _group_table(diagnostics: list[dict[str, Any]], group: str, only_with: str | None = None) -> str:
    """The markdown table of one group of diagnostics (`analysis.metrics.DIAGNOSTICS`); rows lacking
    `only_with` left out; empty when no row is left."""
    shown = diagnostics_of(group)
    metrics = [d.name for d in shown]
    lines = ["| oversight | method | seeds | " + " | ".join(d.label for d in shown) + " |",
             "|---:|---|---:" + "|---:" * len(metrics) + "|"]
    for (method, oversight), values in _values_by_method_and_level(diagnostics, metrics).items():
        if only_with is not None and only_with not in values:
            continue
        seeds = max(len(v) for v in values.values())
        cells = [f"{np.mean(values[m]):.3g}" if values.get(m) else "" for m in metrics]
        lines.append(f"| {oversight:g} | {method} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def markdown_table(summary: list[dict], metrics: tuple[str, str] = HEADLINE) -> str:
    """Per oversight level and method: the two `metrics`, mean and IQM with their intervals."""
    table: dict[tuple[str, float], dict[str, dict]] = defaultdict(dict)
    for r in summary:
        if r["metric"] in metrics:
            table[(r["method"], r["oversight"])][r["metric"]] = r
    labels = [METRICS[m].label.replace("|", "\\|") for m in metrics]
    lines = ["| oversight | method | seeds | " + " | ".join(f"{label}: mean [95% CI] / IQM [95% CI]" for label in labels) + " |",
             "|---:|---|---:|---|---|"]
    for (method, oversight), row in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [f"{m['mean']:.3f} {format_interval(m['ci_low'], m['ci_high'])} / {m['iqm']:.3f} "
                 f"{format_interval(m['iqm_ci_low'], m['iqm_ci_high'])}" for m in (row[metrics[0]], row[metrics[1]])]
        lines.append(f"| {oversight:g} | {method} | {row[metrics[0]]['seeds']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def overview_table(summaries: dict[str, list[dict]]) -> str:
    """Every method's mean return per step / mean P(proxy | unobserved) over seeds, one column per
    environment and oversight level (each environment's `summary_rows`; an environment with a
    test placement (`TEST_HEADLINE`) shown under it, marked *test*), the best mean return of a
    column in bold among the methods that see no more labels than the others (not the oracles)."""
    columns, cells, methods = [], {}, {}
    for env, summary in summaries.items():
        test = any(r["metric"] in TEST_HEADLINE for r in summary)
        ret, proxy = TEST_HEADLINE if test else HEADLINE  # the return's and P(proxy)'s names
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
