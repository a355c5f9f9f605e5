"""Methods, the shared loss, both trainers, resume, and the evaluator's statistics."""

import contextlib
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import agents.lean_trainer as lean_trainer
from agents.config import TrainConfig
from agents.evaluator import evaluate, paper_window_return_per_step, run_episodes
from agents.losses import Samples, UpdateSettings, policy_loss, update
from agents.methods import METHODS, get_method
from agents.metrics import discounted_return_per_step, wilson
from agents.networks import ActorCritic, planes_shown
from agents.policies import load_policy
from agents.train import train

TINY = dict(num_envs=16, rollout_steps=8, eval_every_steps=256, eval_episodes=32, final_eval_episodes=64,
            checkpoint_every_steps=256)


def test_methods_budget_and_training_oversight():
    assert get_method("oracle").training_steps(10_000_000, 0.05) == 500_000
    assert get_method("oracle").training_steps(3_000_000, 0.003) == 9_000
    assert get_method("naive").training_steps(10_000_000, 0.05) == 10_000_000
    assert get_method("naive_early_stopping").training_oversight(0.1) == pytest.approx(0.075)
    assert get_method("naive").training_oversight(0.1) == 0.1
    assert {m.reward for m in METHODS.values()} == {"outcome", "naive", "true"}
    with pytest.raises(ValueError, match="method='nope' is invalid"):
        get_method("nope")


def samples(labels, weights=None, n=6):
    torch.manual_seed(1)
    return Samples(torch.rand(n, 4, 5, 5), torch.zeros(n, dtype=torch.long), torch.zeros(n), torch.ones(n), torch.ones(n),
                   labels, torch.ones(n) if weights is None else weights)


SETTINGS = UpdateSettings("reinforce", learning_rate=1e-3, ent_coef=0.1, vf_coef=0.5, gate_coef=0.01)


def loss_grads(method_name, labels, weights=None):
    torch.manual_seed(0)
    method = get_method(method_name)
    net = ActorCritic((4, 5, 5), experts=method.experts)
    loss, _ = policy_loss(net, method, SETTINGS, samples(labels, weights))
    loss.backward()
    return {name: sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)
            for name, module in net.actor.experts.items()}, net


def sgd_step(method_name, labels, algorithm="reinforce"):
    """Each parameter's change in one `update` with plain SGD, lr 1 (minus its gradient)."""
    torch.manual_seed(0)
    method = get_method(method_name)
    net = ActorCritic((4, 5, 5), experts=method.experts)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    settings = dataclasses.replace(SETTINGS, algorithm=algorithm, learning_rate=1.0)
    data = samples(labels, n=len(labels))
    data = data._replace(advantages=torch.linspace(-1, 1, len(labels)), returns=torch.linspace(0, 1, len(labels)))
    update(net, torch.optim.SGD(net.parameters(), lr=1.0), method, settings, data, torch.Generator().manual_seed(0),
           contextlib.nullcontext())
    return {name: p.detach() - before[name] for name, p in net.named_parameters()}


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_parameter_level_routing_trains_what_activation_level_routing_trains_on_the_papers_network(algorithm):
    # Nothing before the experts is shared, so stopping gradients at the experts' outputs and
    # masking the other expert's and the gate's parameters give the same update.
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    activation, parameter = sgd_step("routing", labels, algorithm), sgd_step("routing_parameter_level", labels, algorithm)
    unrouted = sgd_step("moe_no_routing", labels, algorithm)
    for name in activation:
        assert torch.allclose(activation[name], parameter[name], atol=1e-7), name
    assert any(not torch.allclose(activation[n], unrouted[n], atol=1e-7) for n in activation)  # routing matters here
    # A batch of intended-labelled samples leaves the proxy expert untouched (its gradient stays None).
    only_intended = sgd_step("routing_parameter_level", torch.ones(6, dtype=torch.long), algorithm)
    assert all(float(d.abs().max()) == 0 for n, d in only_intended.items() if n.startswith("actor.experts.proxy"))
    assert any(float(d.abs().max()) > 0 for n, d in only_intended.items() if n.startswith("actor.experts.intended"))


