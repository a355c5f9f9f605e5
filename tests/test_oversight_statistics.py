"""Both implementations draw states and oversight with the probabilities the specification gives.

Fixed seeds; each frequency must lie within 4.5 standard errors (sqrt(p (1 - p) / n)) of its
probability: a correct sampler fails that with probability below 1e-5, while a sampler off by a
few percentage points fails it for sure at these sample sizes.
"""

import numpy as np
import pytest
import torch

from oversight_env import make_batched, make_oversight_env


def assert_frequency(hits: int, n: int, p: float, what: str) -> None:
    tolerance = 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12
    assert abs(hits / n - p) <= tolerance, f"{what}: {hits}/{n} = {hits / n:.4f}, expected {p} +- {tolerance:.4f}"


def twin_samples(env_id, n, **kwargs):
    """(agent cells, object cells, overseen maps) of n fresh episodes of the twin."""
    twin = make_batched(env_id, n, seed=3, **kwargs)
    return twin.agent.numpy(), twin.objects.numpy(), twin.overseen.numpy()


def minigrid_samples(env_id, n, **kwargs):
    env = make_oversight_env(env_id, **kwargs)
    width = env.layout.width
    agents, objects, overseen = [], [], []
    env.reset(seed=3)
    for _ in range(n):
        env.reset()
        state = env.state
        agents.append(state.agent[1] * width + state.agent[0])
        objects.append([y * width + x for x, y in state.objects])
        overseen.append(state.overseen.reshape(-1))
    return np.array(agents), np.array(objects), np.array(overseen)


SAMPLERS = {"twin": (twin_samples, 40_000), "minigrid": (minigrid_samples, 6_000)}


@pytest.mark.parametrize("implementation", SAMPLERS)
def test_each_terminal_is_overseen_independently_with_its_probability(implementation):
    sample, n = SAMPLERS[implementation]
    # TwoRooms: two traps (objects 0, 1) overseen with 0.6, two gems (2, 3) with 0.15; other free
    # cells with the spurious probability 0.05; walls never.
    probs = {"trap": 0.6, "gem": 0.15}
    agents, objects, overseen = sample("OversightGrid/TwoRooms-v0", n, oversight_prob=probs, spurious_oversight_prob=0.05)
    watched = np.take_along_axis(overseen, objects, axis=1)
    for k, p in enumerate([0.6, 0.6, 0.15, 0.15]):
        assert_frequency(watched[:, k].sum(), n, p, f"object {k}")
    assert_frequency((watched[:, 0] & watched[:, 2]).sum(), n, 0.6 * 0.15, "trap 0 and gem 0 both")
    other = np.ones_like(overseen)
    np.put_along_axis(other, objects, False, axis=1)
    walls = np.flatnonzero(make_oversight_env("OversightGrid/TwoRooms-v0").layout.walls.reshape(-1))
    assert not overseen[:, walls].any()
    other[:, walls] = False
    assert_frequency(overseen[other].sum(), other.sum(), 0.05, "spurious cells")


@pytest.mark.parametrize("implementation", SAMPLERS)
def test_agent_and_objects_stand_on_distinct_uniform_cells(implementation):
    sample, n = SAMPLERS[implementation]
    agents, objects, _ = sample("OversightGrid/DiamondGhost-5x5-v0", n)
    cells = np.concatenate([agents[:, None], objects], axis=1)
    assert all(len(set(row)) == 3 for row in cells.tolist())
    for column, name in enumerate(["agent", "proxy", "intended"]):
        counts = np.bincount(cells[:, column], minlength=25)
        for cell in range(25):
            assert_frequency(counts[cell], n, 1 / 25, f"{name} on cell {cell}")


@pytest.mark.parametrize("p", [0.0, 0.1, 1.0])
def test_episodes_end_overseen_with_the_oversight_probability(p):
    # A random policy ignores oversight, so P(overseen | reached a terminal) = p exactly.
    twin = make_batched("OversightGrid/DiamondGhost-5x5-v0", 4096, seed=11, oversight_prob=p)
    generator = torch.Generator().manual_seed(0)
    terminals = overseen = truncated_overseen = 0
    for _ in range(60):
        step = twin.step(torch.randint(0, 4, (4096,), generator=generator))
        terminals += int(step.terminated.sum())
        overseen += int(step.overseen.sum())
        truncated_overseen += int((step.overseen & step.truncated).sum())
    assert terminals > 8_000
    assert_frequency(overseen, terminals, p, "overseen episodes")
    assert truncated_overseen == 0
