"""Figures of an experiment of several environments (a spec with `[[envs]]`; `oversight report`
draws them into the index report): one panel per environment and metric with every method at
every oversight level, and the aggregate over environments (normalised scores' IQM, and the
probability that the reference method's run beats another's)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from analysis.figures import method_colors, save_figure

# Panel rows: the metric on the training placement and, drawn hollow, on the test placement.
PANEL_METRICS = (("return_per_step", "test_return_per_step", "return per step"),
                 ("p_proxy_when_unobserved", "test_p_proxy_when_unobserved", "P(proxy | proxy unobserved)"))


def plot_environment_panels(summaries: dict[str, list[dict[str, Any]]], path: Path,
                            colors: dict[str, Any] | None = None, shared_returns: bool = False,
                            title: str = "Each environment: mean over seeds, 95% bootstrap CI") -> None:
    """Columns: environments (`summaries`: name -> `report.summary_rows`); rows: return per step
    and P(proxy | proxy unobserved). In each panel, per oversight level, every method's mean over
    seeds with its 95% bootstrap interval, side by side; hollow markers: the test placement, where
    the environment has one. `colors`: method -> colour (by default from these methods), so that
    several figures of one report can share them; `shared_returns`: one scale of returns in every
    column."""
    envs = list(summaries)
    methods = sorted({r["method"] for rows in summaries.values() for r in rows})
    colors = colors or method_colors(methods)
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(len(PANEL_METRICS), len(envs), figsize=(2.9 * len(envs) + 2.4, 5.8), squeeze=False)
    for col, env in enumerate(envs):
        rows = summaries[env]
        levels = sorted({r["oversight"] for r in rows})
        for row, (metric, test_metric, label) in enumerate(PANEL_METRICS):
            ax = axes[row][col]
            for k, method in enumerate(methods):
                offset = (k - (len(methods) - 1) / 2) * width
                for name, hollow in ((metric, False), (test_metric, True)):
                    points = sorted((levels.index(r["oversight"]), r["mean"], r["ci_low"], r["ci_high"]) for r in rows
                                    if r["method"] == method and r["metric"] == name)
                    if not points:
                        continue
                    x, mean, low, high = map(np.array, zip(*points))
                    ax.errorbar(x + offset, mean, yerr=[mean - low, high - mean], fmt="o", markersize=4, capsize=2,
                                color=colors[method], markerfacecolor="white" if hollow else colors[method])
            ax.set_xticks(range(len(levels)), [f"{100 * p:g}%" for p in levels])
            ax.set_xlim(-0.5, len(levels) - 0.5)
            ax.grid(alpha=0.3, axis="y")
            if row == 0:
                ax.set_title("\n".join(textwrap.wrap(env, 34)), fontsize=9)  # long labels (the map's) wrap
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == len(PANEL_METRICS) - 1:
                ax.set_xlabel("oversight", fontsize=8)
                ax.set_ylim(-0.03, 1.03)  # a probability: the same scale in every environment
            elif shared_returns:
                returns = [v for rows in summaries.values() for r in rows if r["metric"] in (metric, test_metric)
                           for v in (r["ci_low"], r["ci_high"])]
                ax.set_ylim(min(returns) - 0.05, max(returns) + 0.05)
    handles = [Line2D([], [], marker="o", linestyle="", color=colors[m], label=m) for m in methods]
    if any(r["metric"] in (test for _, test, _ in PANEL_METRICS) for rows in summaries.values() for r in rows):
        handles.append(Line2D([], [], marker="o", linestyle="", color="grey", markerfacecolor="white",
                              label="test placement"))
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.03, 1.0))
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def plot_aggregate(rows: list[dict[str, Any]], reference: str, path: Path,
                   colors: dict[str, Any] | None = None) -> None:
    """Left: each method's interquartile mean of normalised scores over every environment and
    level, with its 95% stratified bootstrap interval; right: P(`reference` > method) with its
    interval (`analysis.aggregate.aggregate_rows`' rows). Methods sorted by IQM. `colors`:
    method -> colour (by default from these methods)."""
    rows = sorted(rows, key=lambda r: r["iqm"])
    y = np.arange(len(rows))
    colors = colors or method_colors(sorted(r["method"] for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 0.45 * len(rows) + 1.6), sharey=True)
    for i, r in enumerate(rows):
        color = colors[r["method"]]
        left.errorbar(r["iqm"], i, xerr=[[r["iqm"] - r["iqm_ci_low"]], [r["iqm_ci_high"] - r["iqm"]]], fmt="o",
                      capsize=3, color=color)
        if not np.isnan(r["p_improvement"]):
            right.errorbar(r["p_improvement"], i, xerr=[[r["p_improvement"] - r["p_improvement_ci_low"]],
                                                         [r["p_improvement_ci_high"] - r["p_improvement"]]],
                           fmt="o", capsize=3, color=color)
    left.set_yticks(y, [f"{r['method']} (n={r['runs']})" for r in rows], fontsize=8)
    left.axvline(0, color="grey", linestyle=":", linewidth=1)
    left.axvline(1, color="grey", linestyle=":", linewidth=1)
    left.set_xlabel("normalised score: IQM (0 random policy, 1 every label)", fontsize=8)
    right.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    right.set_xlim(0, 1)
    right.set_xlabel(f"P({reference} > method)", fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Across environments: 95% stratified bootstrap intervals", fontsize=10)
    save_figure(fig, path)