def test_the_gate_replay_keeps_the_latest_labelled_samples_and_draws_from_them():
    method = dataclasses.replace(get_method("routing_gate_replay"), replay_capacity=5, replay_batch=3)
    state = method.initial_state()
    assert method.gate_replay(state, torch.Generator().manual_seed(0)) is None  # nothing seen yet
    obs = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 4, 5, 5)
    method.after_update(state, obs[:4], torch.tensor([1, 0, 2, 0]))  # samples 0 and 2 are labelled
    method.after_update(state, obs[4:], torch.tensor([2, 2, 1, 1]))
    assert state["replay_obs"][:, 0, 0, 0].tolist() == [2, 4, 5, 6, 7]  # the oldest (0) dropped beyond 5
    assert state["replay_labels"].tolist() == [2, 2, 2, 1, 1]
    replay_obs, replay_labels = method.gate_replay(state, torch.Generator().manual_seed(0))
    assert len(replay_labels) == 3 and replay_obs.dtype == torch.float32
    pairs = dict(zip(state["replay_obs"][:, 0, 0, 0].tolist(), state["replay_labels"].tolist()))
    assert all(pairs[o] == label for o, label in zip(replay_obs[:, 0, 0, 0].tolist(), replay_labels.tolist()))


def test_the_lean_trainer_fills_the_gate_replay_with_labelled_samples(tmp_path):
    config = TrainConfig(method="routing_gate_replay", steps=16 * 8 * 3, oversight_prob=1.0, **TINY)
    lean_trainer.train_lean(config, tmp_path, progress=False)
    replayed = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["method"]["replay_labels"]
    assert replayed is not None and len(replayed) > 0 and set(replayed.tolist()) <= {1, 2}


def test_replayed_samples_train_the_gate_when_the_rollout_has_no_labels():
    def gate_change(replay):
        torch.manual_seed(0)
        method = get_method("routing_gate_replay")
        net = ActorCritic((4, 5, 5), experts=method.experts)
        before = [p.detach().clone() for p in net.actor.gate.parameters()]
        data = samples(torch.zeros(6, dtype=torch.long), torch.zeros(6))  # unlabelled, weight 0: no loss but the gate's
        update(net, torch.optim.SGD(net.parameters(), lr=1.0), method, SETTINGS, data, torch.Generator(),
               contextlib.nullcontext(), replay)
        return max(float((p - b).abs().max()) for p, b in zip(net.actor.gate.parameters(), before))

    assert gate_change(None) == 0.0
    assert gate_change((torch.rand(8, 4, 5, 5), torch.tensor([1, 2] * 4))) > 0


def test_routing_loss_leaves_the_intended_expert_alone_on_overseen_proxy_steps():
    proxy = torch.full((6,), 2)
    grads, _ = loss_grads("routing", proxy)
    assert grads["intended"] == 0 and grads["proxy"] > 0
    grads, _ = loss_grads("moe_no_routing", proxy)  # the control: same labels, no routing
    assert grads["intended"] > 0 and grads["proxy"] > 0


def test_filtering_weights_remove_samples_from_the_loss():
    grads, _ = loss_grads("filtering", torch.zeros(6, dtype=torch.long), weights=torch.zeros(6))
    assert grads["intended"] == 0


def test_the_gate_loss_enters_with_its_coefficient_for_the_methods_that_train_the_gate():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    data = samples(torch.tensor([1, 2, 0, 1, 0, 2]))
    totals = {}
    for name in ("routing", "routing_no_gate_loss", "moe_no_routing"):
        for coef in (0.0, 0.5):
            loss, stats = policy_loss(net, get_method(name), dataclasses.replace(SETTINGS, gate_coef=coef), data)
            totals[name, coef] = float(loss.detach())
    gate = float(stats["loss/gate"])
    assert gate > 0
    assert totals["routing", 0.5] - totals["routing", 0.0] == pytest.approx(0.5 * gate, rel=1e-4)
    assert totals["moe_no_routing", 0.5] - totals["moe_no_routing", 0.0] == pytest.approx(0.5 * gate, rel=1e-4)
    assert totals["routing_no_gate_loss", 0.5] == totals["routing_no_gate_loss", 0.0]


