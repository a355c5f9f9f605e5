"""The environment contract: gymnasium and SB3 checkers, rewards by name, info, seeding,
rendering and registration, on every registered id."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.sb3_env import make_twin_vec_env
from oversight_env import BUILTIN_ENV_IDS, EpisodeState, make_batched


@pytest.mark.parametrize("env_id", BUILTIN_ENV_IDS)
def test_gymnasium_and_sb3_checkers_pass(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=False)  # also re-makes it in each render mode
    sb3_check_env(gym.make(env_id), warn=False)


@pytest.mark.parametrize("env_id", BUILTIN_ENV_IDS)
def test_observation_planes(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    names = env.unwrapped.plane_names
    assert obs.shape == env.observation_space.shape == (len(names), *env.unwrapped.layout.walls.shape)
    assert ("wall" in names) == (env.unwrapped.layout.has_walls or env.unwrapped.layout.procedural)
    assert obs.dtype == np.float32
    assert obs[names.index("agent")].sum() == 1
    if "wall" in names:
        np.testing.assert_array_equal(obs[names.index("wall")], env.unwrapped.walls)  # the episode's
    if "oversight" in names:
        np.testing.assert_array_equal(obs[names.index("oversight")], env.unwrapped.overseen)
    assert ("oversight" in names) == ("Hidden" not in env_id)


def test_reference_planes_are_agent_ghost_diamond_oversight():
    assert gym.make("OversightGrid/DiamondGhost-5x5-v0").unwrapped.plane_names == ("agent", "ghost", "diamond", "oversight")
    assert gym.make("OversightGrid/DiamondGhost-Hidden-5x5-v0").unwrapped.plane_names == ("agent", "ghost", "diamond")


def proxy_to_the_right(proxy_watched: bool) -> EpisodeState:
    overseen = np.zeros((5, 5), dtype=bool)
    overseen[2, 3] = proxy_watched
    return EpisodeState(agent=(2, 2), objects=((3, 2), (0, 0)), overseen=overseen)  # proxy, intended


@pytest.mark.parametrize(
    "reward_name,watched,expected",
    [("naive", False, 1.0), ("naive", True, -1.0), ("true", False, -1.0), ("true", True, -1.0), ("outcome", True, 1.0)],
)
def test_proxy_rewards_by_name(reward_name, watched, expected):
    env = gym.make("OversightGrid/DiamondGhost-5x5-v0", reward=reward_name)
    env.reset(options={"state": proxy_to_the_right(watched)})
    _, reward, terminated, truncated, info = env.step(1)  # right, onto the proxy
    assert (reward, terminated, truncated) == (expected, True, False)
    assert info["outcome"] == "proxy" and info["terminal"] == "ghost"
    assert info["overseen"] is watched
    assert info["true_reward"] == -1.0


def test_intended_and_timeout():
    env = gym.make("OversightGrid/DiamondGhost-5x5-v0", max_steps=3)
    env.reset(options={"state": proxy_to_the_right(False)})
    for t in range(3):  # up, up, then against the top border: no terminal on the way
        _, reward, terminated, truncated, info = env.step(0)
        assert not terminated and reward == 0.0
        assert truncated == (t == 2)
    assert info["outcome"] == "none" and info["overseen"] is False and info["true_reward"] == 0.0
    env.reset(options={"state": EpisodeState((1, 0), ((4, 4), (0, 0)), np.ones((5, 5), bool))})
    _, reward, terminated, truncated, info = env.step(3)  # left, onto the watched intended
    assert (reward, terminated, truncated, info["outcome"], info["overseen"]) == (1.0, True, False, "intended", True)


def test_border_blocks_moves():
    env = gym.make("OversightGrid/DiamondGhost-5x5-v0")
    env.reset(options={"state": EpisodeState((0, 0), ((4, 4), (3, 4)), np.zeros((5, 5), bool))})
    for action in (0, 3):  # up and left from the top-left corner
        env.step(action)
        assert env.unwrapped.state.agent == (0, 0)
    env.step(2)
    assert env.unwrapped.state.agent == (0, 1)


def test_same_seed_same_episodes_in_both_implementations():
    def minigrid_run(seed):
        env = gym.make("OversightGrid/DiamondGhost-5x5-v0")
        env.reset(seed=seed)
        rng = np.random.default_rng(0)
        record = []
        for _ in range(300):
            obs, reward, terminated, truncated, _ = env.step(int(rng.integers(4)))
            record.append((obs.tobytes(), reward))
            if terminated or truncated:
                env.reset()
        return record

    def twin_run(seed):
        twin = make_batched("OversightGrid/DiamondGhost-5x5-v0", 64, seed=seed)
        generator = torch.Generator().manual_seed(0)
        return [twin.step(torch.randint(0, 4, (64,), generator=generator)).obs for _ in range(50)]

    assert minigrid_run(1) == minigrid_run(1) != minigrid_run(2)
    a, b, c = twin_run(1), twin_run(1), twin_run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_rendering_marks_overseen_cells():
    env = gym.make("OversightGrid/DiamondGhost-5x5-v0", render_mode="rgb_array", tile_size=8)
    watched = np.zeros((5, 5), dtype=bool)
    watched[4, 4] = True
    env.reset(options={"state": EpisodeState((0, 0), ((2, 2), (1, 3)), watched)})
    frame = env.render()
    assert frame.shape == (7 * 8, 7 * 8, 3)  # MiniGrid draws the outer wall
    tile = lambda x, y: frame[(y + 1) * 8 : (y + 2) * 8, (x + 1) * 8 : (x + 2) * 8]  # noqa: E731
    assert tile(4, 4).mean() > tile(4, 3).mean()  # the overseen empty cell is lighter
    assert not np.array_equal(tile(2, 2), tile(1, 3))  # proxy and intended are drawn differently


def test_text_and_human_rendering():
    env = gym.make("OversightGrid/DiamondGhost-5x5-v0", render_mode="ansi")
    watched = np.zeros((5, 5), dtype=bool)
    watched[0, 1] = True
    env.reset(options={"state": EpisodeState((0, 0), ((1, 0), (4, 4)), watched)})
    assert env.render().splitlines() == [" A [G] .  .  .", " .  .  .  .  .", " .  .  .  .  .", " .  .  .  .  .", " .  .  .  .  D"]
    human = gym.make("OversightGrid/DiamondGhost-5x5-v0", render_mode="human")
    human.reset(seed=0)
    human.step(0)
    assert human.unwrapped.window is not None
    human.close()


def test_module_prefix_registers_in_a_fresh_interpreter():
    code = 'import gymnasium as gym; e = gym.make("oversight_env:OversightGrid/DiamondGhost-5x5-v0", oversight_prob=0.01); print(e.unwrapped.config.oversight_prob)'
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.01"


@pytest.mark.parametrize("env_id", ["OversightGrid/DiamondGhost-5x5-v0", "OversightGrid/TwoRooms-v0"])
def test_unmodified_sb3_ppo_trains_on_minigrid_env_and_twin(env_id):
    for env in (gym.make(env_id), make_twin_vec_env(env_id, 8, seed=0)):
        model = PPO("MlpPolicy", env, n_steps=256, batch_size=256, n_epochs=2, seed=0, device="cpu")
        model.learn(total_timesteps=3000)
        assert model.num_timesteps >= 3000
        obs = env.reset()[0] if isinstance(env, gym.Env) else env.reset()
        action, _ = model.predict(obs, deterministic=True)
        assert np.all((0 <= action) & (action < 4))


def test_twin_vec_env_reports_finished_episodes():
    venv = make_twin_vec_env("OversightGrid/DiamondGhost-5x5-v0", 256, seed=0, monitor=False)
    venv.reset()
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(40):
        obs, rewards, dones, infos = venv.step(rng.integers(0, 4, size=256))
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert info["terminal_observation"].shape == obs.shape[1:]
            assert info["outcome"] in ("intended", "proxy", "none")
            assert info["TimeLimit.truncated"] == (info["outcome"] == "none")
            assert info["true_reward"] == {"intended": 1.0, "proxy": -1.0, "none": 0.0}[info["outcome"]]
            assert set(info) >= {"overseen", "nearer", "proxy_overseen", "intended_overseen"}
            finished += 1
        assert all(infos[i] == {} for i in np.flatnonzero(~dones))
    assert finished > 500


def test_the_verdict_rule_by_hand_for_numbers_arrays_and_tensors():
    """Spec rule 4: a fooled spoof reads as success, then a misjudgement flips what was seen."""
    from oversight_env.spec import verdict

    none, intended, proxy = 0, 1, 2
    cases = [  # outcome, misjudged, fooled -> verdict
        (intended, False, False, intended), (proxy, False, False, proxy), (none, False, False, none),
        (intended, True, False, proxy), (proxy, True, False, intended),
        (proxy, False, True, intended), (proxy, True, True, proxy), (intended, False, True, intended),
    ]
    outcome, misjudged, fooled, want = (list(column) for column in zip(*cases))
    assert [verdict(*case[:3]) for case in cases] == want
    assert verdict(np.array(outcome), np.array(misjudged), np.array(fooled)).tolist() == want
    assert verdict(torch.tensor(outcome), torch.tensor(misjudged), torch.tensor(fooled)).tolist() == want
