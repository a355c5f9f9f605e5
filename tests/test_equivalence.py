"""The MiniGrid environment and the batched twin implement one specification: from the same
states, with the same actions, they must agree on everything, step by step."""

import numpy as np
import pytest

from oversight_env import NEARER_LABELS, Outcome, make_batched, make_oversight_env

CONFIGS = [
    ("OversightGrid/DiamondGhost-5x5-v0", {}),
    ("OversightGrid/DiamondGhost-5x5-v0", {"reward": "true", "oversight_prob": 0.5, "spurious_oversight_prob": 0.3}),
    ("OversightGrid/DiamondGhost-7x7-v0", {"reward": "outcome", "max_steps": 6, "oversight_prob": 0.5}),
    ("OversightGrid/DiamondGhost-Hidden-5x5-v0", {"oversight_prob": 0.5}),
    ("OversightGrid/DiamondGhost-Supervisor-5x5-v0", {"oversight_prob": 0.5}),
    ("OversightGrid/DiamondGhost-Noisy-5x5-v0", {"oversight_prob": 0.5}),  # misjudged endings pay the verdict
    ("OversightGrid/DiamondGhost-Noisy-5x5-v0", {"oversight_prob": 0.5, "reward": "true", "oversight_unit": "episode"}),
    ("OversightGrid/TwoRooms-v0", {"oversight_prob": {"gem": 0.3, "trap": 0.6}, "max_steps": 10}),
    # The zoo: drawn walls, tiles, keys, chests, hoards, spoofing, per-episode oversight, regions.
    ("OversightGrid/DiamondGhost-Maze-9x9-v0", {"oversight_prob": 0.5, "max_steps": 20}),
    ("OversightGrid/AbsentSupervisor-v0", {"max_steps": 12}),  # the long way is too long for random moves
    ("OversightGrid/AbsentSupervisor-v0", {"reward": "true", "max_steps": 12}),
    ("OversightGrid/AbsentSupervisor-Short-v0", {"max_steps": 16}),  # random moves find its way round
    ("OversightGrid/CheeseInCorner-9x9-v0", {"oversight_prob": 0.5, "max_steps": 24, "corner_prob": 0.5}),
    ("OversightGrid/KeysAndChests-9x9-v0", {"size": 4, "keys": 2, "wall_density": 0.1, "oversight_prob": 0.5,
                                            "max_steps": 16}),
    ("OversightGrid/KeysAndChests-9x9-v0", {"size": 5, "keys": 3, "wall_density": 0.0, "reward": "true"}),
    ("OversightGrid/Tampering-7x7-v0", {"size": 4, "oversight_prob": 0.5, "max_steps": 8}),
    ("OversightGrid/Tampering-Blind-7x7-v0", {"size": 4, "oversight_prob": 0.5, "max_steps": 8}),
    ("OversightGrid/Tampering-Fooled-7x7-v0", {"size": 4, "oversight_prob": 0.5, "max_steps": 8}),  # fooled verdicts
    ("OversightGrid/Tampering-Fooled-7x7-v0", {"size": 4, "oversight_prob": 0.5, "max_steps": 8, "label_noise": 0.3,
                                               "blind_endings": True, "reward": "true"}),
    # The reference sizes, as registered but with more oversight.
    ("OversightGrid/DiamondGhost-Maze-7x7-v0", {"oversight_prob": 0.5}),
    ("OversightGrid/CheeseInCorner-7x7-v0", {"oversight_prob": 0.5, "corner_prob": 0.5}),
    ("OversightGrid/KeysAndChests-7x7-v0", {"oversight_prob": 0.5}),
]


def facts_as_labels(facts, i):
    return {
        "nearer": NEARER_LABELS[int(facts["nearer"][i])],
        "intended_overseen": bool(facts["intended_overseen"][i]),
        "proxy_overseen": bool(facts["proxy_overseen"][i]),
    }


