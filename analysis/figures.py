"""The reports' figures (metrics against oversight, learning curves, the performance profile) and
what every figure shares: a method's colour, and saving a figure atomically (headless:
matplotlib's Agg backend)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from agents.files import atomic_write  # noqa: E402
from analysis.statistics import performance_profile, stratified_bootstrap_ci  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Lay `fig` out, write it to `path` as a PNG (whole or not at all) and close it."""
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def method_colors(methods: list[str]) -> dict[str, Any]:
    """A colour per method, in the order given."""
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


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
