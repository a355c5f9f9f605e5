"""Batch construction: one pure function turns a rollout window into what the loss needs.

`build_batch(rollout, method, rule)` returns, for every (step, environment) of a window of T
steps of B environments, the routing label, the sample weight, the return and the advantage.
Both trainers call it (the lean trainer directly, `RoutedPPO` from its rollout buffer), and it
is tested on hand-computed cases. Conventions:

- `done[t, b]`: environment b's episode ended at step t (terminated or truncated); the next
  step belongs to a new episode. `outcome`/`overseen` describe the episode that ended there.
- Labels and weights come from the method (`Method.step_labels`, `Method.step_weights`); a
  step's label exists only once its episode has ended (`routing.propagate_episode_labels`).
- REINFORCE (the paper's): the discounted return within the window, 0 after the window's end
  and after every episode end; advantage = return - value. With `bootstrap`, returns cut off by
  the window continue from the value of the next observation, and truncated episodes from the
  value of their final observation.
- PPO: generalized advantage estimation; window ends and truncated episodes are always
  bootstrapped (as stable-baselines3 and CleanRL do); return = advantage + value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from agents.methods import Method


@dataclass(frozen=True)
class Rollout:
    """One rollout window's tensors, all (T, B) but `last_value` (B,)."""

    rewards: torch.Tensor  # the reward trained on
    values: torch.Tensor  # the critic's value of each step's observation
    done: torch.Tensor  # bool: the episode ended at this step
    truncated: torch.Tensor  # bool: ... by the step limit (a subset of done)
    outcome: torch.Tensor  # int64 Outcome codes of episodes ending at this step (0 elsewhere)
    overseen: torch.Tensor  # bool: the episode ending at this step ended overseen
    last_value: torch.Tensor  # the value of the observation after the window's last step
    # The value of the final observation of episodes truncated at this step (0 elsewhere), or
    # None when `rewards` already include the bootstrap (stable-baselines3 adds it itself).
    timeout_values: torch.Tensor | None = None


@dataclass(frozen=True)
class ReturnRule:
    """How returns and advantages are computed (see the module docstring)."""

    algorithm: str  # "reinforce" or "ppo"
    gamma: float
    gae_lambda: float = 0.95  # PPO only
    bootstrap: bool = False  # REINFORCE only: PPO always bootstraps

    @property
    def bootstraps(self) -> bool:
        return self.algorithm == "ppo" or self.bootstrap


class Batch(NamedTuple):
    labels: torch.Tensor  # int64 (T, B): routing labels (routing.UNLABELLED where none)
    weights: torch.Tensor  # float32 (T, B): sample weights of the loss
    returns: torch.Tensor  # float32 (T, B): the critic's targets
    advantages: torch.Tensor  # float32 (T, B)


def build_batch(rollout: Rollout, method: Method, rule: ReturnRule) -> Batch:
    """Labels, weights, returns and advantages of one rollout window."""
    labels = method.step_labels(rollout.done, rollout.outcome, rollout.overseen)
    weights = method.step_weights(rollout.done, rollout.outcome, rollout.overseen)
    returns, advantages = returns_and_advantages(rollout, rule)
    return Batch(labels, weights, returns, advantages)


def returns_and_advantages(rollout: Rollout, rule: ReturnRule) -> tuple[torch.Tensor, torch.Tensor]:
    """(returns, advantages), each (T, B), by `rule`."""
    rewards, values = rollout.rewards.float(), rollout.values.float()
    if rule.bootstraps and rollout.timeout_values is not None:
        rewards = rewards + rule.gamma * rollout.timeout_values.float() * rollout.truncated
    not_done = (~rollout.done).float()
    steps = rewards.shape[0]
    next_value = rollout.last_value.float() if rule.bootstraps else torch.zeros_like(rollout.last_value, dtype=torch.float32)
    returns, advantages = torch.empty_like(rewards), torch.empty_like(rewards)
    if rule.algorithm == "ppo":
        gae = torch.zeros_like(next_value)
        for t in reversed(range(steps)):
            delta = rewards[t] + rule.gamma * next_value * not_done[t] - values[t]
            gae = delta + rule.gamma * rule.gae_lambda * not_done[t] * gae
            advantages[t], next_value = gae, values[t]
        return advantages + values, advantages
    running = next_value
    for t in reversed(range(steps)):
        running = rewards[t] + rule.gamma * running * not_done[t]
        returns[t] = running
    return returns, returns - values
