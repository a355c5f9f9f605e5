"""RoutedPPO: trains on MiniGrid vector envs and on the twin, carries the right labels into its
buffer, and saves, loads and predicts like any SB3 model."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.config import TrainConfig
from agents.policies import load_policy
from agents.sb3 import RoutedPPO
from agents.sb3_env import make_twin_vec_env
from agents.train import train
from oversight_env.spec import MOVES


def test_labels_sit_on_the_steps_of_the_episode_they_describe():
    env = make_twin_vec_env("OversightGrid/DiamondGhost-5x5-v0", 16, seed=0, oversight_prob=1.0, reward="outcome")
    model = RoutedPPO(env, method="routing", n_steps=64, batch_size=256, n_epochs=1, seed=0, device="cpu")
    model.learn(16 * 64)
    buf = model.rollout_buffer  # every array (steps, envs, ...)
    obs, actions, labels = buf.observations, buf.actions[..., 0].astype(int), buf.labels
    checked = 0
    for t in range(64):
        for i in range(16):
            if not buf.done[t, i]:
                continue
            y, x = np.argwhere(obs[t, i, 0] == 1)[0]
            dx, dy = MOVES[actions[t, i]]
            nx, ny = min(max(x + dx, 0), 4), min(max(y + dy, 0), 4)
            reached = 2 if obs[t, i, 1, ny, nx] else 1 if obs[t, i, 2, ny, nx] else 0  # proxy plane 1, intended 2
            assert labels[t, i] == reached  # everything is overseen: the label is the terminal reached
            checked += reached > 0
    assert checked > 20
    # Labels are constant within an episode, and steps after an env's last episode end are unlabelled.
    for i in range(16):
        ends = np.flatnonzero(buf.done[:, i])
        if len(ends):
            assert np.all(labels[ends[-1] + 1 :, i] == 0)
            start = 0
            for end in ends:
                assert len(set(labels[start : end + 1, i])) == 1
                start = end + 1


def test_trains_on_minigrid_vector_envs_and_saves_loads_predicts(tmp_path):
    env = DummyVecEnv([lambda: gym.make("OversightGrid/DiamondGhost-5x5-v0", reward="true") for _ in range(4)])
    model = RoutedPPO(env, method="filtering", n_steps=128, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(2048)
    assert model.num_timesteps >= 2048
    assert 0 < model.rollout_buffer.weights.mean() < 1  # some steps were filtered out, not all
    obs = env.reset()
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = RoutedPPO.load(tmp_path / "model.zip", env=env)
    after, _ = loaded.predict(obs, deterministic=True)
    assert np.array_equal(before, after) and loaded.method.name == "filtering"
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters()):
        assert torch.equal(a, b)


def test_refuses_a_mismatched_reward_and_arguments_it_would_ignore():
    env = make_twin_vec_env("OversightGrid/DiamondGhost-5x5-v0", 4, reward="naive")
    with pytest.raises(ValueError, match="reward='naive' is invalid: method 'routing' trains on reward='outcome'"):
        RoutedPPO(env, method="routing")
    for name, value in (("target_kl", 0.01), ("clip_range_vf", 0.2), ("use_sde", True), ("normalize_advantage", False)):
        with pytest.raises(ValueError, match=f"{name}={value!r} is invalid: RoutedPPO does not support it"):
            RoutedPPO(env, method="naive", **{name: value})
    RoutedPPO(env, method="naive_early_stopping", target_kl=None)  # the accepted values pass
    with pytest.raises(ValueError, match="device='cuda' is invalid: RoutedPPO trains on the CPU"):
        RoutedPPO(env, method="naive", device="cuda")  # refused on any machine, with or without a GPU
    assert RoutedPPO(env, method="naive", device="auto").device.type == "cpu"  # SB3's "auto" would take a GPU


ONE_PPO = dict(method="routing", algorithm="ppo", steps=16 * 8 * 3, oversight_prob=0.5, num_envs=16, rollout_steps=8,
               device="cpu", bf16=False, max_grad_norm=0.05, ent_coef_final=0.01, anneal_lr=True, eval_every_steps=10**6,
               eval_episodes=16, checkpoint_every_steps=10**6, final_eval_episodes=16)


def trained_weights(tmp_path, **settings):
    from agents.lean_trainer import train_lean
    from agents.sb3 import train_sb3

    config = TrainConfig(**{**ONE_PPO, **settings})
    out = tmp_path / f"{config.trainer}-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    net, env_steps = (train_sb3 if config.trainer == "sb3" else train_lean)(config, out, progress=False)
    return net.state_dict(), env_steps


@pytest.mark.parametrize("method", ["routing", "filtering", "naive_early_stopping"])
def test_lean_ppo_and_routed_ppo_train_the_same_weights_from_the_same_seed(tmp_path, method):
    lean, lean_steps = trained_weights(tmp_path, trainer="lean", method=method)
    sb3, sb3_steps = trained_weights(tmp_path, trainer="sb3", method=method)
    assert lean_steps == sb3_steps == 384
    for name in lean:
        assert torch.allclose(lean[name], sb3[name], atol=1e-6), name
    # The comparison can fail: any setting that differs gives other weights.
    for setting in ({"adam_eps": 1e-5}, {"max_grad_norm": None}, {"seed": 1}, {"ent_coef_final": None}):
        other, _ = trained_weights(tmp_path, trainer="sb3", method=method, **setting)
        assert any(not torch.allclose(lean[name], other[name], atol=1e-6) for name in lean), setting


def test_sb3_trainer_run_directory(tmp_path):
    config = TrainConfig(method="routing", trainer="sb3", algorithm="ppo", steps=2048, num_envs=16, rollout_steps=32,
                         eval_every_steps=1024, eval_episodes=32, final_eval_episodes=64, checkpoint_every_steps=1024)
    report = train(config, tmp_path, progress=False)
    assert report["evaluated_variant"] == "without_proxy" and (tmp_path / "checkpoint.zip").exists()
    model = RoutedPPO.load(tmp_path / "checkpoint.zip")
    assert model.num_timesteps >= 2048 and model.policy.bf16 == config.bf16 and model.policy.net.config["hidden"] == 256
    net, loaded = load_policy(tmp_path)  # what `oversight eval` loads
    assert loaded == config and net.actor.expert_names == ("intended", "proxy")


def test_bf16_policy_gives_float32_outputs_close_to_fp32():
    env = make_twin_vec_env("OversightGrid/DiamondGhost-5x5-v0", 8, seed=0, reward="outcome")
    model = RoutedPPO(env, method="routing", n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu",
                      policy_kwargs={"bf16": True})
    model.learn(256)  # the update runs under autocast too
    obs, actions = torch.as_tensor(env.reset()), torch.zeros(8, dtype=torch.long)
    value, log_prob, entropy = model.policy.evaluate_actions(obs, actions)
    model.policy.bf16 = False
    value32, log_prob32, entropy32 = model.policy.evaluate_actions(obs, actions)
    assert value.dtype == log_prob.dtype == torch.float32
    assert not torch.equal(log_prob, log_prob32)  # it did run in bfloat16
    for low, full in ((value, value32), (log_prob, log_prob32), (entropy, entropy32)):
        assert torch.allclose(low, full, atol=0.05)  # bfloat16 keeps ~3 significant digits


def test_a_killed_sb3_run_resumes_exactly(tmp_path, monkeypatch):
    import agents.sb3 as sb3
    from tests.test_agents import scalars

    config = TrainConfig(**{**ONE_PPO, "trainer": "sb3", "steps": 16 * 8 * 6, "eval_every_steps": 256,
                            "checkpoint_every_steps": 256, "method": "naive_early_stopping"})
    uninterrupted = train(config, tmp_path / "a", progress=False)
    real_update, calls = sb3.update, {"n": 0}

    def dies_in_the_fourth_update(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_update(*args, **kwargs)

    monkeypatch.setattr(sb3, "update", dies_in_the_fourth_update)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False)
    assert RoutedPPO.load(tmp_path / "b" / "checkpoint.zip").num_timesteps == 256
    calls["n"] = -100
    resumed = train(config, tmp_path / "b", progress=False)
    assert calls["n"] == -96  # resumed: four updates left, not six
    assert json.dumps(resumed["variants"]) == json.dumps(uninterrupted["variants"])  # NaN != NaN in a dict
    skip = ("speed/", "time/")
    assert scalars(tmp_path / "b", skip) == scalars(tmp_path / "a", skip)
    assert "early_stopping/validation_true_return" in scalars(tmp_path / "a")
