"""Partial oversight for any gymnasium environment: the `PartialOversight` wrapper, its registration,
and `VectorOversightEnv`, which steps many of them behind the batched twin's interface.

An environment without a batched twin becomes a partial-oversight one with two functions: which
outcome an episode reached (`outcome(env, info)`: Outcome.INTENDED, Outcome.PROXY or
NONE) and, when its observations are not already float planes (C, H, W), how to make them
(`observation(obs)`; `minigrid_planes` does it for MiniGrid's grids). The wrapper then oversees
each episode with `oversight_prob` (a supervisor, per episode, visible as an extra plane if
`observe_oversight`) and pays the rewards of `spec.REWARDS` on the episode's last step, by its
outcome and oversight, in place of the environment's own reward (kept in `info["env_reward"]`).

`VectorOversightEnv` runs `num_envs` copies one after the other in Python and returns the same
`TwinStep` tensors as the twin, so the lean trainer, every method and the evaluator run on it
unchanged: slower than a twin, but correct. `make_batched` builds one for an id registered with
`register_partial_oversight`.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle  # gymnasium's own dependency: pickles the copies' observation and outcome functions too
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from oversight_env.batched import TwinStep
from oversight_env.env_ids import resolve_env_id
from oversight_env.spec import (
    NEARER_LABELS,
    REWARDS,
    Outcome,
    check_probability,
    invalid_argument,
)

OutcomeFn = Callable[[gym.Env, dict[str, Any]], "Outcome | int | str"]
ObservationFn = Callable[[Any], np.ndarray]


_OUTCOMES = "an Outcome, its code (0 none, 1 intended, 2 proxy) or its label"


def _as_outcome(value: Outcome | int | str, fn: Callable | None = None) -> Outcome:
    """The outcome `fn` returned, refusing what could only be a mistake (True, 1.0, 7)."""
    where = "outcome" if fn is None else f"outcome (what {getattr(fn, '__name__', fn)!s} returned)"
    if isinstance(value, str):
        labels = {o.label: o for o in Outcome}
        if value not in labels:
            raise invalid_argument(where, value, f"expected {_OUTCOMES}: one of {sorted(labels)}")
        return labels[value]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) not in {int(o) for o in Outcome}:
        raise invalid_argument(where, value, f"expected {_OUTCOMES}")
    return Outcome(int(value))


def _check_signature(fn: Callable, argument: str, arguments: int, expected: str) -> None:
    """Refuse a function that cannot be called with `arguments` positional arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: called as it is
        return
    try:
        signature.bind(*range(arguments))
    except TypeError:
        raise invalid_argument(argument, getattr(fn, "__name__", fn), f"takes {signature}: expected {expected}") from None


