"""Methods, the shared loss, both trainers, resume, and the evaluator's statistics."""

import json

import numpy as np
import pytest
import torch

import agents.lean_trainer as lean_trainer
from agents.config import TrainConfig
from agents.evaluator import evaluate, paper_window_return_per_step, run_episodes
from agents.losses import LossSettings, policy_loss
from agents.methods import METHODS, get_method
from agents.metrics import discounted_return_per_step, wilson
from agents.networks import ActorCritic
from agents.run_dir import load_policy
from agents.train import train

TINY = dict(num_envs=16, rollout_steps=8, eval_every_steps=256, eval_episodes=32, final_eval_episodes=64,
            checkpoint_every_steps=256)


def test_methods_label_filter_and_budget():
    outcome = torch.tensor([0, 1, 2, 1, 2])
    overseen = torch.tensor([False, True, True, False, False])
    routing = get_method("routing")
    assert routing.episode_labels(outcome, overseen).tolist() == [0, 1, 2, 0, 0]
    assert get_method("filtering").episode_kept(outcome, overseen).tolist() == [1, 1, 1, 2, 2]
    assert get_method("oracle").training_steps(10_000_000, 0.05) == 500_000
    assert get_method("naive").training_steps(10_000_000, 0.05) == 10_000_000
    assert {m.reward for m in METHODS.values()} == {"outcome", "naive", "true"}
    with pytest.raises(ValueError, match="method='nope' is invalid"):
        get_method("nope")


def loss_grads(method_name, labels, weights=None):
    torch.manual_seed(0)
    method = get_method(method_name)
    net = ActorCritic((4, 5, 5), experts=method.experts)
    obs = torch.rand(6, 4, 5, 5)
    loss, _ = policy_loss(net, method, LossSettings("reinforce", 0.1, 0.5, 0.01, 0.2), obs, torch.zeros(6, dtype=torch.long), torch.ones(6),
                          torch.ones(6), labels, torch.ones(6) if weights is None else weights)
    loss.backward()
    return {name: sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)
            for name, module in net.actor.experts.items()}, net


def test_routing_loss_leaves_the_diamond_expert_alone_on_overseen_ghost_steps():
    ghost = torch.full((6,), 2)
    grads, _ = loss_grads("routing", ghost)
    assert grads["diamond"] == 0 and grads["ghost"] > 0
    grads, _ = loss_grads("moe_no_routing", ghost)  # the control: same labels, no routing
    assert grads["diamond"] > 0 and grads["ghost"] > 0


def test_filtering_weights_remove_samples_from_the_loss():
    grads, _ = loss_grads("filtering", torch.zeros(6, dtype=torch.long), weights=torch.zeros(6))
    assert grads["diamond"] == 0


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_end_to_end(method, tmp_path):
    config = TrainConfig(method=method, steps=16 * 8 * 4, oversight_prob=0.5, **TINY)
    report = train(config, tmp_path, progress=False)
    m = get_method(method)
    assert report["evaluated_variant"] == ("full" if m.evaluate_without is None else f"without_{m.evaluate_without}")
    variants = report["variants"]
    assert set(variants) == ({"full"} if m.experts == ("diamond",) else {"full", "without_diamond", "without_ghost"})
    stats = variants[report["evaluated_variant"]]
    assert stats["episodes"] == 64
    assert abs(stats["p_diamond"] + stats["p_ghost"] + stats["p_timeout"] - 1) < 1e-9
    assert (tmp_path / "eval.json").exists() and (tmp_path / "config.json").exists()
    assert list((tmp_path / "tb").iterdir())
    if method == "naive_early_stopping":
        assert (tmp_path / "best.pt").exists()
    net, loaded_config = load_policy(tmp_path)
    assert loaded_config == config and net.actor.expert_names == m.experts


def test_oracle_trains_only_for_its_labelled_budget(tmp_path):
    config = TrainConfig(method="oracle", steps=16 * 8 * 40, oversight_prob=0.1, **TINY)
    report = train(config, tmp_path, progress=False)
    assert report["env_steps"] == 512
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["update"] == 4


def test_a_killed_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    config = TrainConfig(method="routing", steps=16 * 8 * 6, oversight_prob=0.5, **{**TINY, "checkpoint_every_steps": 256})
    uninterrupted = train(config, tmp_path / "a", progress=False)

    calls = {"n": 0}
    real_step = lean_trainer._gradient_step

    def dies_after_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # killed during the 4th update: the last checkpoint is after update 2
        return real_step(*args, **kwargs)

    monkeypatch.setattr(lean_trainer, "_gradient_step", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "eval.json").exists()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["state"]["update"] == 2
    monkeypatch.setattr(lean_trainer, "_gradient_step", real_step)
    resumed = train(config, tmp_path / "b", progress=False)
    assert resumed["variants"] == uninterrupted["variants"]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A finished run is not trained again; another config in the same directory is refused.
    assert train(config, tmp_path / "b", progress=False) == json.loads((tmp_path / "b" / "eval.json").read_text())
    with pytest.raises(ValueError, match=r"another config \(differs in \['seed'\]\)"):
        train(TrainConfig(method="routing", steps=16 * 8 * 6, oversight_prob=0.5, seed=1, **TINY), tmp_path / "b")


