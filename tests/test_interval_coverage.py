"""Every interval the reports print is a 95% confidence interval: on data drawn from a known
distribution it covers the true value in ~95% of simulated datasets, and its half width is ~1.96
standard errors of its estimate (the estimate's SD across those datasets, or a closed form).

Covered: `stratified_bootstrap_ci` (mean, interquartile mean, strata of different sizes and
means), `probability_of_improvement_ci`; `agents.metrics`' `wilson` (exactly, over the binomial
distribution), `mean_ci`, `discounted_return_per_step` (delta method, both of its inputs); the
report's `summary_rows` (mean and IQM intervals), `difference_ci`, `comparison_rows`, and
`aggregate.aggregate_rows` (IQM over strata, probability of improvement over strata).

How strict: with N simulated datasets the observed coverage has a binomial SD of
sqrt(0.95 * 0.05 / N) (0.005 at N = 2000); coverage must lie within 4 such SDs of what the interval
should give: exactly 95% for Wilson, the t distribution's value for a z interval of a normal mean
(and for a percentile bootstrap of it, which is a z interval with the sd of divisor n), and for
other percentile bootstraps and the delta method 95% less a documented small-sample allowance of
2 points. A "95%" interval that is really 90% or 99%, or one whose width is off by a constant
factor (0.7x, 1.5x), fails the coverage or the width check (widths must be within 3-10% of
1.96 standard errors). Every simulation is seeded: the tests are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from agents.metrics import discounted_return_per_step, mean_ci, wilson
from analysis import aggregate, tables
from analysis.statistics import interquartile_mean, probability_of_improvement_ci, stratified_bootstrap_ci

Z = 1.959963984540054  # the standard normal's 97.5% quantile, kept apart from the code's own constant
NOMINAL = 0.95
BOOTSTRAP_ALLOWANCE = 0.02  # how far below 95% a percentile bootstrap or delta-method interval may fall at these sizes
RESAMPLES = 1000


# ---------------------------------------------------------------------------------------- helpers


def t_coverage(nu: int, c: float) -> float:
    """P(|T| <= c) for Student's t with `nu` degrees of freedom (numerically; no scipy here)."""
    t = np.linspace(0.0, c, 20_001)
    pdf = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi) * (1 + t * t / nu) ** (-(nu + 1) / 2)
    return float(2 * np.sum((pdf[1:] + pdf[:-1]) / 2 * np.diff(t)))


def c4(n: int) -> float:
    """E[s] / sigma for the sample sd (divisor n - 1) of n normal draws."""
    return math.sqrt(2 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def bootstrap_normal_coverage(n: int) -> float:
    """What a percentile bootstrap of a normal mean covers: a z interval with sd of divisor n."""
    return t_coverage(n - 1, Z * math.sqrt((n - 1) / n))


def bootstrap_sd_factor(n: int) -> float:
    """E[sd of divisor n] / sigma for n normal draws: a percentile bootstrap's width, over 2 Z sigma/sqrt(n)."""
    return c4(n) * math.sqrt((n - 1) / n)


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def population_iqm(pdf: Callable[[np.ndarray], np.ndarray], low: float, high: float, points: int = 400_001) -> float:
    """The interquartile mean of a distribution: its mean between its quartiles (numerically)."""
    x = np.linspace(low, high, points)
    f = pdf(x)
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(x))])
    q1, q3 = np.interp([0.25, 0.75], cdf / cdf[-1], x)
    inner = (x >= q1) & (x <= q3)
    xi, fi = x[inner], f[inner]
    return float(np.sum((xi[1:] * fi[1:] + xi[:-1] * fi[:-1]) / 2 * np.diff(xi)) / np.sum((fi[1:] + fi[:-1]) / 2 * np.diff(xi)))


def exponential_pdf(x: np.ndarray, shift: float = 0.0) -> np.ndarray:
    return np.where(x >= shift, np.exp(-(x - shift)), 0.0)