class PartialOversight(gym.Wrapper):
    """Makes `env` a partial-oversight environment (see the module docstring).

    Args:
        env: any gymnasium environment with a discrete action space.
        outcome: `outcome(env, info)` -> the outcome of the episode that just ended (an `Outcome`,
            its code or its label), called on its last step with that step's info.
        oversight_prob: the probability that an episode is overseen (a supervisor is present).
        reward: "naive" (default), "true" or "outcome": the reward `step` returns.
        observe_oversight: append a plane that is all ones when the supervisor is present.
        observation: `observation(obs)` -> float32 (C, H, W) planes in [0, 1] (default: the
            observation itself, which must then be such planes).
        plane_names: the planes' names (default `plane0`, `plane1`, ...).
    """

    def __init__(
        self,
        env: gym.Env,
        outcome: OutcomeFn,
        oversight_prob: float = 0.1,
        reward: str = "naive",
        observe_oversight: bool = True,
        observation: ObservationFn | None = None,
        plane_names: Sequence[str] | None = None,
    ):
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise invalid_argument("env", env.spec.id if env.spec else env, "expected a discrete action space")
        if not callable(outcome):
            raise invalid_argument("outcome", outcome, "expected a function (env, info) -> outcome")
        _check_signature(outcome, "outcome", 2, "a function (env, info) -> outcome")
        if observation is not None and not callable(observation):
            raise invalid_argument("observation", observation, "expected None or a function obs -> (C, H, W) planes")
        if observation is not None:
            _check_signature(observation, "observation", 1, "a function obs -> (C, H, W) planes")
        if reward not in REWARDS:
            raise invalid_argument("reward", reward, f"expected one of {sorted(REWARDS)}")
        if not isinstance(observe_oversight, (bool, np.bool_)):
            raise invalid_argument("observe_oversight", observe_oversight, "expected True or False")
        self.outcome_fn, self.observation_fn = outcome, observation
        self.oversight_prob = check_probability("oversight_prob", oversight_prob)
        self.reward_name, self.observe_oversight = reward, bool(observe_oversight)
        self.supervised = False
        planes = self._planes(env.reset(seed=0)[0])
        self.plane_names = tuple(plane_names) if plane_names is not None else tuple(f"plane{i}" for i in range(len(planes)))
        if len(self.plane_names) != len(planes):
            raise invalid_argument("plane_names", plane_names, f"expected {len(planes)} names, one per plane")
        if self.observe_oversight:
            self.plane_names += ("oversight",)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(len(self.plane_names), *planes.shape[1:]), dtype=np.float32)

    def _planes(self, obs: Any) -> np.ndarray:
        planes = np.asarray(obs if self.observation_fn is None else self.observation_fn(obs), dtype=np.float32)
        if planes.ndim != 3:
            raise invalid_argument("observation", getattr(planes, "shape", planes), "expected (C, H, W) planes; pass "
                                   "observation=... to make them from this environment's observations")
        if not np.isfinite(planes).all() or planes.min(initial=0.0) < 0.0 or planes.max(initial=0.0) > 1.0:
            bad = planes[~np.isfinite(planes)] if not np.isfinite(planes).all() else planes[(planes < 0) | (planes > 1)]
            raise invalid_argument("observation", float(bad.flat[0]), "expected planes in [0, 1] (a value outside, or "
                                   "NaN); pass observation=... to scale this environment's observations")
        return planes

    def _observe(self, obs: Any) -> np.ndarray:
        planes = self._planes(obs)
        if self.observe_oversight:
            planes = np.concatenate([planes, np.full((1, *planes.shape[1:]), float(self.supervised), np.float32)])
        return planes

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.supervised = bool(self.np_random.random() < self.oversight_prob)
        return self._observe(obs), {**info, **self.facts()}

    def facts(self) -> dict[str, Any]:
        """The facts at reset, as the grid environments report them (which terminal is nearer is unknown)."""
        return {"nearer": NEARER_LABELS[0], "intended_overseen": self.supervised, "proxy_overseen": self.supervised}

    def step(self, action: Any):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        outcome = Outcome.NONE
        if terminated or truncated:
            outcome = _as_outcome(self.outcome_fn(self.env, info), self.outcome_fn)
        overseen = outcome != Outcome.NONE and self.supervised
        info = {**info, "env_reward": env_reward, "outcome": outcome.label, "overseen": overseen,
                "true_reward": REWARDS["true"][outcome][overseen], **self.facts()}
        return self._observe(obs), REWARDS[self.reward_name][outcome][overseen], terminated, truncated, info


def _partial_oversight_entry(base: str | Callable[..., gym.Env], outcome: OutcomeFn, observation: ObservationFn | None = None,
                             plane_names: Sequence[str] | None = None, base_kwargs: dict | None = None,
                             oversight_prob: float = 0.1, reward: str = "naive", observe_oversight: bool = True,
                             render_mode: str | None = None, **kwargs: Any) -> PartialOversight:
    """The entry point of ids registered with `register_partial_oversight` (`render_mode` goes to `base`)."""
    if kwargs:
        name = min(kwargs)
        raise invalid_argument(name, kwargs[name], "PartialOversight takes no such keyword argument; expected one of "
                               "['base_kwargs', 'observe_oversight', 'oversight_prob', 'reward']")
    base_kwargs = {**(base_kwargs or {}), **({"render_mode": render_mode} if render_mode else {})}
    env = gym.make(base, **base_kwargs) if isinstance(base, str) else base(**base_kwargs)
    return PartialOversight(env, outcome, oversight_prob, reward, observe_oversight, observation, plane_names)