def test_update_settings_follow_the_schedules():
    config = TrainConfig(learning_rate=1e-3, anneal_lr=True, ent_coef=0.1, ent_coef_final=0.02, gate_coef=0.3,
                         max_grad_norm=0.5, adam_eps=1e-6)
    start, middle = UpdateSettings.from_config(config, 0.0), UpdateSettings.from_config(config, 0.5)
    assert (start.ent_coef, start.learning_rate) == (0.1, 1e-3)
    assert middle.ent_coef == pytest.approx(0.06) and middle.learning_rate == pytest.approx(5e-4)
    assert (middle.gate_coef, middle.max_grad_norm, middle.vf_coef) == (0.3, 0.5, 0.5)


def test_the_trainer_applies_the_learning_rate_schedule(tmp_path):
    """The optimizer of a run with `anneal_lr` took its last step at the rate the schedule sets
    for the start of the last update (1/4 of the initial rate in four updates)."""
    config = TrainConfig(method="routing", steps=16 * 8 * 4, anneal_lr=True, learning_rate=1e-3, **TINY)
    train(config, tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(config.learning_rate_at(3 / 4))


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5), experts=("intended",))
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    data = samples(torch.zeros(6, dtype=torch.long))
    update(net, optimizer, get_method("naive"), dataclasses.replace(SETTINGS, learning_rate=1.0, max_grad_norm=1e-3),
           data, torch.Generator(), contextlib.nullcontext())
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert float(moved) == pytest.approx(1e-3, rel=1e-3)  # SGD with lr 1 moves by the clipped gradient


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_end_to_end(method, tmp_path):
    config = TrainConfig(method=method, steps=16 * 8 * 4, oversight_prob=0.5, **TINY)
    report = train(config, tmp_path, progress=False)
    m = get_method(method)
    assert report["evaluated_variant"] == ("full" if m.evaluate_without is None else f"without_{m.evaluate_without}")
    variants = report["variants"]
    assert set(variants) == ({"full"} if m.experts == ("intended",) else {"full", "without_intended", "without_proxy"})
    stats = variants[report["evaluated_variant"]]
    assert stats["episodes"] == 64
    assert abs(stats["p_intended"] + stats["p_proxy"] + stats["p_timeout"] - 1) < 1e-9
    assert (tmp_path / "eval.json").exists() and (tmp_path / "config.json").exists()
    assert list((tmp_path / "tb").iterdir())
    if method == "naive_early_stopping":
        assert (tmp_path / "best.pt").exists()
    net, loaded_config = load_policy(tmp_path)
    assert loaded_config == config and net.actor.expert_names == m.experts


@pytest.mark.parametrize("method,blind", [("routing_blind_gate", True), ("routing", False)])
def test_the_blind_gate_does_not_read_the_oversight_map_and_the_experts_do(tmp_path, method, blind):
    train(TrainConfig(method=method, steps=16 * 8 * 2, oversight_prob=0.5, **TINY), tmp_path, progress=False)
    net, _ = load_policy(tmp_path)  # a saved and reloaded network: the config carries the gate's planes
    torch.manual_seed(0)
    obs = torch.rand(8, 4, 5, 5)
    other = obs.clone()
    other[:, 3] = torch.rand(8, 5, 5)  # plane 3: the oversight map
    with torch.no_grad():
        before, after = net(obs), net(other)
    assert torch.equal(before.gate, after.gate) == blind
    assert net.actor.detach_gate == blind  # routing_blind_gate's gate learns only from the gate loss
    assert not torch.equal(before.logits, after.logits)