def assert_coverage(hits: np.ndarray, expected: float, allowance: float = 0.0, what: str = "") -> None:
    """Coverage within 4 binomial SDs of `expected` (`allowance` more below it)."""
    trials = len(hits)
    sd = math.sqrt(expected * (1 - expected) / trials)
    rate = float(np.mean(hits))
    assert expected - allowance - 4 * sd <= rate <= expected + 4 * sd, (
        f"{what}: a nominal 95% interval covered the truth in {rate:.4f} of {trials} datasets; expected "
        f"{expected:.4f} (-{allowance}) +- {4 * sd:.4f}")


def assert_width(ratio: float, tolerance: float, what: str = "") -> None:
    assert abs(ratio - 1) <= tolerance, f"{what}: half width / (1.96 standard errors) = {ratio:.3f}, expected 1 +- {tolerance}"


def simulate(intervals: list[tuple[float, float]], estimates: np.ndarray, truth: float) -> tuple[np.ndarray, float]:
    """Per dataset whether its interval covers `truth`, and the mean half width over 1.96 times the
    SD of the estimate across datasets."""
    ci = np.asarray(intervals, dtype=float)
    hits = (ci[:, 0] <= truth) & (truth <= ci[:, 1])
    return hits, float(np.mean(ci[:, 1] - ci[:, 0]) / 2 / (Z * np.std(estimates, ddof=1)))


def mean_of_strata(g: list[np.ndarray]) -> np.ndarray:
    return sum(x.mean(-1) for x in g) / len(g)


# ------------------------------------------------------------------------- stratified bootstrap


def test_the_bootstrap_interval_of_a_mean_covers_the_true_mean_at_the_rate_a_z_interval_does():
    n, trials, sigma = 50, 2000, 2.0
    data = np.random.default_rng(0).normal(3.0, sigma, size=(trials, n))
    ci = [stratified_bootstrap_ci([x], lambda g: g[0].mean(-1), RESAMPLES, seed=i) for i, x in enumerate(data)]
    hits, _ = simulate(ci, data.mean(1), 3.0)
    assert_coverage(hits, bootstrap_normal_coverage(n), allowance=0.01, what="bootstrap of a normal mean")
    width = np.mean(np.diff(np.asarray(ci), axis=1)) / (2 * Z * sigma / math.sqrt(n) * bootstrap_sd_factor(n))
    assert_width(width, 0.03, "bootstrap of a normal mean")


def test_the_bootstrap_interval_of_the_interquartile_mean_covers_the_populations_interquartile_mean():
    # Exponential(1): IQM = (mean between the quartiles) = 2 [(a + 1) 3/4 - (b + 1) / 4], a, b = ln 4/3, ln 4.
    a, b = math.log(4 / 3), math.log(4)
    truth = 2 * ((a + 1) * 0.75 - (b + 1) * 0.25)
    assert population_iqm(exponential_pdf, 0.0, 40.0) == pytest.approx(truth, abs=1e-4)  # the helper, checked
    n, trials = 40, 2000
    data = np.random.default_rng(1).exponential(1.0, size=(trials, n))
    ci = [stratified_bootstrap_ci([x], lambda g: interquartile_mean(g[0]), RESAMPLES, seed=i) for i, x in enumerate(data)]
    hits, width = simulate(ci, interquartile_mean(data), truth)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "bootstrap of an exponential's IQM")
    assert_width(width, 0.08, "bootstrap of an exponential's IQM")


def strata_of_sizes_3_and_30(trials: int, scale: int = 1, seed: int = 2) -> list[list[np.ndarray]]:
    """Stratum A: `3 * scale` runs near 10 (sd 0.01); stratum B: `30 * scale` runs of N(0, 1)."""
    rng = np.random.default_rng(seed)
    return [[10 + 0.01 * rng.standard_normal(3 * scale), rng.standard_normal(30 * scale)] for _ in range(trials)]


