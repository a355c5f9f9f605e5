"""Across environments: scores normalised per environment, their interquartile means and the
probability of improvement of one method over each other (`oversight report` of a spec with
several environments writes them; Agarwal et al. 2021's recommendations).

A run's normalised score is `(s - random) / (oracle - random)`: 0 is a uniformly random policy on
that environment (computed here, on fresh episodes), 1 the mean over seeds of the method
`oracle_all_labels` (the true reward of every episode for the whole budget) on that environment
and oversight level. Each (environment, oversight level) is a stratum of the bootstrap.

An environment with a train/test placement shift (CheeseInCorner) is scored under its test
placement, every method and the random policy alike: under the training placement the intended
object mostly sits where the proxy is, so only the test placement tells the two goals apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from agents.methods import normaliser
from analysis.statistics import (
    RESAMPLES,
    format_interval,
    interquartile_mean,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

UPPER = normaliser()  # the method that scores 1 (agents.methods: its `normaliser` flag)
AGGREGATE_COLUMNS = ["method", "runs", "strata", "iqm", "iqm_ci_low", "iqm_ci_high", "mean",
                     "p_improvement", "p_improvement_ci_low", "p_improvement_ci_high"]


def scoring_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The environment's kwargs as its runs are scored: under the test placement where it has one."""
    from agents.evaluator import has_placement_shift

    return {**env_kwargs, "placement": "test"} if has_placement_shift(env_id, env_kwargs) else env_kwargs


def run_score(row: dict[str, Any]) -> float:
    """A result row's score: its return per step under the test placement where it was evaluated
    there (`report.result_rows`: NaN where not), else under the training placement."""
    test = row.get("test_return_per_step", math.nan)
    return row["return_per_step"] if math.isnan(test) else test


def random_policy_score(env_id: str, env_kwargs: dict[str, Any], oversight: float, episodes: int = 8192,
                        gamma: float = 0.97, seed: int = 0) -> float:
    """The discounted return per step of a uniformly random policy on fresh episodes."""
    from agents.evaluator import run_episodes
    from agents.metrics import episode_statistics
    from agents.networks import ActorCritic
    from oversight_env import make_oversight_env

    env = make_oversight_env(env_id, **env_kwargs)
    env.close()
    net = ActorCritic(env.observation_space.shape, int(env.action_space.n), experts=("intended",))
    with torch.no_grad():
        for parameter in net.actor.parameters():
            parameter.zero_()  # equal logits: every action equally likely
    data = run_episodes(net, env_id, episodes, seed, oversight_prob=oversight, env_kwargs=env_kwargs, gamma=gamma)
    return float(episode_statistics(**data, gamma=gamma)["discounted_return_per_step"]["mean"])


def normalised_scores(rows: dict[str, list[dict[str, Any]]], random: dict[tuple[str, float], float]) -> dict:
    """{(env, oversight): {method: normalised scores}} from each environment's evaluated result rows
    (`report.result_rows`; `run_score` of each) and the random policy's score per (env, oversight,
    under `scoring_kwargs`); strata without
    `UPPER` runs, or where it does not beat the random policy, are left out."""
    scores: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for env, env_rows in rows.items():
        for r in env_rows:
            if r["evaluated"]:
                scores[(env, r["oversight"])][r["method"]].append(run_score(r))
    out = {}
    for stratum, by_method in scores.items():
        if UPPER not in by_method or stratum not in random:
            continue
        low, high = random[stratum], float(np.mean(by_method[UPPER]))
        if high <= low:
            continue
        out[stratum] = {m: (np.array(v) - low) / (high - low) for m, v in by_method.items()}
    return out


def aggregate_rows(normalised: dict, reference: str, resamples: int = RESAMPLES) -> list[dict[str, Any]]:
    """Per method: the IQM of its normalised scores over every stratum, with a stratified bootstrap
    interval, and `reference`'s probability of improvement over it, over the strata both have."""
    methods = sorted({m for by_method in normalised.values() for m in by_method})
    out = []
    for method in methods:
        groups = [by_method[method] for by_method in normalised.values() if method in by_method]
        runs = np.concatenate(groups)
        low, high = stratified_bootstrap_ci(groups, lambda g: interquartile_mean(np.concatenate(g, axis=-1)), resamples)
        row = {"method": method, "runs": len(runs), "strata": len(groups), "iqm": float(interquartile_mean(runs)),
               "iqm_ci_low": low, "iqm_ci_high": high, "mean": float(runs.mean()),
               "p_improvement": np.nan, "p_improvement_ci_low": np.nan, "p_improvement_ci_high": np.nan}
        shared = [s for s, by_method in normalised.items() if method in by_method and reference in by_method]
        if method != reference and shared:
            x, y = [normalised[s][reference] for s in shared], [normalised[s][method] for s in shared]
            ci = probability_of_improvement_ci(x, y, resamples)
            row.update(p_improvement=float(probability_of_improvement(x, y)), p_improvement_ci_low=ci[0],
                       p_improvement_ci_high=ci[1])
        out.append(row)
    return out


def aggregate_table(rows: list[dict[str, Any]], reference: str) -> str:
    lines = [f"| method | runs (strata) | normalised score: IQM [95% CI] | mean | P({reference} > method) [95% CI] |",
             "|---|---:|---|---:|---|"]
    for r in rows:
        improvement = "" if np.isnan(r["p_improvement"]) else (
            f"{r['p_improvement']:.2f} {format_interval(r['p_improvement_ci_low'], r['p_improvement_ci_high'], '{:.2f}')}")
        lines.append(f"| {r['method']} | {r['runs']} ({r['strata']}) | {r['iqm']:.3f} "
                     f"{format_interval(r['iqm_ci_low'], r['iqm_ci_high'])} | {r['mean']:.3f} | {improvement} |")
    return "\n".join(lines)