def register_partial_oversight(env_id: str, base: str | Callable[..., gym.Env], outcome: OutcomeFn, *,
                               observation: ObservationFn | None = None, plane_names: Sequence[str] | None = None,
                               replace: bool = False, **defaults: Any) -> None:
    """Register under `env_id` the environment `base` (a gymnasium id or a function making one)
    wrapped in `PartialOversight`; `defaults`: `oversight_prob`, `reward`, `observe_oversight` and
    `base_kwargs` (passed to `base`). `make_batched(env_id, n)` then runs n of them as a
    `VectorOversightEnv`. The environment is made once here, so a bad default fails now."""
    if not isinstance(env_id, str):
        raise invalid_argument("env_id", env_id, "expected a string such as 'MyLab/LavaOversight-v0'")
    if env_id in gym.registry and not replace:
        raise invalid_argument("env_id", env_id, "already registered; choose another id, or pass replace=True to replace it")
    kwargs = {"base": base, "outcome": outcome, "observation": observation, "plane_names": plane_names, **defaults}
    _play_one_episode(_partial_oversight_entry(**kwargs))
    gym.registry.pop(env_id, None)
    gym.register(id=env_id, entry_point=_partial_oversight_entry, kwargs=kwargs, disable_env_checker=True)


def _play_one_episode(env: PartialOversight, limit: int = 10_000) -> None:
    """Play one episode of random actions (at most `limit` steps), so that an outcome function that
    returns something else than an outcome, or observations outside [0, 1], fail at registration."""
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(limit):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    finally:
        env.close()


def is_partial_oversight(env_id: str) -> bool:
    """Whether `env_id` (or "module:env_id") was registered with `register_partial_oversight`."""
    env_id = resolve_env_id(env_id)
    return env_id in gym.registry and gym.spec(env_id).entry_point is _partial_oversight_entry