def pooled_bootstrap_ci(groups, statistic, resamples, seed):
    """A bootstrap that ignores the strata: every stratum's resample drawn from all runs. Wrong."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate(groups)
    return stratified_bootstrap_ci([pooled[rng.integers(0, len(pooled), size=len(g))] for g in groups], statistic,
                                   resamples, seed)


def check_strata_of_sizes_3_and_30(interval: Callable, trials: int) -> None:
    datasets = strata_of_sizes_3_and_30(trials)
    ci = [interval(g, mean_of_strata, RESAMPLES, i) for i, g in enumerate(datasets)]
    hits, width = simulate(ci, np.array([mean_of_strata(g) for g in datasets]), 5.0)
    # Nearly all the uncertainty is stratum B's mean over 30 runs: a bootstrap of a normal mean of 30.
    assert_coverage(hits, bootstrap_normal_coverage(30), allowance=0.01, what="mean of strata of 3 and 30 runs")
    assert_width(width / bootstrap_sd_factor(30), 0.06, "mean of strata of 3 and 30 runs")


def test_a_stratified_bootstrap_of_the_mean_of_strata_covers_it_when_strata_differ_in_size_and_mean():
    check_strata_of_sizes_3_and_30(stratified_bootstrap_ci, 2000)
    # The check has the power to tell: a bootstrap that resamples across the strata fails it.
    with pytest.raises(AssertionError, match="covered the truth"):
        check_strata_of_sizes_3_and_30(pooled_bootstrap_ci, 200)


def test_the_stratified_bootstrap_interval_narrows_like_one_over_the_square_root_of_the_runs():
    trials, rng = 400, np.random.default_rng(3)
    small, large = rng.normal(0, 1, size=(trials, 20)), rng.normal(0, 1, size=(trials, 80))
    width = {n: np.mean([np.diff(stratified_bootstrap_ci([x], lambda g: g[0].mean(-1), RESAMPLES, seed=i))[0]
                         for i, x in enumerate(data)]) for n, data in ((20, small), (80, large))}
    expected = 2 * bootstrap_sd_factor(20) / bootstrap_sd_factor(80)
    assert width[20] / width[80] == pytest.approx(expected, rel=0.05)
    # With strata: four times the runs in every stratum, half the width.
    strata = {k: strata_of_sizes_3_and_30(trials, k, seed=4) for k in (1, 4)}
    width = {k: np.mean([np.diff(stratified_bootstrap_ci(g, mean_of_strata, RESAMPLES, seed=i))[0]
                         for i, g in enumerate(data)]) for k, data in strata.items()}
    assert width[1] / width[4] == pytest.approx(2 * bootstrap_sd_factor(30) / bootstrap_sd_factor(120), rel=0.05)


# ------------------------------------------------------------------- probability of improvement


def test_the_probability_of_improvement_interval_covers_the_true_probability_averaged_over_strata():
    # Stratum 1: normal runs of sd 1, X ~ N(0.5, 1), Y ~ N(0, 1): P(X > Y) = Phi(0.5 / sqrt 2).
    # Stratum 2: scores with ties, X ~ Binomial(4, 0.6), Y ~ Binomial(4, 0.4): P(X > Y) + P(X = Y) / 2.
    px, py = binomial_pmf(4, 0.6), binomial_pmf(4, 0.4)
    discrete = sum(px[i] * py[j] * (1.0 if i > j else 0.5 if i == j else 0.0) for i in range(5) for j in range(5))
    truth = (normal_cdf(0.5 / math.sqrt(2)) + discrete) / 2
    n, trials, rng = 20, 1500, np.random.default_rng(5)
    datasets = [([rng.normal(0.5, 1, n), rng.binomial(4, 0.6, n)], [rng.normal(0, 1, n), rng.binomial(4, 0.4, n)])
                for _ in range(trials)]
    from analysis.statistics import probability_of_improvement

    ci = [probability_of_improvement_ci(x, y, 500, seed=i) for i, (x, y) in enumerate(datasets)]
    hits, width = simulate(ci, np.array([probability_of_improvement(x, y) for x, y in datasets]), truth)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "probability of improvement")
    assert_width(width, 0.08, "probability of improvement")


# ------------------------------------------------------------------------ agents.metrics


def binomial_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1)
    log_choose = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    return np.exp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p))


@pytest.mark.parametrize("n", [30, 100, 300])
def test_the_wilson_interval_covers_a_proportion_95_percent_of_the_time_on_average_over_p(n):
    # Exact coverage (summed over the binomial distribution), at each of 37 values of p.
    intervals = np.array([wilson(k, n) for k in range(n + 1)])
    coverage = []
    for p in np.linspace(0.05, 0.95, 37):
        covers = (intervals[:, 0] <= p) & (p <= intervals[:, 1])
        coverage.append(float((binomial_pmf(n, p) * covers).sum()))
    assert abs(np.mean(coverage) - NOMINAL) <= 0.01, f"n={n}: mean coverage {np.mean(coverage):.4f}"
    assert min(coverage) >= 0.92, f"n={n}: coverage falls to {min(coverage):.4f}"


@pytest.mark.parametrize("n", [1, 7, 30, 100, 300])
def test_the_wilson_interval_is_every_proportion_a_95_percent_score_test_accepts(n):
    """Its ends solve (k/n - p)^2 = 1.96^2 p (1 - p) / n (the score test at its limit), and it holds k/n."""
    for k in range(n + 1):
        low, high = wilson(k, n)
        assert 0 <= low <= k / n <= high <= 1
        for end in (low, high):
            assert (k / n - end) ** 2 == pytest.approx(Z**2 * end * (1 - end) / n, rel=1e-6, abs=1e-15), (k, n, low, high)
        assert (low == 0) == (k == 0) and (high == 1) == (k == n), (k, n, low, high)  # exactly at the ends, inside otherwise
    assert all(math.isnan(v) for v in wilson(0, 0))


@pytest.mark.parametrize("n,trials", [(5, 8000), (50, 2000)])
def test_the_mean_interval_is_a_z_interval_whose_half_width_is_1_96_sd_over_root_n(n, trials):
    sigma = 3.0
    data = np.random.default_rng(n).normal(-1.0, sigma, size=(trials, n))
    ci = np.array([mean_ci(x)["ci95"] for x in data])
    assert np.allclose(ci.mean(1), data.mean(1))  # centred on the mean
    hits = (ci[:, 0] <= -1.0) & (-1.0 <= ci[:, 1])
    assert_coverage(hits, t_coverage(n - 1, Z), what=f"mean_ci, n={n}")
    # E[half width] = 1.96 E[s] / sqrt(n), s the sample sd (divisor n - 1): E[s] = c4(n) sigma.
    assert_width(np.mean(np.diff(ci, axis=1)) / 2 / (Z * c4(n) * sigma / math.sqrt(n)), 0.03, f"mean_ci, n={n}")
    assert all(math.isnan(v) for v in mean_ci(np.array([]))["ci95"])  # no episode: NaN


GAMMA = 0.9


def episodes(rng: np.random.Generator, n: int, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths uniform on 1..longest; reward +1 with probability 0.6 - L/50, -1 with 0.1, else 0."""
    length = rng.integers(1, longest + 1, n)
    u = rng.random(n)
    reward = np.where(u < 0.6 - length / 50, 1.0, np.where(u < 0.7 - length / 50, -1.0, 0.0))
    return reward, length