def test_evaluation_counts_each_environment_once_from_a_fresh_reset():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    data = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=3000, seed=5)
    assert len(data["outcome"]) == 3000 and data["length"].min() >= 1 and data["length"].max() <= 32
    assert np.all(data["length"][data["outcome"] == 0] == 32)  # timeouts, and only they, need all 32 steps
    assert np.all(data["length"][data["length"] < 32] > 0) and np.all(data["outcome"][data["length"] < 32] > 0)
    # An untrained policy cannot tell the diamond from the ghost: the rates agree within noise.
    p_d, p_g = (data["outcome"] == 1).mean(), (data["outcome"] == 2).mean()
    assert abs(p_d - p_g) < 4 * np.sqrt((p_d + p_g) / 3000)


def test_ablated_variants_follow_the_gate_semantics():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    with torch.no_grad():
        net.actor.gate[-1][-1].bias.fill_(-60.0)  # the gate gives everything to the ghost expert
    results = evaluate(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=512, seed=1)
    assert set(results) == {"full", "without_diamond", "without_ghost"}
    assert results["without_diamond"] == results["full"]  # removing an unused expert changes nothing
    assert results["without_ghost"] != results["full"]


def test_metrics():
    # Two episodes: +1 after 2 steps, -1 after 1 step; gamma 0.5: returns-to-go 0.5, 1, -1 over 3 steps.
    d = discounted_return_per_step(np.array([1.0, -1.0]), np.array([2, 1]), gamma=0.5)
    assert d["mean"] == pytest.approx((0.5 + 1 - 1) / 3)
    low, high = wilson(0, 100)
    assert low == 0 and 0.03 < high < 0.04  # the rule of three, roughly
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


def test_paper_window_metric_is_the_mean_reward_when_episodes_last_one_step():
    # With max_steps=1 every episode ends at its first step, so each step's window return is its
    # reward, and the window metric estimates the same mean as the per-episode true return.
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    window = paper_window_return_per_step(net, "OversightGrid/DiamondGhost-5x5-v0", num_envs=512, window=32,
                                          env_kwargs={"max_steps": 1})
    per_episode = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=16384, env_kwargs={"max_steps": 1})
    rewards = per_episode["true_reward"]
    assert per_episode["length"].max() == 1
    assert abs(window - rewards.mean()) < 4.5 * rewards.std() * np.sqrt(2 / 16384)


def test_greedy_evaluation_takes_the_most_probable_action():
    net = ActorCritic((4, 5, 5), experts=("diamond",))
    with torch.no_grad():
        for p in net.actor.parameters():
            p.zero_()
        net.actor.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # "up" is only the likeliest action
    greedy = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=512, greedy=True)
    # Always moving up, an episode ends within 4 steps (a terminal above) or times out at 32.
    assert set(greedy["length"].tolist()) <= {1, 2, 3, 4, 32}
    sampled = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=512)
    assert not set(sampled["length"].tolist()) <= {1, 2, 3, 4, 32}


def test_learning_rate_schedule():
    assert TrainConfig(learning_rate=1e-3).learning_rate_at(0.7) == 1e-3
    annealed = TrainConfig(learning_rate=1e-3, anneal_lr=True)
    assert annealed.learning_rate_at(0.0) == 1e-3 and annealed.learning_rate_at(0.75) == pytest.approx(2.5e-4)


def test_entropy_bonus_schedule():
    constant = TrainConfig(ent_coef=0.05, ent_coef_final=None)
    assert constant.entropy_bonus(0.0) == constant.entropy_bonus(1.0) == 0.05
    annealed = TrainConfig(ent_coef=0.1, ent_coef_final=0.01)
    assert annealed.entropy_bonus(0.0) == 0.1
    assert annealed.entropy_bonus(0.5) == pytest.approx(0.055)
    assert annealed.entropy_bonus(1.0) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="ent_coef_final=-1"):
        TrainConfig(ent_coef_final=-1)


def test_paper_preset_is_the_published_configuration():
    paper = TrainConfig.from_preset("paper", method="naive")
    assert (paper.algorithm, paper.num_envs, paper.rollout_steps, paper.steps) == ("reinforce", 512, 32, 327_680_000)
    assert (paper.learning_rate, paper.anneal_lr, paper.gamma, paper.vf_coef, paper.gate_coef) == (5e-5, False, 0.97, 0.5, 0.01)
    assert paper.entropy_bonus(0.0) == paper.entropy_bonus(1.0) == 0.1 and not paper.bf16 and not paper.bootstrap
    assert paper.method == "naive" and TrainConfig.from_preset("paper", learning_rate=1e-4).learning_rate == 1e-4
    assert TrainConfig.from_preset("fast") == TrainConfig()


def test_independent_seeds_differ_and_repeat():
    from agents.seeding import independent_seeds

    a, b = independent_seeds(0, 2)
    assert a != b and independent_seeds(0, 2) == [a, b] and independent_seeds(1, 2) != [a, b]