class VectorOversightEnv:
    """`num_envs` copies of a `PartialOversight` environment behind the batched twin's interface.

    `step(actions)` steps each copy in turn, restarts the ones whose episode ended (their last
    observations in `final_obs`, as the twin does) and returns a `TwinStep`. Seeds: copy i's first
    episode is reset with `seed + i`. `state_dict()` pickles the copies themselves, so a run resumes
    exactly where it stopped.
    """

    render_mode = None

    def __init__(self, make_env: Callable[[], PartialOversight], num_envs: int, seed: int | None = None,
                 device: str | torch.device = "cpu"):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise invalid_argument("num_envs", num_envs, "expected an integer >= 1")
        self.envs = [make_env() for _ in range(int(num_envs))]
        first = self.envs[0]
        self.num_envs, self.device = int(num_envs), torch.device(device)
        self.plane_names = first.get_wrapper_attr("plane_names")
        self.obs_shape = first.observation_space.shape
        self.n_actions = int(first.action_space.n)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise invalid_argument("seed", seed, "expected None or an integer >= 0")
        results = [env.reset(seed=None if seed is None else int(seed) + i) for i, env in enumerate(self.envs)]
        self._obs = np.stack([obs for obs, _ in results])
        self.steps = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.true_return = torch.zeros(self.num_envs, device=self.device)
        self._facts = [info for _, info in results]
        return self.observe(), self.facts()

    def facts(self) -> dict[str, torch.Tensor]:
        codes = {label: i for i, label in enumerate(NEARER_LABELS)}
        return {
            "nearer": torch.tensor([codes[f["nearer"]] for f in self._facts], device=self.device),
            "intended_overseen": torch.tensor([f["intended_overseen"] for f in self._facts], device=self.device),
            "proxy_overseen": torch.tensor([f["proxy_overseen"] for f in self._facts], device=self.device),
        }

    def observe(self) -> torch.Tensor:
        return torch.as_tensor(self._obs, device=self.device)

    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> TwinStep:
        actions = torch.as_tensor(actions).cpu().numpy()
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise invalid_argument("actions", f"{actions.dtype} array of shape {actions.shape}",
                                   f"expected {self.num_envs} integers in [0, {self.n_actions})")
        n = self.num_envs
        reward, true_reward = np.zeros(n, np.float32), np.zeros(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        outcome, overseen = np.zeros(n, np.int64), np.zeros(n, bool)
        facts, final_obs, done = self.facts(), [], []
        for i, env in enumerate(self.envs):
            obs, reward[i], terminated[i], truncated[i], info = env.step(int(actions[i]))
            outcome[i], overseen[i], true_reward[i] = int(_as_outcome(info["outcome"])), info["overseen"], info["true_reward"]
            if terminated[i] or truncated[i]:
                done.append(i)
                final_obs.append(obs)
                obs, self._facts[i] = env.reset()
            self._obs[i] = obs
        self.steps = self.steps + 1
        self.true_return = self.true_return + torch.as_tensor(true_reward, device=self.device)
        steps, true_return = self.steps, self.true_return
        done_indices = torch.tensor(done, dtype=torch.long, device=self.device)
        if done:
            self.steps = self.steps.index_put((done_indices,), torch.zeros(len(done), dtype=torch.long, device=self.device))
            self.true_return = self.true_return.index_put((done_indices,), torch.zeros(len(done), device=self.device))
        dev = self.device
        return TwinStep(
            obs=self.observe().clone(), reward=torch.as_tensor(reward, device=dev),
            terminated=torch.as_tensor(terminated, device=dev), truncated=torch.as_tensor(truncated, device=dev),
            outcome=torch.as_tensor(outcome, device=dev),
            # An overseer who sees the outcome: no label noise, no spoof.
            verdict=torch.as_tensor(outcome, device=dev), reported=torch.as_tensor(outcome, device=dev),
            overseen=torch.as_tensor(overseen, device=dev),
            true_reward=torch.as_tensor(true_reward, device=dev), true_return=true_return, steps=steps,
            done_indices=done_indices,
            final_obs=torch.as_tensor(np.stack(final_obs) if final_obs else np.zeros((0, *self.obs_shape), np.float32),
                                      device=dev),
            **facts,
        )

    def state_dict(self) -> dict[str, Any]:
        """The copies (pickled), their observations and counters: everything a resumed run needs."""
        return {"envs": cloudpickle.dumps(self.envs), "obs": self._obs.copy(), "facts": list(self._facts),
                "steps": self.steps.clone(), "true_return": self.true_return.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> torch.Tensor:
        envs = pickle.loads(state["envs"])
        if len(envs) != self.num_envs:
            raise ValueError(f"state['envs'] of {len(envs)} environments is invalid: expected {self.num_envs}")
        self.envs, self._obs, self._facts = envs, state["obs"].copy(), list(state["facts"])
        self.steps, self.true_return = state["steps"].to(self.device), state["true_return"].to(self.device)
        return self.observe()


def minigrid_planes(types: Sequence[str] = ("wall", "goal", "lava")) -> tuple[ObservationFn, tuple[str, ...]]:
    """An observation function for a stock MiniGrid environment seen whole (`FullyObsWrapper`):
    one plane per object type in `types`, and four planes for the agent, one per direction it
    faces (MiniGrid's moves depend on it); with the planes' names."""
    from minigrid.core.constants import OBJECT_TO_IDX

    codes = [OBJECT_TO_IDX[t] for t in types]
    agent = OBJECT_TO_IDX["agent"]

    def observe(obs: dict[str, np.ndarray]) -> np.ndarray:
        grid = obs["image"].transpose(1, 0, 2)  # MiniGrid's (W, H, 3) as (H, W, 3)
        kinds, states = grid[..., 0], grid[..., 2]
        planes = [kinds == code for code in codes]
        planes += [(kinds == agent) & (states == d) for d in range(4)]
        return np.stack(planes).astype(np.float32)

    return observe, (*types, "agent_right", "agent_down", "agent_left", "agent_up")