def test_gate_planes_are_checked():
    for planes in ([], [0, 4], [1, 1]):
        with pytest.raises(ValueError, match=r"gate_planes=.* is invalid"):
            ActorCritic((4, 5, 5), gate_planes=planes)
    assert planes_shown(("agent", "proxy", "intended"), ("oversight",)) is None  # nothing to hide: the paper's gate
    assert planes_shown(("agent", "proxy", "intended", "oversight"), ("oversight",)) == (0, 1, 2)


@pytest.mark.parametrize("oversight,budget", [(0.1, 512), (0.13, 666)])
def test_oracle_trains_exactly_its_labelled_budget(tmp_path, oversight, budget):
    # 5120 steps x p: 512 is four whole updates of 16 x 8; 666 needs a last, partial update.
    config = TrainConfig(method="oracle", steps=16 * 8 * 40, oversight_prob=oversight, **TINY)
    trained = []
    real_update = lean_trainer.update

    def counting(nets, optimizer, method, settings, samples, *args):
        trained.append(sum(len(member.obs) for member in samples))
        return real_update(nets, optimizer, method, settings, samples, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lean_trainer, "update", counting)
        report = train(config, tmp_path, progress=False)
    assert sum(trained) == budget and report["env_steps"] == budget
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["env_steps"] == budget