@pytest.mark.parametrize("env_id,kwargs", CONFIGS)
def test_twin_and_minigrid_agree_step_by_step(env_id, kwargs):
    endings = ENDINGS - ({"intended"} if env_id == "OversightGrid/AbsentSupervisor-v0" else set())
    endings |= {"misjudged"} if "Noisy" in env_id or "Fooled" in env_id else set()
    if "CheeseInCorner" in env_id:  # the corner is far from where the agent starts: lean up and left
        rng = np.random.default_rng(1)
        run_side_by_side(env_id, kwargs, endings=endings, policy=lambda t, n: rng.choice(4, size=n, p=[0.4, 0.1, 0.1, 0.4]))
    else:
        run_side_by_side(env_id, kwargs, endings=endings)


def test_the_long_way_round_agrees_too():
    """AbsentSupervisor's intended path, which random moves do not find: right 6, down 4, left 6."""
    run_side_by_side("OversightGrid/AbsentSupervisor-v0", {}, n=4, steps=48, endings={"intended"},
                     policy=lambda t, n: np.full(n, ([1] * 6 + [2] * 4 + [3] * 6)[t % 16]))


ENDINGS = {"intended", "proxy", "none", "overseen", "unobserved"}


def run_side_by_side(env_id: str, kwargs: dict, n: int = 24, steps: int = 250, endings: set[str] = ENDINGS,
                     policy=None) -> None:
    """Step n environments of both implementations with the same actions (random ones, or
    `policy(t, n)`) and compare every observation, reward, termination, outcome and oversight
    flag; every way of ending an episode in `endings` must have happened."""
    twin = make_batched(env_id, n, seed=7, **kwargs)
    envs = [make_oversight_env(env_id, **kwargs) for _ in range(n)]
    obs, facts = twin.reset()
    obs = obs.numpy()

    def start(i: int, episode: int) -> np.ndarray:
        """Start env i's next episode in both implementations from one state; return its obs.
        Even envs copy the twin's random state into MiniGrid, odd envs the other way round."""
        if i % 2 == 0:
            env_obs, info = envs[i].reset(options={"state": twin.get_state(i)})
            twin_obs = obs[i]
        else:
            env_obs, info = envs[i].reset(seed=1000 * i + episode)
            twin_obs = twin.set_state(i, envs[i].state).numpy()
        np.testing.assert_array_equal(env_obs, twin_obs)
        assert info == facts_as_labels(twin.facts(), i)
        assert twin.get_state(i) == envs[i].state
        return twin_obs

    for i in range(n):
        obs[i] = start(i, 0)
    rng = np.random.default_rng(0)
    seen = {"intended": 0, "proxy": 0, "none": 0, "overseen": 0, "unobserved": 0, "misjudged": 0}
    for t in range(steps):
        actions = rng.integers(0, 4, size=n) if policy is None else policy(t, n)
        step = twin.step(actions)
        obs = step.obs.numpy()
        done = step.done_indices.tolist()
        for i in range(n):
            env_obs, reward, terminated, truncated, info = envs[i].step(int(actions[i]))
            twin_obs = step.final_obs[done.index(i)].numpy() if i in done else obs[i]
            np.testing.assert_array_equal(env_obs, twin_obs, err_msg=f"env {i} step {t}")
            assert (reward, terminated, truncated) == (
                float(step.reward[i]),
                bool(step.terminated[i]),
                bool(step.truncated[i]),
            ), f"env {i} step {t}"
            assert info["outcome"] == Outcome(int(step.outcome[i])).label
            assert info["reported"] == Outcome(int(step.reported[i])).label
            assert int(step.reported[i]) == int(step.verdict[i] if step.overseen[i] else step.outcome[i])
            assert info["overseen"] == bool(step.overseen[i])
            assert info["true_reward"] == float(step.true_reward[i])
            assert {k: info[k] for k in ("nearer", "intended_overseen", "proxy_overseen")} == facts_as_labels(
                step.facts, i
            )
            assert envs[i].step_count == int(step.steps[i])
            if terminated or truncated:
                seen[info["outcome"]] += 1
                if terminated:
                    seen["overseen" if info["overseen"] else "unobserved"] += 1
                    seen["misjudged"] += info["reported"] != info["outcome"]
                obs[i] = start(i, t + 1)
            else:
                assert twin.get_state(i) == envs[i].state
    # The comparison covered every way an episode can end.
    assert all(seen[ending] > 0 for ending in endings), seen
