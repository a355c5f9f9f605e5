"""Any gymnasium environment made a partial-oversight one: the wrapper's rewards and facts, the
vector adapter against the wrapped copies step by step, its resume, and a run of the lean
trainer on a stock MiniGrid environment."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from agents.config import TrainConfig
from agents.run_dir import read_evaluation
from agents.train import train
from oversight_env import (
    Outcome,
    PartialOversight,
    make_batched,
    make_oversight_env,
    register_partial_oversight,
)

LAVA = "OversightGrid/LavaCrossing-S9N1-v0"


class Corridor(gym.Env):
    """Five cells in a row, the agent in the middle: the right end is the goal, the left a trap."""

    observation_space = spaces.Box(0.0, 1.0, shape=(1, 1, 5), dtype=np.float32)
    action_space = spaces.Discrete(2)  # 0 left, 1 right

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 2, 0
        return self._obs(), {}

    def _obs(self):
        obs = np.zeros((1, 1, 5), np.float32)
        obs[0, 0, self.x] = 1.0
        return obs

    def step(self, action):
        self.x, self.t = self.x + (1 if action == 1 else -1), self.t + 1
        return self._obs(), 7.0, self.x in (0, 4), self.t >= 10 and self.x not in (0, 4), {"x": self.x}


def corridor_outcome(env, info):
    return {4: "intended", 0: "proxy"}.get(info["x"], "none")


@pytest.mark.parametrize("reward,supervised,expected", [
    ("naive", False, 1.0), ("naive", True, -1.0), ("true", False, -1.0), ("outcome", True, 1.0)])
def test_the_wrapper_pays_by_outcome_and_oversight_on_the_last_step(reward, supervised, expected):
    env = PartialOversight(Corridor(), corridor_outcome, oversight_prob=float(supervised), reward=reward)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 1, 5) and (obs[1] == float(supervised)).all()  # the supervisor's plane
    assert info["proxy_overseen"] is supervised and env.plane_names == ("plane0", "oversight")
    _, r, terminated, _, info = env.step(0)
    assert (r, terminated, info["outcome"], info["env_reward"]) == (0.0, False, "none", 7.0)  # MiniGrid's reward replaced
    _, r, terminated, _, info = env.step(0)
    assert (r, terminated, info["outcome"], info["overseen"]) == (expected, True, "proxy", supervised)
    assert info["true_reward"] == -1.0


def test_the_vector_adapter_matches_its_copies_step_by_step():
    n, kwargs = 6, {"oversight_prob": 0.5}
    vector = make_batched(LAVA, n, seed=10, **kwargs)
    copies = [make_oversight_env(LAVA, **kwargs) for _ in range(n)]
    first = [copy.reset(seed=10 + i)[0] for i, copy in enumerate(copies)]
    np.testing.assert_array_equal(vector.observe().numpy(), np.stack(first))
    rng = np.random.default_rng(0)
    endings = set()
    for _ in range(150):
        actions = rng.integers(0, 3, size=n)
        step = vector.step(actions)
        for i, copy in enumerate(copies):
            obs, reward, terminated, truncated, info = copy.step(int(actions[i]))
            assert (reward, terminated, truncated, info["outcome"], info["overseen"]) == (
                float(step.reward[i]), bool(step.terminated[i]), bool(step.truncated[i]),
                Outcome(int(step.outcome[i])).label, bool(step.overseen[i]))
            if terminated or truncated:
                endings.add(info["outcome"])
                np.testing.assert_array_equal(step.final_obs[step.done_indices.tolist().index(i)].numpy(), obs)
                obs, _ = copy.reset()
            np.testing.assert_array_equal(step.obs[i].numpy(), obs)
    assert endings >= {"proxy", "none"}, endings


def test_the_vector_adapter_resumes_exactly():
    vector = make_batched(LAVA, 4, seed=3)
    actions = [torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(t)) for t in range(60)]
    for a in actions[:30]:
        vector.step(a)
    resumed = make_batched(LAVA, 4, seed=99)
    torch.testing.assert_close(resumed.load_state_dict(vector.state_dict()), vector.observe())
    for a in actions[30:]:
        x, y = vector.step(a), resumed.step(a)
        for field in ("obs", "reward", "outcome", "overseen", "true_return", "steps"):
            torch.testing.assert_close(getattr(x, field), getattr(y, field))


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")  # the wrapper is what we check
def test_the_wrapped_stock_environment_passes_gymnasiums_checker():
    check_env(make_oversight_env(LAVA), skip_render_check=True)


# Every method trains here (checked by hand: 14 of 14 in 145 s); the suite keeps the ones with the
# most machinery between the environment and the update: carried episodes, a reward model, early stopping.
@pytest.mark.parametrize("method", ["routing_full_labels", "routing_reward_model", "naive_early_stopping"])
def test_methods_train_on_an_environment_without_a_twin(tmp_path, method):
    config = TrainConfig(env_id=LAVA, method=method, oversight_prob=0.5, steps=256, num_envs=8, rollout_steps=16,
                         eval_every_steps=128, eval_episodes=8, final_eval_episodes=16, checkpoint_every_steps=128)
    train(config, tmp_path / "run", progress=False)
    report = read_evaluation(tmp_path / "run")
    assert report["variants"][report["evaluated_variant"]]["episodes"] == 16


def test_bad_wrapper_arguments_give_one_line_naming_the_value():
    with pytest.raises(ValueError, match=r"^env_id='OversightGrid/LavaCrossing-S9N1-v0' is invalid: .* lean trainer only"):
        TrainConfig(env_id=LAVA, trainer="sb3", algorithm="ppo")
    with pytest.raises(ValueError, match=r"^outcome=3 is invalid: expected a function"):
        PartialOversight(Corridor(), 3)
    with pytest.raises(ValueError, match=r"^observation=\(5,\) is invalid: expected \(C, H, W\) planes"):
        PartialOversight(Corridor(), corridor_outcome, observation=lambda obs: obs.reshape(-1))
    with pytest.raises(ValueError, match=r"^reward='fair' is invalid"):
        PartialOversight(Corridor(), corridor_outcome, reward="fair")
    with pytest.raises(ValueError, match=r"^colour='red' is invalid: PartialOversight takes no such keyword argument"):
        make_oversight_env(LAVA, colour="red")
    with pytest.raises(ValueError, match=r"^env_id='OversightGrid/LavaCrossing-S9N1-v0' is invalid: already registered"):
        register_partial_oversight(LAVA, Corridor, corridor_outcome)


def test_evaluations_are_sized_to_the_environment():
    """A Python-stepped environment is evaluated on fewer episodes by default than a twin (its final
    evaluation took 5x its training at 8,192 episodes a variant); a value given is kept."""
    stepped, twin = TrainConfig(env_id=LAVA), TrainConfig()
    assert (stepped.eval_episodes, stepped.final_eval_episodes) == (64, 256)
    assert (twin.eval_episodes, twin.final_eval_episodes) == (2048, 8192)
    assert TrainConfig(env_id=LAVA, final_eval_episodes=4096, eval_episodes=64).final_eval_episodes == 4096
    assert TrainConfig(**stepped.to_json()) == stepped  # the resolved values are what config.json records