def scalars(run_dir, skip=("speed/",)):
    """Every scalar of a run as {tag: [(step, value), ...]}, from its `metrics.jsonl` (what reports
    read), checked against what tensorboard reads of its events (purged points dropped from both;
    tensorboard keeps float32); wall-clock speeds skipped."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.logger import METRICS, read_metrics

    rows, problems = read_metrics(run_dir / METRICS)
    assert problems == []
    found = {}
    for row in rows:
        if not row["tag"].startswith(skip):
            found.setdefault(row["tag"], []).append((row["step"], row["value"]))
    found = {tag: sorted(points) for tag, points in found.items()}
    events_found = {}
    for events_dir in sorted({p.parent for p in (run_dir / "tb").glob("**/events.out.tfevents.*")}):
        events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if not tag.startswith(skip):
                events_found.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    assert sorted(events_found) == sorted(found)
    for tag, points in found.items():
        seen = sorted(events_found[tag])
        assert [step for step, _ in seen] == [step for step, _ in points], tag
        assert np.allclose([v for _, v in seen], [v for _, v in points], rtol=1e-6, atol=1e-30, equal_nan=True), tag
    return found


def dies_in_the_fourth_update(monkeypatch) -> dict[str, int]:
    """Make the lean trainer's fourth update raise KeyboardInterrupt (with checkpoints every 256
    steps of 128-step updates, the last one is after update 2); returns the update counter, which
    a test sets negative to let the resumed run finish and count its updates."""
    real, calls = lean_trainer.update, {"n": 0}

    def update(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lean_trainer, "update", update)
    return calls


# With a method state; a carry of waiting steps; a replay drawn with the run's generator.
@pytest.mark.parametrize("method", ["naive_early_stopping", "routing_full_labels", "routing_gate_replay"])
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path, monkeypatch, method):
    config = TrainConfig(method=method, steps=16 * 8 * 6, oversight_prob=0.5, **TINY)
    uninterrupted = train(config, tmp_path / "a", progress=False)

    calls = dies_in_the_fourth_update(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "eval.json").exists()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["state"]["env_steps"] == 256
    calls["n"] = -100  # the resumed run must not die, and must run only the four updates left
    resumed = train(config, tmp_path / "b", progress=False)
    assert calls["n"] == -96
    assert json.dumps(resumed["variants"]) == json.dumps(uninterrupted["variants"])  # NaN != NaN in a dict
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert scalars(tmp_path / "b") == scalars(tmp_path / "a")  # every logged point, none twice
    assert method != "naive_early_stopping" or "early_stopping/validation_true_return" in scalars(tmp_path / "a")
    # A finished run is not trained again; another config in the same directory is refused.
    assert train(config, tmp_path / "b", progress=False) == json.loads((tmp_path / "b" / "eval.json").read_text())
    with pytest.raises(ValueError, match=r"another config \(differs in \['seed'\]\)"):
        train(dataclasses.replace(config, seed=1), tmp_path / "b")


def test_the_lean_trainer_routes_with_labels_and_follows_the_entropy_schedule(tmp_path):
    config = TrainConfig(method="routing", steps=16 * 8 * 4, oversight_prob=1.0, ent_coef=0.1, ent_coef_final=0.02, **TINY)
    train(config, tmp_path, progress=False)
    logged = scalars(tmp_path)
    # The gate's mean on labelled samples is logged only when labels reach the loss.
    assert "gate/intended_labelled" in logged and "gate/proxy_labelled" in logged
    assert max(v for _, v in logged["route/fraction_unlabelled"]) < 1
    assert [v for _, v in logged["loss/entropy_coef"]] == pytest.approx([0.1, 0.08, 0.06, 0.04])


def test_evaluation_counts_each_environment_once_from_a_fresh_reset():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    data = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=3000, seed=5)
    assert len(data["outcome"]) == 3000 and data["length"].min() >= 1 and data["length"].max() <= 32
    assert np.all(data["length"][data["outcome"] == 0] == 32)  # timeouts, and only they, need all 32 steps
    assert np.all(data["length"][data["length"] < 32] > 0) and np.all(data["outcome"][data["length"] < 32] > 0)
    # An untrained policy cannot tell the intended from the proxy: the rates agree within noise.
    p_d, p_g = (data["outcome"] == 1).mean(), (data["outcome"] == 2).mean()
    assert abs(p_d - p_g) < 4 * np.sqrt((p_d + p_g) / 3000)


def test_ablated_variants_follow_the_gate_semantics():
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    with torch.no_grad():
        net.actor.gate[-1][-1].bias.fill_(-60.0)  # the gate gives everything to the proxy expert
    results = evaluate(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=512, seed=1)
    assert set(results) == {"full", "without_intended", "without_proxy"}
    assert results["without_intended"] == results["full"]  # removing an unused expert changes nothing
    assert results["without_proxy"] != results["full"]


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
    net = ActorCritic((4, 5, 5), experts=("intended",))
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


def test_the_evaluator_records_each_environments_first_episode():
    """A policy that always moves up: each first episode ends on the nearest object straight
    above the agent's start, or times out; later episodes (other starts) must not overwrite it."""
    from agents.evaluator import _fresh_environments

    net = ActorCritic((4, 5, 5), experts=("intended",))
    with torch.no_grad():
        for p in net.actor.parameters():
            p.zero_()
        net.actor.head.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))  # "up", all but surely
    data = run_episodes(net, "OversightGrid/DiamondGhost-5x5-v0", episodes=256, seed=3)
    twin, _ = _fresh_environments("OversightGrid/DiamondGhost-5x5-v0", 256, 3, None, None)
    twin.reset()
    for i in range(256):
        start = twin.get_state(i)
        above = [(start.agent[1] - y, code) for (x, y), code in zip(start.objects, (2, 1))  # proxy, intended
                 if x == start.agent[0] and y < start.agent[1]]
        length, outcome = min(above) if above else (32, 0)
        assert (data["length"][i], data["outcome"][i]) == (length, outcome), i
        overseen = bool(start.overseen[start.agent[1] - length, start.agent[0]]) if above else False
        assert data["overseen"][i] == overseen and data["proxy_overseen"][i] == bool(start.overseen[start.objects[0][1], start.objects[0][0]])


