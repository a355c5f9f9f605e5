"""A batched twin's saved state is all of its state: restored into a fresh twin (a new object made
with another seed) at any point of random play, it continues identically, field by field of every
step, for every registered environment with a twin; every tensor a twin keeps is either saved,
rebuilt from what is saved, or a constant table of the layout and configuration (so an attribute
added later and left out of `state_dict` fails here). Per episode, `get_state` / `set_state` (and
MiniGrid's reset into a state) round-trip too."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from oversight_env import BatchedOversightEnv, TwinStep, make_batched, make_oversight_env
from oversight_env.wrappers import is_partial_oversight

TWIN_IDS = sorted(i for i in gym.registry if i.startswith("OversightGrid/") and not is_partial_oversight(i))
KWARGS = {"oversight_prob": 0.5}  # both outcomes overseen and not, under either oversight unit
# Rebuilt from the saved state by `load_state_dict` (the map from cells to objects, the planes that do not move).
DERIVED = {"cell_object", "planes"}


def test_every_registered_twin_is_covered():
    assert len(TWIN_IDS) >= 14 and "OversightGrid/KeysAndChests-9x9-v0" in TWIN_IDS


def random_actions(generator: torch.Generator, n: int, count: int) -> list[torch.Tensor]:
    return [torch.randint(0, 4, (n,), generator=generator) for _ in range(count)]


def assert_steps_equal(a: TwinStep, b: TwinStep, where: str) -> None:
    for field in dataclasses.fields(TwinStep):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert x.dtype == y.dtype and torch.equal(x, y), f"{where}: {field.name} differs"
    assert torch.equal(a.done, b.done), f"{where}: done"
    assert a.facts.keys() == b.facts.keys() and all(torch.equal(a.facts[k], b.facts[k]) for k in a.facts), f"{where}: facts"


def tensors_of(twin: BatchedOversightEnv) -> dict[str, torch.Tensor]:
    return {name: value for name, value in vars(twin).items() if isinstance(value, torch.Tensor)}


def assert_twins_equal(a: BatchedOversightEnv, b: BatchedOversightEnv, where: str) -> None:
    """Every tensor, the episodes drawn ahead and the generator's state."""
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys(), where
    for name in ta:
        assert ta[name].dtype == tb[name].dtype and torch.equal(ta[name], tb[name]), f"{where}: {name} differs"
    assert (a.pool is None) == (b.pool is None), f"{where}: pool"
    if a.pool is not None:
        assert len(a.pool) == len(b.pool) and all(torch.equal(x, y) for x, y in zip(a.pool, b.pool)), f"{where}: pool"
    assert torch.equal(a.generator.get_state(), b.generator.get_state()), f"{where}: generator"


def assert_state_dicts_equal(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys(), where
    for k in a:
        assert torch.equal(a[k], b[k]), f"{where}: state[{k!r}] differs"


@pytest.mark.parametrize("env_id", TWIN_IDS, ids=[i.split("/")[1] for i in TWIN_IDS])
def test_a_twin_restored_into_a_fresh_twin_continues_identically(env_id):
    n = 32
    twin = make_batched(env_id, n, seed=1, **KWARGS)
    generator = torch.Generator().manual_seed(len(env_id))
    max_steps = twin.config.max_steps
    for round_ in range(3):
        for a in random_actions(generator, n, int(torch.randint(1, max_steps, (1,), generator=generator))):
            twin.step(a)
        saved = twin.state_dict()
        fresh = make_batched(env_id, n, seed=100 + round_, **KWARGS)
        for a in random_actions(generator, n, 3):  # somewhere else entirely, its own episodes drawn ahead
            fresh.step(a)
        where = f"{env_id} round {round_}"
        assert torch.equal(fresh.load_state_dict(saved), twin.observe()), where
        assert_twins_equal(twin, fresh, f"{where}, restored")
        assert_state_dicts_equal(fresh.state_dict(), saved, f"{where}, restored")
        for t, a in enumerate(random_actions(generator, n, max_steps + 8)):  # every episode ends and restarts
            assert_steps_equal(twin.step(a), fresh.step(a), f"{where}, step {t}")
        assert_twins_equal(twin, fresh, f"{where}, after")
        assert_state_dicts_equal(fresh.state_dict(), twin.state_dict(), f"{where}, after")


@pytest.mark.parametrize("env_id", TWIN_IDS, ids=[i.split("/")[1] for i in TWIN_IDS])
def test_every_tensor_a_twin_keeps_is_saved_rebuilt_or_a_constant_table(env_id):
    generator = torch.Generator().manual_seed(0)
    a = make_batched(env_id, 16, seed=1, **KWARGS)
    b = make_batched(env_id, 16, seed=2, **KWARGS)
    for x in random_actions(generator, 16, 40):
        a.step(x)
    saved = a.state_dict()
    assert "generator" in saved and all(f"pool_{i}" in saved for i in range(len(a.pool or ())))
    for name, value in tensors_of(a).items():
        if name in saved or name in DERIVED:
            continue
        # Anything else is a table of the layout and configuration: the same in another twin, whatever it played.
        assert name.startswith("_") and torch.equal(value, tensors_of(b)[name]), \
            f"twin.{name} is neither saved by state_dict nor a constant table"
    for name in DERIVED:
        assert name in tensors_of(a) and name not in saved
    for name, value in saved.items():  # and nothing in the state is stale: each saved tensor is the twin's own
        if name in tensors_of(a):
            assert torch.equal(value, tensors_of(a)[name]), name


@pytest.mark.parametrize("env_id", TWIN_IDS, ids=[i.split("/")[1] for i in TWIN_IDS])
def test_an_episodes_state_round_trips_through_get_state_and_set_state(env_id):
    n = 8
    twin = make_batched(env_id, n, seed=3, **KWARGS)
    other = make_batched(env_id, 2, seed=4, **KWARGS)
    env = make_oversight_env(env_id, **KWARGS)
    generator = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(0)
    for t in range(40):
        step = twin.step(random_actions(generator, n, 1)[0])
        i = int(rng.integers(n))
        state = twin.get_state(i)
        restart = dataclasses.replace(state, step_count=0)  # a reset into a state starts at step 0
        obs = other.set_state(1, state)
        assert torch.equal(obs, step.obs[i]) and torch.equal(other.observe()[1], step.obs[i]), f"{env_id} step {t}"
        assert other.get_state(1) == restart, f"{env_id} step {t}"
        env_obs, _ = env.reset(options={"state": state})
        assert env.state == restart and np.array_equal(env_obs, step.obs[i].numpy()), f"{env_id} step {t}: MiniGrid"
        assert twin.get_state(i) == state  # reading the state changes nothing


@pytest.mark.parametrize("env_id", TWIN_IDS, ids=[i.split("/")[1] for i in TWIN_IDS])
def test_a_state_read_from_the_twin_is_a_snapshot_that_later_steps_leave_alone(env_id):
    n = 16
    twin = make_batched(env_id, n, seed=5, **KWARGS)
    states = [twin.get_state(i) for i in range(n)]
    copies = [dataclasses.replace(s, overseen=s.overseen.copy(), walls=None if s.walls is None else s.walls.copy())
              for s in states]
    generator = torch.Generator().manual_seed(2)
    for actions in random_actions(generator, n, 30):
        twin.step(actions)
    assert states == copies