def true_return_per_step(longest: int) -> float:
    """E[R (1 - gamma^L) / (1 - gamma)] / E[L] for `episodes`, exactly (L is uniform on 1..longest)."""
    L = np.arange(1, longest + 1)
    expected_reward = (0.6 - L / 50) - 0.1
    return float(np.mean(expected_reward * (1 - GAMMA**L) / (1 - GAMMA)) / np.mean(L))


@pytest.mark.parametrize("longest", [20, 4])  # short episodes: discounting one step more or less shows
def test_the_delta_method_interval_of_the_return_per_step_covers_the_true_ratio(longest):
    truth = true_return_per_step(longest)
    assert 0.1 < truth < 0.9  # far from 0 and 1: dividing by the wrong mean would show
    n, trials, rng = 200, 3000, np.random.default_rng(6)
    results = [discounted_return_per_step(*episodes(rng, n, longest), GAMMA) for _ in range(trials)]
    hits, width = simulate([r["ci95"] for r in results], np.array([r["mean"] for r in results]), truth)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "delta method, rewards on the last step")
    assert_width(width, 0.06, "delta method, rewards on the last step")


def test_the_delta_method_interval_covers_the_true_ratio_from_returns_to_go_too():
    # Each episode's summed returns-to-go: L * U, U ~ N(0.3, 0.1) independent of L: the ratio is 0.3.
    # The return follows the length closely: only the residual about ratio * L (each episode's own
    # length) is noise; taking it about ratio * mean length would widen the interval ~1.8x.
    n, trials, rng = 200, 3000, np.random.default_rng(7)
    results = []
    for _ in range(trials):
        length = rng.integers(1, 31, n)
        return_to_go = length * rng.normal(0.3, 0.1, n)
        results.append(discounted_return_per_step(np.zeros(n), length, GAMMA, return_to_go))
    hits, width = simulate([r["ci95"] for r in results], np.array([r["mean"] for r in results]), 0.3)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "delta method, returns-to-go")
    assert_width(width, 0.06, "delta method, returns-to-go")


