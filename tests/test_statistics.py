"""The report's statistics, on cases small enough to compute by hand."""

import numpy as np
import pytest

from analysis.statistics import (
    MIN_RUNS,
    format_interval,
    interquartile_mean,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


def test_interquartile_mean_drops_the_lowest_and_highest_quarter():
    assert interquartile_mean(np.array([100.0, 1, 2, 3, 4, 5, 6, -50])) == pytest.approx(3.5)  # 8 runs: 2 cut each side
    assert interquartile_mean(np.array([9.0, 1, 2, 3, 4])) == pytest.approx(3.0)  # 5 runs: 1 cut each side
    assert interquartile_mean(np.array([1.0, 2, 3])) == pytest.approx(2.0)  # 3 runs: nothing cut
    assert interquartile_mean(np.array([[4.0, 1, 2, 3], [8, 5, 6, 7]])).tolist() == [2.5, 6.5]  # along the last axis


def test_probability_of_improvement_counts_pairs_ties_half_and_averages_strata():
    # stratum 1: x=[1, 3] vs y=[2, 2]: pairs (1>2 no, 1>2 no, 3>2, 3>2) = 2/4
    # stratum 2: x=[5] vs y=[5, 4]: (tie = 1/2, 5>4 = 1) -> 0.75
    assert probability_of_improvement([[1, 3], [5]], [[2, 2], [5, 4]]) == pytest.approx((0.5 + 0.75) / 2)
    assert probability_of_improvement([[1, 2]], [[3, 4]]) == 0.0
    assert probability_of_improvement([[3, 4]], [[1, 2]]) == 1.0
    with pytest.raises(ValueError, match="strata are invalid"):
        probability_of_improvement([[1]], [[1], [2]])


def test_a_stratified_bootstrap_resamples_each_stratum_within_itself():
    # Stratum means are fixed when each stratum is constant: a resample that mixed strata would move them.
    groups = [np.full(3, 1.0), np.full(7, 10.0)]
    low, high = stratified_bootstrap_ci(groups, lambda g: g[0].mean(-1) + g[1].mean(-1), resamples=500)
    assert low == high == pytest.approx(11.0)
    # With variation the interval is wide around the estimate and reproducible with its seed.
    rng = np.random.default_rng(1)
    data = [rng.normal(0, 1, 10), rng.normal(5, 1, 10)]
    mean_of_means = lambda g: (g[0].mean(-1) + g[1].mean(-1)) / 2
    ci = stratified_bootstrap_ci(data, mean_of_means, resamples=2000, seed=3)
    assert ci[0] < mean_of_means(data) < ci[1] and ci[1] - ci[0] < 1.5
    assert ci == stratified_bootstrap_ci(data, mean_of_means, resamples=2000, seed=3)


def test_probability_of_improvement_interval_is_degenerate_when_the_methods_never_overlap():
    assert probability_of_improvement_ci([[3.0, 4.0, 5.0]], [[0.0, 1.0, 2.0]], resamples=300) == (1.0, 1.0)
    low, high = probability_of_improvement_ci([[1.0, 3.0, 5.0, 7.0]], [[2.0, 4.0, 6.0, 8.0]], resamples=2000)
    assert low < probability_of_improvement([[1.0, 3.0, 5.0, 7.0]], [[2.0, 4.0, 6.0, 8.0]]) < high


def test_performance_profile_is_the_fraction_strictly_above_each_threshold():
    assert performance_profile(np.array([0.1, 0.5, 0.5, 0.9]), np.array([0.0, 0.5, 1.0])).tolist() == [1.0, 0.25, 0.0]


@pytest.mark.parametrize("runs", [1, 2])
def test_too_few_runs_give_no_interval_rather_than_a_degenerate_one(runs):
    # Two seeds resampled give only "which one was drawn": [0.536, 0.536] or a verdict from two points.
    few, many = np.arange(runs, dtype=float), np.arange(10, dtype=float)
    assert runs < MIN_RUNS
    for groups in ([few], [few, many], [many, few]):
        low, high = stratified_bootstrap_ci(groups, lambda g: g[0].mean(-1), resamples=200)
        assert np.isnan(low) and np.isnan(high)
    assert np.isnan(probability_of_improvement_ci([few], [many], resamples=200)).all()
    assert format_interval(float("nan"), float("nan")) == "[too few seeds]"
    assert not np.isnan(stratified_bootstrap_ci([np.arange(3.0)], lambda g: g[0].mean(-1), resamples=200)).any()
    assert format_interval(0.1234, 0.5) == "[0.123, 0.500]" and format_interval(-0.1, 0.2, "{:+.2f}") == "[-0.10, +0.20]"
