"""Across environments: scores normalised between a random policy and `oracle_all_labels`, their
IQMs and the probability of improvement, hand-computed."""

import numpy as np
import pytest

from analysis.aggregate import (
    UPPER,
    aggregate_rows,
    normalised_scores,
    scoring_kwargs,
)
from analysis.statistics import probability_of_improvement


def row(method, oversight, score, evaluated=True):
    return {"method": method, "oversight": oversight, "return_per_step": score, "evaluated": evaluated}


ROWS = {
    "maze": [row(UPPER, 0.1, 0.5), row(UPPER, 0.1, 0.7), row("naive", 0.1, 0.1), row("naive", 0.1, 0.3),
             row("routing", 0.1, 0.6), row("routing", 0.1, 0.4), row("routing", 0.1, 9.9, evaluated=False),
             row("filtering", 0.1, 0.35)],
    "keys": [row(UPPER, 0.1, 0.2), row("naive", 0.1, 0.0), row("routing", 0.1, 0.1)],
    "lava": [row("naive", 0.1, 0.3)],  # no upper bound: left out
}
RANDOM = {("maze", 0.1): 0.1, ("keys", 0.1): -0.2, ("lava", 0.1): 0.0}


def test_scores_are_normalised_between_the_random_policy_and_the_upper_bound():
    scores = normalised_scores(ROWS, RANDOM)
    assert set(scores) == {("maze", 0.1), ("keys", 0.1)}
    # maze: random 0.1, upper mean 0.6 -> (s - 0.1) / 0.5; keys: random -0.2, upper 0.2 -> (s + 0.2) / 0.4
    np.testing.assert_allclose(scores[("maze", 0.1)]["naive"], [0.0, 0.4])
    np.testing.assert_allclose(scores[("maze", 0.1)]["routing"], [1.0, 0.6])  # the unevaluated variant left out
    np.testing.assert_allclose(scores[("keys", 0.1)]["routing"], [0.75])
    np.testing.assert_allclose(scores[("keys", 0.1)][UPPER], [1.0])


def test_an_upper_bound_no_better_than_random_leaves_its_stratum_out():
    assert normalised_scores({"keys": ROWS["keys"]}, {("keys", 0.1): 0.5}) == {}


def test_a_run_evaluated_under_a_test_placement_is_scored_there():
    shifted = {"cheese": [dict(row(UPPER, 0.1, 0.9), test_return_per_step=0.5),
                          dict(row("naive", 0.1, 0.8), test_return_per_step=0.2),
                          dict(row("routing", 0.1, 0.3), test_return_per_step=float("nan"))]}
    scores = normalised_scores(shifted, {("cheese", 0.1): 0.0})[("cheese", 0.1)]
    # upper 0.5 (its test score), random 0: naive 0.2 / 0.5; routing has no test score, so its own 0.3
    np.testing.assert_allclose([scores["naive"][0], scores["routing"][0]], [0.4, 0.6])


def test_the_random_policy_plays_the_test_placement_only_where_there_is_one():
    assert scoring_kwargs("OversightGrid/CheeseInCorner-7x7-v0", {}) == {"placement": "test"}
    assert scoring_kwargs("OversightGrid/CheeseInCorner-7x7-v0", {"max_steps": 40}) == {"max_steps": 40, "placement": "test"}
    assert scoring_kwargs("OversightGrid/DiamondGhost-5x5-v0", {"max_steps": 40}) == {"max_steps": 40}


def test_aggregates_pool_the_strata_and_compare_within_them():
    rows = {r["method"]: r for r in aggregate_rows(normalised_scores(ROWS, RANDOM), "routing", resamples=200)}
    assert (rows["naive"]["runs"], rows["naive"]["strata"]) == (3, 2)
    assert rows["naive"]["iqm"] == pytest.approx(0.3)  # [0, 0.4, 0.5]: a quarter of 3 runs rounds to none cut
    assert rows["routing"]["mean"] == pytest.approx((1.0 + 0.6 + 0.75) / 3)
    # P(routing > naive): maze 4 of 4 pairs, keys 1 of 1 -> 1.0; averaged over the two strata
    assert rows["naive"]["p_improvement"] == pytest.approx(1.0)
    expected = probability_of_improvement([np.array([1.0, 0.6]), np.array([0.75])], [np.array([0.0, 0.4]), np.array([0.5])])
    assert rows["naive"]["p_improvement"] == pytest.approx(float(expected))
    assert np.isnan(rows["routing"]["p_improvement"])
    assert np.isnan(rows["naive"]["iqm_ci_low"])  # strata of 2 and 1 runs: too few for an interval
    # filtering ran on the maze only: compared there alone (routing's 1.0 and 0.6 against its 0.5)
    assert (rows["filtering"]["strata"], rows["filtering"]["p_improvement"]) == (1, pytest.approx(1.0))


def test_the_aggregate_figure_draws_every_method_and_skips_the_reference_s_own_improvement(tmp_path, monkeypatch):
    from analysis import zoo_figures

    rows = aggregate_rows(normalised_scores(ROWS, RANDOM), "routing", resamples=200)
    drawn = []
    save = zoo_figures.save_figure
    monkeypatch.setattr(zoo_figures, "save_figure", lambda fig, path: (drawn.append(fig.axes), save(fig, path)))
    zoo_figures.plot_aggregate(rows, "routing", tmp_path / "aggregate.png")
    left, right = drawn[0]
    by_iqm = [r["method"] for r in sorted(rows, key=lambda r: r["iqm"])]
    assert [t.get_text().split(" ")[0] for t in left.get_yticklabels()] == by_iqm
    assert len(left.containers) == len(rows) and len(right.containers) == len(rows) - 1  # no P(routing > routing)
    assert (tmp_path / "aggregate.png").stat().st_size > 0


def test_both_figures_of_an_index_report_draw_a_method_in_the_colour_they_are_given(tmp_path, monkeypatch):
    from matplotlib.colors import to_rgba

    from analysis import zoo_figures

    colors = {"filtering": "tab:red", "naive": "tab:green", "routing": "tab:blue", UPPER: "tab:grey"}
    drawn = []
    monkeypatch.setattr(zoo_figures, "save_figure", lambda fig, path: drawn.append(fig.axes))
    zoo_figures.plot_aggregate(aggregate_rows(normalised_scores(ROWS, RANDOM), "routing", resamples=50), "routing",
                               tmp_path / "aggregate.png", colors)
    summary = [{"method": m, "oversight": 0.1, "metric": "return_per_step", "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
               for m in ("naive", "routing")]  # fewer methods than the aggregate: the colours must not shift
    zoo_figures.plot_environment_panels({"maze": summary}, tmp_path / "environments.png", colors)
    aggregate_ax, panel_ax = drawn[0][0], drawn[1][0]
    labels = [t.get_text().split(" ")[0] for t in aggregate_ax.get_yticklabels()]
    for ax, methods in ((aggregate_ax, labels), (panel_ax, ["naive", "routing"])):
        drawn_colours = [c.lines[0].get_color() for c in ax.containers]
        assert [to_rgba(c) for c in drawn_colours] == [to_rgba(colors[m]) for m in methods]