def test_episode_statistics_condition_on_the_proxy_cell_at_reset():
    from agents.metrics import episode_statistics

    # Five episodes: outcome (0 timeout, 1 intended, 2 proxy), whether the episode ended overseen,
    # and whether the proxy's cell was overseen at reset.
    outcome = np.array([2, 2, 1, 2, 0])
    overseen = np.array([True, False, False, False, False])
    proxy_overseen = np.array([True, False, False, True, False])
    stats = episode_statistics(outcome, overseen, np.array([-1.0, -1.0, 1.0, -1.0, 0.0]), np.array([1, 2, 3, 4, 32]),
                               proxy_overseen, nearer=np.array([2, 2, 1, 0, 1]), gamma=0.5)
    # Ghost unobserved at reset: episodes 1, 2, 4 -> one proxy in three. (Conditioning on the
    # episode's own oversight would count episodes 1-4: two ghosts in four; on the proxy cell
    # being overseen, episodes 0 and 3: two in two.)
    assert stats["p_proxy_when_unobserved"] == pytest.approx(1 / 3)
    assert stats["by_proxy_cell_at_reset"]["overseen"]["p_proxy"] == 1.0
    assert stats["by_episode_oversight"]["unobserved"]["p_proxy"] == pytest.approx(0.5)
    assert stats["by_nearer_terminal"]["proxy"]["episodes"] == 2 and stats["by_nearer_terminal"]["tie"]["p_proxy"] == 1.0
    assert stats["p_intended"] == pytest.approx(0.2) and stats["p_timeout"] == pytest.approx(0.2)


class _FakeRun:
    def __init__(self, tmp_path):
        torch.manual_seed(0)
        self.net = ActorCritic((4, 5, 5), experts=("intended",))
        self.config = TrainConfig(method="naive_early_stopping", oversight_prob=0.2)
        self.out_dir, self.env_steps, self.logged = tmp_path, 0, []

    def log(self, tag, value):
        self.logged.append((tag, value))


def test_early_stopping_spends_the_held_out_labels_and_keeps_the_best_weights(tmp_path, monkeypatch):
    import agents.evaluator

    method, run = get_method("naive_early_stopping"), _FakeRun(tmp_path)
    state = method.initial_state()
    scores, asked = iter([0.2, 0.5, 0.1]), []

    def fake_episodes(net, env_id, n, seed, oversight_prob, env_kwargs):
        asked.append((n, oversight_prob))  # the validation episodes are scored at the full oversight
        codes = np.zeros(n, dtype=np.int64)
        return {"true_reward": np.full(n, next(scores)), "outcome": codes, "verdict": codes}

    monkeypatch.setattr(agents.evaluator, "run_episodes", fake_episodes)
    # 30 labels seen in training at 3/4 of the budget pay for 10 held-out episodes.
    method.after_rollout(state, torch.tensor([1, 2, 0]), torch.tensor([True, True, False]))  # 2 labels
    method.after_rollout(state, torch.tensor([1] * 28), torch.ones(28, dtype=torch.bool))  # 28 more
    method.at_evaluation(state, run)
    assert asked == [(10, 0.2)] and state["labels_since_eval"] == 0
    run.env_steps = 100
    method.after_rollout(state, torch.tensor([1] * 5), torch.ones(5, dtype=torch.bool))  # 5 labels: 1.67 episodes
    method.at_evaluation(state, run)
    assert asked[-1] == (1, 0.2) and state["validation_budget"] == pytest.approx(2 / 3)
    best = torch.load(method.final_weights(state, tmp_path), weights_only=False)
    assert (best["env_steps"], best["score"]) == (100, 0.5)  # the better of 0.2 and 0.5
    run.env_steps = 200
    with torch.no_grad():
        run.net.actor.head.bias.add_(1.0)
    method.after_rollout(state, torch.tensor([1] * 3), torch.ones(3, dtype=torch.bool))
    method.at_evaluation(state, run)  # scores 0.1: worse, so the weights of step 100 stay
    best = torch.load(method.final_weights(state, tmp_path), weights_only=False)
    assert best["env_steps"] == 100 and not torch.equal(best["model"]["actor.head.bias"], run.net.actor.head.bias)
    assert ("early_stopping/validation_true_return", 0.5) in run.logged