# ------------------------------------------------------------------- the report's intervals


def fast_bootstrap(groups, statistic, resamples=RESAMPLES, seed=0, confidence=0.95):
    """The report's bootstrap with fewer resamples (the tests' precision needs no more)."""
    return stratified_bootstrap_ci(groups, statistic, min(resamples, RESAMPLES), seed, confidence)


def test_the_reports_mean_and_iqm_intervals_over_seeds_cover_the_population_mean_and_iqm(monkeypatch):
    monkeypatch.setattr(tables, "stratified_bootstrap_ci", fast_bootstrap)
    monkeypatch.setattr(tables, "HEADLINE", ("return_per_step",))
    a, b = math.log(4 / 3), math.log(4)
    iqm = 2 * ((a + 1) * 0.75 - (b + 1) * 0.25)
    n, trials = 40, 800
    data = np.random.default_rng(8).exponential(1.0, size=(trials, n))
    rows = [{"method": "m", "oversight": float(i), "seed": s, "evaluated": True, "return_per_step": float(v),
             "test_return_per_step": math.nan, "test_p_proxy_when_unobserved": math.nan}
            for i, x in enumerate(data) for s, v in enumerate(x)]
    rows += [{**r, "evaluated": False, "return_per_step": 99.0} for r in rows[:: n]]  # another variant: not pooled
    summary = sorted(tables.summary_rows(rows), key=lambda r: r["oversight"])
    assert len(summary) == trials and all(r["seeds"] == n for r in summary)
    for key, truth, estimate in (("ci", 1.0, data.mean(1)), ("iqm_ci", iqm, interquartile_mean(data))):
        hits, width = simulate([(r[f"{key}_low"], r[f"{key}_high"]) for r in summary], estimate, truth)
        # An exponential's mean over 40 runs is skewed: its percentile bootstrap undercovers ~3 points.
        assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE + 0.01, f"summary {key}")
        assert_width(width, 0.10, f"summary {key}")


