"""The statistics a reviewer expects of RL results over few seeds (Agarwal et al. 2021, "Deep RL
at the edge of the statistical precipice", the recommendations of its `rliable` library, which is
archived; these are the few functions a report needs, in numpy).

- `interquartile_mean`: the mean of the middle half of the runs, robust to an outlying seed.
- `stratified_bootstrap_ci`: a percentile bootstrap interval of any statistic of several groups
  of runs (strata: oversight levels, environments), each resampled within itself, so every
  resample keeps each stratum's number of runs.
- `probability_of_improvement`: P(X > Y), the chance that a run of method X scores above a run of
  method Y (ties count half), averaged over strata; with its interval from
  `stratified_bootstrap_ci` over both methods' runs.
- `performance_profile`: the fraction of runs scoring above each threshold.

Every interval here is a 95% percentile bootstrap over seeds (10,000 resamples by default). A
group of fewer than `MIN_RUNS` runs gives no interval (NaN, shown as "too few seeds"): resampling
two values only says which of the two was drawn, and its "interval" reads as a finding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 10_000
MIN_RUNS = 3  # runs per group below which no interval is given


def interquartile_mean(values: np.ndarray) -> np.ndarray:
    """Mean of the middle half of the runs along the last axis (the lowest and highest quarter,
    rounded down, dropped)."""
    values = np.sort(np.asarray(values, dtype=float), axis=-1)
    cut = int(math.floor(0.25 * values.shape[-1]))
    return values[..., cut : values.shape[-1] - cut].mean(axis=-1)


def stratified_bootstrap_ci(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], np.ndarray],
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(groups)`: each resample draws every group's
    runs with replacement from that group alone; (NaN, NaN) when a group has fewer than `MIN_RUNS`. `statistic` takes the groups with the runs on
    the last axis (and any leading axes) and reduces that axis: it is called once, on every
    resample at once, with groups of shape (resamples, runs)."""
    groups = [np.asarray(g, dtype=float) for g in groups]
    if min(len(g) for g in groups) < MIN_RUNS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = [g[rng.integers(0, len(g), size=(resamples, len(g)))] for g in groups]
    values = np.asarray(statistic(draws))
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over all pairs of a run of X and a run of Y in the same stratum,
    averaged over strata (`x[k]` and `y[k]` are the two methods' scores in stratum k, runs on the
    last axis)."""
    if len(x) != len(y) or not x:
        raise ValueError(f"strata are invalid: x has {len(x)} and y has {len(y)}; expected the same number, at least one")
    per_stratum = []
    for a, b in zip(x, y):
        a, b = np.asarray(a, dtype=float)[..., :, None], np.asarray(b, dtype=float)[..., None, :]
        per_stratum.append(((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1)))
    return np.mean(per_stratum, axis=0)


def probability_of_improvement_ci(
    x: Sequence[np.ndarray], y: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% stratified bootstrap interval of `probability_of_improvement(x, y)`: both methods'
    runs resampled within each stratum."""
    k = len(x)
    return stratified_bootstrap_ci([*x, *y], lambda g: probability_of_improvement(g[:k], g[k:]), resamples, seed)


def performance_profile(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The fraction of `values` strictly above each threshold."""
    values = np.asarray(values, dtype=float)
    return (values[None, :] > np.asarray(thresholds, dtype=float)[:, None]).mean(axis=1)


def format_interval(low: float, high: float, fmt: str = "{:.3f}") -> str:
    """"[low, high]", or "[too few seeds]" where there is no interval (NaN)."""
    if math.isnan(low) or math.isnan(high):
        return "[too few seeds]"
    return f"[{fmt.format(low)}, {fmt.format(high)}]"
