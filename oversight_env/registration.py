"""Registering partial-oversight environments with gymnasium, and building their batched twins.

`register_oversight_env` registers a `GridLayout` (or an `OversightGridEnv` subclass) under a
gymnasium id; `make_batched` builds the batched twin of any registered id
from the same layout and settings `gym.make` would use, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from gymnasium.envs.registration import load_env_creator

from oversight_env.batched import BatchedOversightEnv
from oversight_env.env_ids import resolve_env_id
from oversight_env.grid_env import OversightGridEnv
from oversight_env.members import MemberTwins
from oversight_env.spec import GridLayout, invalid_argument
from oversight_env.wrappers import (
    PartialOversight,
    VectorOversightEnv,
    is_partial_oversight,
)


def register_oversight_env(
    env_id: str, env: GridLayout | type[OversightGridEnv], *, replace: bool = False, **defaults: Any
) -> None:
    """Register `env` with gymnasium under `env_id`.

    `env` is a `GridLayout` (served by `OversightGridEnv`) or an `OversightGridEnv` subclass;
    `defaults` are keyword arguments `gym.make` passes unless the caller overrides them. The
    environment truncates itself after `max_steps`, so no `TimeLimit` wrapper is added. An id
    that is already registered (a built-in one, say) is refused unless `replace=True`. The
    environment is made once with `defaults`, so a bad default fails here, not at `gym.make`.
    """
    if isinstance(env, GridLayout):
        entry_point, defaults = OversightGridEnv, {"layout": env, **defaults}
    elif isinstance(env, type) and issubclass(env, OversightGridEnv):
        entry_point = env
    else:
        raise invalid_argument("env", env, "expected a GridLayout or a subclass of OversightGridEnv")
    if not isinstance(env_id, str):
        raise invalid_argument("env_id", env_id, "expected a string such as 'MyLab/Corridor-v0'")
    if env_id in gym.registry and not replace:
        raise invalid_argument("env_id", env_id, "already registered; choose another id, or pass replace=True to replace it")
    try:
        gym.envs.registration.parse_env_id(env_id)
    except gym.error.Error as error:
        raise invalid_argument("env_id", env_id, str(error)) from None
    entry_point(**defaults).close()
    gym.registry.pop(env_id, None)  # replace=True: replaced without gymnasium's "overriding" warning
    gym.register(id=env_id, entry_point=entry_point, kwargs=defaults, disable_env_checker=False)


def make_oversight_env(env_id: str, **kwargs: Any) -> OversightGridEnv | PartialOversight:
    """`gym.make(env_id, **kwargs).unwrapped` for a grid environment, or the `PartialOversight`
    wrapper of an id registered with `register_partial_oversight`; a one-line ValueError for an
    unknown id or a registered id that is neither. `env_id` may name the module that registers
    it, as in gymnasium ("mylab:MyLab/Lava-v0")."""
    env_id = resolve_env_id(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as error:
        raise invalid_argument("env_id", env_id, f"not a registered environment ({error})") from None
    if is_partial_oversight(env_id):
        return gym.make(env_id, **kwargs)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    if not (isinstance(creator, type) and issubclass(creator, OversightGridEnv)):
        raise invalid_argument("env_id", env_id, "not a partial-oversight environment (an OversightGridEnv, or one "
                               "registered with register_partial_oversight)")
    return gym.make(env_id, **kwargs).unwrapped


def make_batched(
    env_id: str, num_envs: int, seed: int | None = None, device: str | torch.device = "cpu", *,
    seeds: Sequence[int] | None = None, oversight_probs: Sequence[Any] | None = None, **kwargs: Any
) -> BatchedOversightEnv | VectorOversightEnv | MemberTwins:
    """The batched twin of `gym.make(env_id, **kwargs)`, with `num_envs` environments; for an id
    registered with `register_partial_oversight`, a `VectorOversightEnv` of that many copies.

    With `seeds` (and optionally `oversight_probs`, one each), the twin of a trainer's member axis:
    `num_envs` environments per member, member k's in rows k * num_envs to (k + 1) * num_envs,
    stepping what `make_batched(env_id, num_envs, seed=seeds[k], oversight_prob=oversight_probs[k])`
    steps."""
    env_id = resolve_env_id(env_id)
    if seeds is not None:
        if seed is not None:
            raise invalid_argument("seed", seed, "expected `seeds` alone for a twin of several members")
        probs = list(oversight_probs) if oversight_probs is not None else [kwargs.get("oversight_prob")] * len(seeds)
        if len(probs) != len(seeds):
            raise invalid_argument("oversight_probs", probs, f"expected one per member ({len(seeds)})")
        if is_partial_oversight(env_id):
            others = {k: v for k, v in kwargs.items() if k != "oversight_prob"}
            return MemberTwins([make_batched(env_id, num_envs, seed=s, device=device,
                                             **others, **({} if p is None else {"oversight_prob": p}))
                                for s, p in zip(seeds, probs)])
        env = make_oversight_env(env_id, **kwargs)
        env.close()
        probs = [env.config.oversight_prob if p is None else p for p in probs]
        return BatchedOversightEnv(env.layout, env.config, num_envs, device=device, seeds=seeds, oversight_probs=probs)
    if is_partial_oversight(env_id):
        make_oversight_env(env_id, **kwargs).close()  # a bad argument fails once, here
        return VectorOversightEnv(lambda: gym.make(env_id, **kwargs), num_envs, seed=seed, device=device)
    env = make_oversight_env(env_id, **kwargs)
    env.close()
    return BatchedOversightEnv(env.layout, env.config, num_envs, seed=seed, device=device)

