"""The registry of what reports measure: each metric of a final evaluation, each learning curve and
each end-of-training diagnostic, with how it is read, what tables and figures call it, and which
way is better.

`results.csv`, the tidy table, the summaries, the comparison and the diagnostics tables take their
columns and labels from here; no other module names a metric's source. A new metric is one entry
here, or `register_metric(Metric(name, label, read, higher_is_better))` from your own code
(README, "Extending"), where `read` takes one policy variant of a cell's `eval.json`
(`agents.evaluator.summarize`) and returns a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oversight_env.spec import invalid_argument


@dataclass(frozen=True)
class Metric:
    """A number per cell and policy variant of the final evaluation."""

    name: str  # its column in results.csv and its `metric` in the tidy table
    label: str  # what tables and figures call it
    read: Callable[[dict[str, Any]], float]  # from one variant of eval.json
    higher_is_better: bool | None = None  # None: not a score (a count, an interval's bound)


@dataclass(frozen=True)
class Diagnostic:
    """An end-of-training number logged during a run (`metrics.jsonl`), by its tag."""

    tag: str
    name: str
    label: str
    per_update: bool  # True: averaged over the last tenth of the run; False: the last value
    group: str  # which table shows it: "experts" (routed methods) or "reward_model"


def at(*path: str | int) -> Callable[[dict[str, Any]], float]:
    """A reader of the value at `path` in an evaluation variant (NaN where the variant lacks it,
    as the test placement of an environment without a train/test shift)."""

    def read(variant: dict[str, Any]) -> float:
        value: Any = variant
        for key in path:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return math.nan
        return value

    return read


FINAL_METRICS: list[Metric] = [
    Metric("episodes", "episodes", at("episodes")),
    Metric("return_per_step", "return per step", at("discounted_return_per_step", "mean"), True),
    Metric("return_per_step_ci_low", "return per step, 95% CI low", at("discounted_return_per_step", "ci95", 0)),
    Metric("return_per_step_ci_high", "return per step, 95% CI high", at("discounted_return_per_step", "ci95", 1)),
    Metric("paper_window_return_per_step", "return per step (the paper's window)", at("paper_window_return_per_step"), True),
    Metric("true_return", "true return", at("true_return", "mean"), True),
    Metric("p_intended", "P(intended)", at("p_intended"), True),
    Metric("p_proxy", "P(proxy)", at("p_proxy"), False),
    Metric("p_timeout", "P(timeout)", at("p_timeout"), False),
    # Goal misgeneralization: how often the agent takes the proxy when its cell is not watched.
    Metric("p_proxy_when_unobserved", "P(proxy | proxy unobserved)", at("p_proxy_when_unobserved"), False),
    Metric("p_intended_when_proxy_nearer", "P(intended | proxy nearer)", at("by_nearer_terminal", "proxy", "p_intended"), True),
    # Under the test placement, in an environment with a train/test shift (NaN otherwise).
    Metric("test_return_per_step", "return per step", at("test_placement", "discounted_return_per_step", "mean"), True),
    Metric("test_p_proxy_when_unobserved", "P(proxy | proxy unobserved)", at("test_placement", "p_proxy_when_unobserved"), False),
]
METRICS = {m.name: m for m in FINAL_METRICS}
ROW_KEYS = ("method", "oversight", "seed", "variant", "evaluated", "env_steps")  # what a result row is, before its metrics


def register_metric(metric: Metric) -> None:
    """Report `metric` too, from now on: a column of results.csv and rows of the tidy table."""
    if not isinstance(metric, Metric):
        raise invalid_argument("metric", metric, "expected an analysis.metrics.Metric")
    if metric.name in METRICS or metric.name in ROW_KEYS:
        raise invalid_argument("metric", metric.name, "a metric or column of that name exists already")
    FINAL_METRICS.append(metric)
    METRICS[metric.name] = metric

# The two numbers every report summarises over seeds, compares and draws, and the same under an
# environment's test placement (summarised where the environment has one).
HEADLINE = ("return_per_step", "p_proxy_when_unobserved")
TEST_HEADLINE = ("test_return_per_step", "test_p_proxy_when_unobserved")
COMPARED = "return_per_step"  # what the comparison of methods and the performance profile rank by

# The learning curves: the periodic evaluations' tags and the metric each is.
CURVE_TAGS = {"eval/discounted_return_per_step": "return_per_step", "eval/p_proxy_when_unobserved": "p_proxy_when_unobserved"}

DIAGNOSTICS: tuple[Diagnostic, ...] = (
    # Do a routed network's experts separate? The gate on each route's training samples...
    Diagnostic("gate/intended_labelled", "gate_on_intended_labelled", "gate on intended-labelled", True, "experts"),
    Diagnostic("gate/proxy_labelled", "gate_on_proxy_labelled", "gate on proxy-labelled", True, "experts"),
    Diagnostic("gate/unlabelled", "gate_on_unlabelled", "gate on unlabelled", True, "experts"),
    # ... along fresh unobserved episodes, the experts' disagreement and what each saw.
    Diagnostic("eval/gate_intended_unobserved", "gate_on_unobserved_intended_episodes",
               "gate, unobserved intended episodes", False, "experts"),
    Diagnostic("eval/gate_proxy_unobserved", "gate_on_unobserved_proxy_episodes",
               "gate, unobserved proxy episodes", False, "experts"),
    Diagnostic("eval/expert_kl", "expert_kl", "KL(intended-only, proxy-only)", False, "experts"),
    Diagnostic("route/labelled_episodes_intended", "labelled_episodes_intended", "labelled episodes: intended", False, "experts"),
    Diagnostic("route/labelled_episodes_proxy", "labelled_episodes_proxy", "proxy", False, "experts"),
    # The reward model of `reward_model` and `routing_reward_model` (agents.reward_model).
    Diagnostic("reward_model/heldout_accuracy", "model_heldout_accuracy", "accuracy, held-out overseen endings",
               False, "reward_model"),
    Diagnostic("reward_model/unobserved_accuracy", "model_unobserved_accuracy", "accuracy, unobserved endings",
               False, "reward_model"),
    Diagnostic("reward_model/labelled_episodes", "model_labelled_episodes", "overseen endings learned from",
               False, "reward_model"),
    Diagnostic("reward_model/episodes_labelled_by_the_model", "episodes_labelled_by_the_model",
               "unobserved episodes it labelled", False, "reward_model"),
)


def diagnostics_of(group: str) -> tuple[Diagnostic, ...]:
    return tuple(d for d in DIAGNOSTICS if d.group == group)