def _uniform_net(experts=("intended",)):
    """A network whose policy is uniform and whose value is 0 everywhere."""
    net = ActorCritic((4, 5, 5), experts=experts)
    with torch.no_grad():
        for p in [*net.actor.head.parameters(), *net.critic[-1].parameters()]:
            p.zero_()
    return net


def test_policy_loss_by_hand_reinforce_and_ppo_clip():
    net, n = _uniform_net(), 4
    uniform = torch.full((n,), math.log(0.25))
    data = Samples(torch.rand(n, 4, 5, 5), torch.tensor([0, 1, 2, 3]), uniform, torch.ones(n), torch.zeros(n),
                   torch.zeros(n, dtype=torch.long), torch.ones(n))
    # REINFORCE: -log(1/4) * 1 - 0.1 * entropy(uniform) + 0.5 * (0 - 0)^2.
    loss, _ = policy_loss(net, get_method("naive"), SETTINGS, data)
    assert float(loss) == pytest.approx(math.log(4) - 0.1 * math.log(4))
    # PPO: old probabilities half the new ones, so the ratio is 2, clipped to 1.2 for a positive
    # advantage (-1.2) and left at 2 for a negative one (+2): min of the two surrogates.
    ppo = dataclasses.replace(SETTINGS, algorithm="ppo", ent_coef=0.0)
    doubled = data._replace(old_log_prob=uniform - math.log(2))
    assert float(policy_loss(net, get_method("naive"), ppo, doubled)[0]) == pytest.approx(-1.2)
    negative = doubled._replace(advantages=-torch.ones(n))
    assert float(policy_loss(net, get_method("naive"), ppo, negative)[0]) == pytest.approx(2.0)


def test_update_sets_the_learning_rate_of_the_schedule():
    net = _uniform_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1.0)
    update(net, optimizer, get_method("naive"), dataclasses.replace(SETTINGS, learning_rate=0.0123),
           samples(torch.zeros(6, dtype=torch.long)), torch.Generator(), contextlib.nullcontext())
    assert [group["lr"] for group in optimizer.param_groups] == [0.0123]


def test_early_stopping_trains_at_three_quarters_of_the_oversight_and_returns_its_best_weights(tmp_path):
    # Seed 0: its best validation score comes at 512 of 768 steps (seeds 2 and 6 peak at the end).
    config = TrainConfig(method="naive_early_stopping", steps=16 * 8 * 6, oversight_prob=1.0, seed=0, **TINY)
    net, env_steps = lean_trainer.train_lean(config, tmp_path, progress=False)
    logged = scalars(tmp_path)
    unobserved = sum(v for tag in ("train/p_intended_unobserved", "train/p_proxy_unobserved") for _, v in logged[tag])
    assert unobserved > 0  # at oversight 1, only the held-out quarter leaves terminals unobserved
    best = torch.load(tmp_path / "best.pt", weights_only=False)["model"]
    last = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(best[k], last[k]) for k in best)  # this seed's best is not its last
    assert all(torch.equal(v, best[k]) for k, v in net.state_dict().items())


def test_training_evaluations_score_the_methods_evaluated_variant():
    from agents.evaluator import training_evaluation
    from agents.metrics import episode_statistics

    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5))
    with torch.no_grad():
        net.actor.gate[-1][-1].bias.fill_(-60.0)  # everything to the proxy expert: ablating it matters
    config = TrainConfig(method="routing", eval_episodes=256)
    scalars_logged = training_evaluation(net, config, 7, get_method(config.method).evaluate_without)
    for ablate, same in (("proxy", True), (None, False)):
        stats = episode_statistics(**run_episodes(net, config.env_id, 256, 7, ablate, config.oversight_prob), gamma=0.97)
        assert (scalars_logged["eval/p_proxy"] == stats["p_proxy"]) == same
