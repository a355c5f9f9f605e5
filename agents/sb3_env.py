"""The batched twin behind stable-baselines3's `VecEnv` interface: `TwinVecEnv`, `make_twin_vec_env`.

It lives with the agents because it adapts an environment to an agent library: `oversight_env`
imports no agent library. SB3 algorithms train on it unmodified
(`PPO("MlpPolicy", make_twin_vec_env(env_id, 64))`). Info dicts carry
content only where an episode ended (`terminal_observation`, `TimeLimit.truncated` and the
episode record of `OversightGridEnv`'s final info, whose `outcome` is the overseer's verdict, as a
trainer may read it: the truth but where an overseer misjudged, or was fooled by, a watched
episode); every other environment's info is empty.
Code that wants tensors rather than dicts reads `last_step`, the twin's latest `TwinStep`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvStepReturn,
)

from oversight_env import make_batched
from oversight_env.batched import BatchedOversightEnv, TwinStep
from oversight_env.spec import NEARER_LABELS, Action, Outcome


class TwinVecEnv(VecEnv):
    """Adapts a `BatchedOversightEnv` to SB3. Seeding with `seed(s)` applies at the next reset,
    as for SB3's own vector environments; the whole batch shares one generator seeded with `s`."""

    def __init__(self, twin: BatchedOversightEnv):
        self.twin = twin
        observation_space = spaces.Box(0.0, 1.0, shape=twin.obs_shape, dtype=np.float32)
        super().__init__(twin.num_envs, observation_space, spaces.Discrete(len(Action)))
        self._actions: np.ndarray | None = None
        self.last_step: TwinStep | None = None

    def reset(self) -> np.ndarray:
        obs, facts = self.twin.reset(seed=self._seeds[0])
        self._reset_seeds()
        self.reset_infos = _fact_dicts(facts, range(self.num_envs))
        return obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        step = self.twin.step(self._actions)
        self.last_step = step
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done = step.done_indices.tolist()
        if done:
            final_obs = step.final_obs.cpu().numpy()
            records = _fact_dicts(step.facts, done)
            truncated = step.truncated[step.done_indices].tolist()
            outcome = step.reported[step.done_indices].tolist()  # the overseer's verdict (spec rule 4)
            overseen = step.overseen[step.done_indices].tolist()
            true_reward = step.true_return[step.done_indices].tolist()  # the episode's
            for j, i in enumerate(done):
                infos[i] = {
                    "terminal_observation": final_obs[j],
                    "TimeLimit.truncated": truncated[j],
                    "outcome": Outcome(outcome[j]).label,
                    "overseen": overseen[j],
                    "true_reward": true_reward[j],
                    **records[j],
                }
        return (
            step.obs.cpu().numpy(),
            step.reward.cpu().numpy(),
            step.done.cpu().numpy(),
            infos,
        )

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.twin, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"indices={indices!r} is invalid: the twin's attributes are shared by all environments")
        setattr(self.twin, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self.twin, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _fact_dicts(facts: dict[str, Any], indices: Sequence[int] | range) -> list[dict[str, Any]]:
    """The facts at reset of environments `indices`, as one info dict each (labels, not codes)."""
    index = torch.as_tensor(list(indices), dtype=torch.long)
    nearer = facts["nearer"][index].tolist()
    intended = facts["intended_overseen"][index].tolist()
    proxy = facts["proxy_overseen"][index].tolist()
    return [
        {"nearer": NEARER_LABELS[n], "intended_overseen": d, "proxy_overseen": g}
        for n, d, g in zip(nearer, intended, proxy)
    ]


def make_twin_vec_env(
    env_id: str, num_envs: int, seed: int | None = None, monitor: bool = True, **kwargs: Any
) -> VecEnv:
    """An SB3 vector environment stepping `num_envs` copies of `env_id` as one batch.

    With `monitor` (default) it is wrapped in SB3's `VecMonitor`, as SB3's own `make_vec_env`
    wraps `Monitor`, so episode returns and lengths reach SB3's logs.
    """
    venv = TwinVecEnv(make_batched(env_id, num_envs, seed=seed, **kwargs))
    return VecMonitor(venv) if monitor else venv