def test_the_reports_difference_interval_covers_the_difference_of_means():
    n_a, n_b, trials, rng = 30, 50, 1500, np.random.default_rng(9)
    datasets = [(rng.normal(1.0, 1.0, n_a), rng.normal(0.0, 2.0, n_b)) for _ in range(trials)]
    ci = [tables.difference_ci(a, b, RESAMPLES, seed=i) for i, (a, b) in enumerate(datasets)]
    hits, width = simulate(ci, np.array([a.mean() - b.mean() for a, b in datasets]), 1.0)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "difference of means")
    assert_width(width, 0.08, "difference of means")


def test_the_comparison_rows_hold_the_difference_and_improvement_intervals_of_their_own_runs(monkeypatch):
    monkeypatch.setattr(tables, "stratified_bootstrap_ci", fast_bootstrap)
    rng = np.random.default_rng(10)
    runs = {(m, p): rng.normal(mu + p, 1.0, 6) for m, mu in (("routing", 1.0), ("naive", 0.0)) for p in (0.1, 0.5)}
    rows = [{"method": m, "oversight": p, "evaluated": True, "return_per_step": float(v)}
            for (m, p), values in runs.items() for v in values]
    rows += [{"method": "naive", "oversight": 0.1, "evaluated": False, "return_per_step": 50.0}]  # not the evaluated variant
    out = {r["oversight"]: r for r in tables.comparison_rows(rows)}
    assert set(out) == {0.1, 0.5, tables.ALL_LEVELS}
    for p in (0.1, 0.5):
        a, b = runs[("routing", p)], runs[("naive", p)]
        assert (out[p]["ci_low"], out[p]["ci_high"]) == tables.difference_ci(a, b)
        assert (out[p]["p_improvement_ci_low"], out[p]["p_improvement_ci_high"]) == probability_of_improvement_ci([a], [b])
    both = [runs[("routing", p)] for p in (0.1, 0.5)], [runs[("naive", p)] for p in (0.1, 0.5)]
    assert (out["all"]["p_improvement_ci_low"], out["all"]["p_improvement_ci_high"]) == probability_of_improvement_ci(*both)


def test_the_aggregate_intervals_cover_the_iqm_of_the_strata_mixture_and_the_probability_of_improvement():
    # Method "m": stratum 1 ~ Exp(1), stratum 2 ~ 1 + Exp(1), 20 runs each: its pooled IQM estimates the
    # IQM of the half-half mixture. "ref" is "m" shifted by +0.5 and -0.25: with X = d + E1, Y = E2,
    # P(X > Y) = 1 - e^-d / 2 for d >= 0 and e^d / 2 for d < 0.
    mixture = population_iqm(lambda x: (exponential_pdf(x) + exponential_pdf(x, 1.0)) / 2, 0.0, 40.0)
    improvement = ((1 - math.exp(-0.5) / 2) + math.exp(-0.25) / 2) / 2
    n, trials, rng = 20, 600, np.random.default_rng(11)
    rows = []
    for _ in range(trials):
        normalised = {("e", 0.1): {"m": rng.exponential(1, n), "ref": 0.5 + rng.exponential(1, n)},
                      ("e", 0.5): {"m": 1 + rng.exponential(1, n), "ref": 0.75 + rng.exponential(1, n)}}
        rows.append({r["method"]: r for r in aggregate.aggregate_rows(normalised, "ref", RESAMPLES)}["m"])
    assert all(r["runs"] == 2 * n and r["strata"] == 2 for r in rows)
    hits, width = simulate([(r["iqm_ci_low"], r["iqm_ci_high"]) for r in rows], np.array([r["iqm"] for r in rows]), mixture)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "aggregate IQM")
    assert_width(width, 0.10, "aggregate IQM")
    hits, width = simulate([(r["p_improvement_ci_low"], r["p_improvement_ci_high"]) for r in rows],
                           np.array([r["p_improvement"] for r in rows]), improvement)
    assert_coverage(hits, NOMINAL, BOOTSTRAP_ALLOWANCE, "aggregate probability of improvement")
    assert_width(width, 0.10, "aggregate probability of improvement")
