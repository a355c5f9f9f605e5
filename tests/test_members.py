"""The member axis: K runs (seeds, oversight levels) trained as one program train what K lone runs
train (weights, optimizer, evaluations, tensorboard scalars, early stopping's choice), for every
method; they resume exactly, share run directories with lone runs both ways, and refuse configs
that differ in more than seed and oversight level."""

import contextlib
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from agents import lean_trainer, member_update
from agents.config import TrainConfig
from agents.lean_trainer import LeanRun, check_members
from agents.losses import Samples, UpdateSettings, update
from agents.methods import METHODS, get_method
from agents.networks import ActorCritic
from agents.stacked import StackedNetworks
from agents.train import train, train_members
from tests.fake_ray import FakeRay
from tests.test_agents import dies_in_the_fourth_update, scalars

# On the CPU, whatever the machine: the equalities below are the CPU's. On CUDA batched kernels of
# K members round differently from one member's, and training amplifies it (weights 1e-2 apart after
# six PPO updates on an H100, while a lone run resumed there matched itself exactly): README "Speed".
TINY = {"num_envs": 16, "rollout_steps": 8, "hidden": 32, "bf16": False, "oversight_prob": 0.5, "steps": 16 * 8 * 4,
        "eval_every_steps": 256, "eval_episodes": 32, "final_eval_episodes": 64, "checkpoint_every_steps": 256,
        "device": "cpu"}
SEEDS = (0, 1, 2)


def cell(seeds=SEEDS, oversight=None, **settings):
    """The configs of `seeds` for one cell of TINY with `settings`, at oversight levels `oversight`
    (one per seed; default TINY's)."""
    base = TrainConfig(**{**TINY, **settings})
    levels = oversight or [base.oversight_prob] * len(seeds)
    return [dataclasses.replace(base, seed=seed, oversight_prob=p) for seed, p in zip(seeds, levels)]


def close(a, b, tol=1e-5):
    """JSON-like values equal, numbers within `tol` (NaN equal to NaN); tensors, modules,
    optimizers and other objects (a reward model) by their contents."""
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and (torch.allclose(a, b, atol=tol, rtol=tol, equal_nan=True) if a.is_floating_point() else torch.equal(a, b)))
    if isinstance(a, (torch.nn.Module, torch.optim.Optimizer)):
        return type(a) is type(b) and close(a.state_dict(), b.state_dict(), tol)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and close(list(a), list(b), tol)
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return type(a) is type(b) and close(vars(a), vars(b), tol)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) and not isinstance(b, bool):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=tol, abs=tol)
    return a == b


def assert_same_run(a, b, atol=1e-5):
    """Two run directories hold the same run: weights and optimizer within `atol`; generator,
    environments, budget and method state equal; evaluation and tensorboard scalars close; and
    early stopping's choice the same."""
    ca, cb = (torch.load(d / "checkpoint.pt", weights_only=False) for d in (a, b))
    for name in ca["model"]:
        assert torch.allclose(ca["model"][name], cb["model"][name], atol=atol), name
    assert ca["optimizer"]["param_groups"] == cb["optimizer"]["param_groups"]
    for i, entry in ca["optimizer"]["state"].items():
        for key, value in entry.items():
            assert value.shape == cb["optimizer"]["state"][i][key].shape, (i, key)
            assert torch.allclose(value, cb["optimizer"]["state"][i][key], atol=atol, rtol=1e-4), (i, key)
    assert torch.equal(ca["generator"], cb["generator"])
    assert all(torch.equal(ca["twin"][k], cb["twin"][k]) for k in ca["twin"])
    assert close(ca["state"], cb["state"])
    assert close(json.loads((a / "eval.json").read_text()), json.loads((b / "eval.json").read_text()))
    sa, sb = scalars(a, skip=("speed/",)), scalars(b, skip=("speed/",))
    assert sa.keys() == sb.keys()
    for tag in sa:
        assert [s for s, _ in sa[tag]] == [s for s, _ in sb[tag]], tag
        assert [v for _, v in sa[tag]] == pytest.approx([v for _, v in sb[tag]], rel=1e-4, abs=1e-5, nan_ok=True), tag
    assert (a / "best.pt").exists() == (b / "best.pt").exists()
    if (a / "best.pt").exists():
        ba, bb = (torch.load(d / "best.pt", weights_only=False) for d in (a, b))
        assert ba["env_steps"] == bb["env_steps"]
        assert all(torch.allclose(ba["model"][k], bb["model"][k], atol=atol) for k in ba["model"])


CASES = {
    "routing": {"method": "routing"},
    "ppo": {"method": "routing", "algorithm": "ppo", "env_kwargs": {"max_steps": 6}},  # timeouts: bootstrapped values
    "early_stopping": {"method": "naive_early_stopping", "steps": 16 * 8 * 6, "oversight_prob": 1.0},
    "max_grad_norm": {"method": "filtering", "algorithm": "ppo", "max_grad_norm": 0.05, "anneal_lr": True},
    # Carried episodes bootstrapped from each member's own last values (PPO bootstraps; timeouts).
    "carried_ppo": {"method": "routing_full_labels", "algorithm": "ppo", "env_kwargs": {"max_steps": 6}},
}


def assert_members_train_lone_runs(tmp_path, configs):
    """`configs` trained as members of one program and one by one: the same runs."""
    singles = [train(c, tmp_path / f"lean{k}", progress=False) for k, c in enumerate(configs)]
    reports = train_members(configs, [tmp_path / f"pop{k}" for k in range(len(configs))], progress=False)
    for k, (single, report) in enumerate(zip(singles, reports)):
        assert close(report, single), k
        assert_same_run(tmp_path / f"pop{k}", tmp_path / f"lean{k}")
    first, second = (torch.load(tmp_path / f"pop{k}" / "checkpoint.pt", weights_only=False)["model"] for k in (0, 1))
    assert any(not torch.allclose(first[k], second[k], atol=1e-3) for k in first)  # the members did differ


@pytest.mark.parametrize("case", sorted(CASES))
def test_members_train_what_separate_lean_runs_train(tmp_path, case):
    assert_members_train_lone_runs(tmp_path, cell(**CASES[case]))
    if case == "early_stopping":  # the comparison covers early stopping's choice: not the last weights, for some seed
        chosen = [torch.load(tmp_path / f"pop{k}" / "best.pt", weights_only=False)["env_steps"] for k in range(3)]
        assert min(chosen) < 16 * 8 * 6, chosen


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_members_at_mixed_oversight_levels_as_lone_runs(tmp_path, method):
    """Each method's hooks on the member axis (reward models, gate replays, carried episodes,
    parameter-level routing, early stopping), members at three oversight levels (one level where
    the budget depends on it: the oracle's)."""
    levels = [0.5] * 3 if method == "oracle" else [0.25, 0.5, 1.0]
    assert_members_train_lone_runs(tmp_path, cell(oversight=levels, method=method, steps=16 * 8 * 5))


def test_member_k_of_eight_trains_what_member_k_of_one_trains(tmp_path):
    """K = 1 and K = 8 (seeds and oversight levels mixed): each member is its lone run."""
    configs = cell(seeds=range(8), oversight=[0.1, 0.9] * 4, method="routing", algorithm="ppo",
                   env_kwargs={"max_steps": 6})
    assert_members_train_lone_runs(tmp_path, configs)


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_one_member_update_moves_each_member_as_its_own_update_would(algorithm):
    """With plain SGD (no Adam to hide a gradient's scale) and clipping that binds for some seeds
    only: each seed's step is the one `agents.losses.update` takes for it alone."""
    method, k = get_method("routing"), 3
    settings = UpdateSettings(algorithm, learning_rate=1.0, ent_coef=0.1, vf_coef=0.5, gate_coef=0.01, max_grad_norm=0.9,
                              epochs=2, minibatches=2)
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(ActorCritic((4, 5, 5), hidden=16))
    initial = [{name: value.clone() for name, value in net.state_dict().items()} for net in nets]
    torch.manual_seed(10)
    n = 24
    samples = Samples(torch.rand(k, n, 4, 5, 5), torch.randint(0, 4, (k, n)), -torch.rand(k, n), torch.randn(k, n) * 3,
                      torch.randn(k, n), torch.randint(0, 3, (k, n)), torch.ones(k, n))
    singles = []
    for seed, net in enumerate(nets):
        alone = ActorCritic((4, 5, 5), hidden=16)
        alone.load_state_dict(net.state_dict())
        update(alone, torch.optim.SGD(alone.parameters(), lr=1.0), method, settings,
               Samples(*(x[seed] for x in samples)), torch.Generator().manual_seed(seed), contextlib.nullcontext())
        singles.append(alone.state_dict())
    stack = StackedNetworks(nets)
    member_update.update(stack, torch.optim.SGD(stack.params.values(), lr=1.0), method, settings,
                   [Samples(*(x[seed] for x in samples)) for seed in range(k)],
                   [torch.Generator().manual_seed(seed) for seed in range(k)], contextlib.nullcontext())
    stack.sync()
    moved = []
    for seed, net in enumerate(nets):
        for name, value in net.state_dict().items():
            assert torch.allclose(value, singles[seed][name], atol=1e-5), (seed, name)
        moved.append(math.sqrt(sum(float(((value - initial[seed][name]) ** 2).sum())
                                   for name, value in net.state_dict().items())))
    if algorithm == "reinforce":  # one clipped step moves at most 0.9; some seeds' gradients were smaller
        assert max(moved) == pytest.approx(0.9, rel=1e-3) and min(moved) < 0.85, moved


@pytest.mark.parametrize("method", ["routing", "routing_blind_gate", "naive"])
def test_the_batched_forward_gives_each_members_forward_and_gradients(method):
    """`StackedNetworks` batched (vmap: what CUDA runs) and one member after another (what a CPU
    runs) give the same outputs, values, gate logits and gradients of the stacks."""
    chosen, k = get_method(method), 3
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(ActorCritic((4, 5, 5), experts=chosen.experts, hidden=16, gate_from_policy=chosen.gate_from_policy,
                                gate_planes=(0, 1, 2) if chosen.gate_hides else None))
    torch.manual_seed(9)
    obs, labels = torch.rand(k, 12, 4, 5, 5), torch.randint(0, 3, (k, 12))
    results = []
    for batched in (True, False):
        stack = StackedNetworks(nets, batched=batched)
        out = stack(obs, labels if chosen.route_labels else None)
        parts = [out.logits, out.value, out.gate, stack.critic(obs)]
        if out.gate_logit is not None:
            parts += [out.gate_logit, stack.gate_logits(obs)]
        sum(x.float().pow(2).sum() for x in parts).backward()
        with torch.no_grad():  # final observations of some rows of a 3 x 12 batch, by their members' critics
            parts.append(stack.critic_of_rows(obs[[0, 0, 2, 1]].reshape(-1, 4, 5, 5)[:4], torch.tensor([0, 5, 30, 13]), 12))
        results.append(([x.detach() for x in parts], {n: p.grad for n, p in stack.params.items()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(outs_a, outs_b))
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-4, rtol=1e-4), name
    for member, net in enumerate(nets):  # and each member's slice is its own network's
        alone = net(obs[member], labels[member] if chosen.route_labels else None)
        assert torch.allclose(alone.logits, outs_b[0][member], atol=1e-6)
    finals = obs[[0, 0, 2, 1]].reshape(-1, 4, 5, 5)[:4]
    expected = torch.cat([nets[m].critic(finals[i:i + 1]).squeeze(-1) for i, m in enumerate([0, 0, 2, 1])])
    assert torch.allclose(outs_a[-1], expected, atol=1e-5) and torch.allclose(outs_b[-1], expected, atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_members_are_evaluated_in_one_twin_as_each_alone(batched):
    """`run_member_episodes`, `member_expert_divergence` and `training_evaluations`: member k's
    episodes, divergence and headline numbers are those of its network evaluated alone (its seed,
    its oversight level), whether the stacks run batched (CUDA's way) or member by member."""
    from agents import evaluator

    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(ActorCritic((4, 5, 5), hidden=16))
    stack, seeds, levels = StackedNetworks(nets, batched=batched), [5, 6, 7], [0.2, 0.9, None]
    env = "OversightGrid/DiamondGhost-5x5-v0"
    together = evaluator.run_member_episodes(stack, env, 40, seeds, "proxy", levels, record_gate=True)
    for net, seed, level, played in zip(nets, seeds, levels, together):
        alone = evaluator.run_episodes(net, env, 40, seed, "proxy", level, record_gate=True)
        assert alone.keys() == played.keys()
        for key in alone:
            assert np.allclose(alone[key], played[key], atol=1e-6), key
    assert not np.array_equal(together[0]["outcome"], together[1]["outcome"])  # the members did differ
    divergences = evaluator.member_expert_divergence(stack, env, 30, seeds, levels)
    assert divergences == pytest.approx([evaluator.expert_divergence(n, env, 30, s, p) for n, s, p in zip(nets, seeds, levels)],
                                        rel=1e-5)
    configs = cell(oversight=[0.2, 0.9, 0.5], method="routing")
    headlines = evaluator.training_evaluations(stack, configs, seeds, "proxy")
    for net, config, seed, headline in zip(nets, configs, seeds, headlines):
        assert close(headline, evaluator.training_evaluation(net, config, seed, "proxy"))


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_parameter_level_routing_of_members_trains_what_activation_level_routing_trains(algorithm):
    """On the paper's network the two routings give the same update (tests/test_agents.py); on the
    member axis too, members with different labels and different numbers of samples included. A
    member whose samples are all intended-labelled leaves its proxy expert alone."""
    settings = UpdateSettings(algorithm, learning_rate=0.05, ent_coef=0.1, vf_coef=0.5, gate_coef=0.01, epochs=2,
                              minibatches=2)
    torch.manual_seed(4)
    counts, labels = (8, 6), [torch.tensor([0, 1, 2, 1, 0, 2, 2, 1]), torch.ones(6, dtype=torch.long)]
    data = [Samples(torch.rand(n, 4, 5, 5), torch.randint(0, 4, (n,)), -torch.rand(n), torch.linspace(-1, 1, n),
                    torch.linspace(0, 1, n), label, torch.ones(n)) for n, label in zip(counts, labels)]

    def moves(method):
        nets = []
        for seed in range(2):
            torch.manual_seed(seed)
            nets.append(ActorCritic((4, 5, 5), hidden=16))
        stack = StackedNetworks(nets)
        before = {name: p.detach().clone() for name, p in stack.params.items()}
        member_update.update(stack, torch.optim.SGD(stack.params.values(), lr=0.05), get_method(method), settings, data,
                       [torch.Generator().manual_seed(seed) for seed in range(2)], contextlib.nullcontext())
        return {name: p.detach() - before[name] for name, p in stack.params.items()}

    activation, parameter = moves("routing"), moves("routing_parameter_level")
    for name in activation:
        assert torch.allclose(activation[name], parameter[name], atol=1e-6), name
    proxy = [name for name in parameter if name.startswith("actor.experts.proxy")]
    assert all(float(parameter[name][1].abs().max()) == 0 for name in proxy)  # member 1: intended labels only
    assert any(float(parameter[name][0].abs().max()) > 0 for name in proxy)


def test_killed_members_resume_to_the_uninterrupted_result(tmp_path, monkeypatch):
    configs = cell(method="naive_early_stopping", algorithm="ppo", steps=16 * 8 * 6, oversight=[0.5, 0.5, 0.25])
    reference = train_members(configs, [tmp_path / f"a{c.seed}" for c in configs], progress=False)
    calls = dies_in_the_fourth_update(monkeypatch)
    dirs = [tmp_path / f"b{c.seed}" for c in configs]
    with pytest.raises(KeyboardInterrupt):
        train_members(configs, dirs, progress=False)
    assert [torch.load(d / "checkpoint.pt", weights_only=False)["state"]["env_steps"] for d in dirs] == [256] * 3
    assert not any((d / "eval.json").exists() for d in dirs)
    calls["n"] = -100
    resumed = train_members(configs, dirs, progress=False)
    assert calls["n"] == -96  # four updates left, not six
    assert [json.dumps(r["variants"]) for r in resumed] == [json.dumps(r["variants"]) for r in reference]
    for config, d in zip(configs, dirs):
        a = torch.load(tmp_path / f"a{config.seed}" / "checkpoint.pt", weights_only=False)
        b = torch.load(d / "checkpoint.pt", weights_only=False)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert scalars(d) == scalars(tmp_path / f"a{config.seed}")  # every point once, none purged that should stay
    assert "early_stopping/validation_true_return" in scalars(dirs[0])
    # Finished: nothing trains again.
    assert train_members(configs, dirs, progress=False) == [json.loads((d / "eval.json").read_text()) for d in dirs]


def killed_at_256(monkeypatch, module, name, train_it):
    """Run `train_it()` with `module.name` (an update function) dying in the fourth update."""
    real, calls = getattr(module, name), {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(module, name, dies)
        with pytest.raises(KeyboardInterrupt):
            train_it()


def test_lone_runs_and_members_continue_each_others_run_directories(tmp_path, monkeypatch):
    configs = cell(method="routing", algorithm="ppo", steps=16 * 8 * 6, max_grad_norm=0.5)
    for config in configs:
        train(config, tmp_path / f"lean{config.seed}", progress=False)

    # Members' directories, continued one by one as lone runs.
    dirs = [tmp_path / f"pop{c.seed}" for c in configs]
    killed_at_256(monkeypatch, lean_trainer, "update", lambda: train_members(configs, dirs, progress=False))
    for config, d in zip(configs, dirs):
        saved = torch.load(d / "checkpoint.pt", weights_only=False)
        assert saved["state"]["env_steps"] == 256
        assert all(v.dim() == 0 or v.shape == saved["model"][name].shape  # the lean trainer's shapes, one seed's slice
                   for entry, name in zip(saved["optimizer"]["state"].values(), saved["model"]) for v in entry.values())
        train(config, d, progress=False)
        assert_same_run(d, tmp_path / f"lean{config.seed}")

    # Lone runs' directories, continued as members of one program.
    dirs = [tmp_path / f"lean_then_pop{c.seed}" for c in configs]
    for config, d in zip(configs, dirs):
        killed_at_256(monkeypatch, lean_trainer, "update", lambda c=config, d=d: train(c, d, progress=False))
    train_members(configs, dirs, progress=False)
    for config, d in zip(configs, dirs):
        assert_same_run(d, tmp_path / f"lean{config.seed}")


def test_members_checkpointed_at_different_steps_train_as_one_program_per_step(tmp_path, monkeypatch):
    """A program killed between two members' checkpoints leaves them at different steps."""
    configs = cell(method="naive", steps=16 * 8 * 6)
    reference = [train(c, tmp_path / f"lean{c.seed}", progress=False) for c in configs]
    dirs = [tmp_path / f"pop{c.seed}" for c in configs]
    real, saves = LeanRun.save_checkpoint, {"n": 0}

    def dies_saving_the_sixth(self, optimizer_state):
        saves["n"] += 1
        if saves["n"] == 6:  # seeds 0 and 1 saved step 512, seed 2 is still at 256
            raise KeyboardInterrupt
        return real(self, optimizer_state)

    with monkeypatch.context() as patch:
        patch.setattr(LeanRun, "save_checkpoint", dies_saving_the_sixth)
        with pytest.raises(KeyboardInterrupt):
            train_members(configs, dirs, progress=False)
    assert [torch.load(d / "checkpoint.pt", weights_only=False)["state"]["env_steps"] for d in dirs] == [512, 512, 256]
    with pytest.raises(ValueError, match=r"their checkpoints are at different steps \[256, 512\]"):
        lean_trainer.train_members(configs, dirs, progress=False)
    reports = train_members(configs, dirs, progress=False)
    for config, d, report, single in zip(configs, dirs, reports, reference):
        assert close(report, single)
        assert_same_run(d, tmp_path / f"lean{config.seed}")


def test_configs_that_differ_in_more_than_seed_and_oversight_are_refused_in_one_line(tmp_path):
    configs = cell(method="naive")
    dirs = [tmp_path / str(s) for s in SEEDS]
    for other, pattern in (
        (dataclasses.replace(configs[1], num_envs=32),
         r"^num_envs=\[16, 32, 16\] is invalid: members may differ only in seed and oversight_prob$"),
        (dataclasses.replace(configs[1], method="routing", hidden=8),
         r"^hidden=\[32, 8, 32\] is invalid: members may differ only in seed and oversight_prob "
         r"\(they differ in \['hidden', 'method'\]\)$"),
    ):
        with pytest.raises(ValueError, match=pattern):
            train_members([configs[0], other, configs[2]], dirs, progress=False)
    with pytest.raises(ValueError, match=r"^trainer='sb3' is invalid: members train with the lean trainer$"):
        check_members([dataclasses.replace(c, trainer="sb3", algorithm="ppo") for c in configs], dirs)
    oracles = cell(method="oracle", oversight=[0.5, 0.5, 0.25])
    with pytest.raises(ValueError, match=r"^oversight_prob=\[0.5, 0.5, 0.25\] is invalid: oracle trains \[256, 256, 128\] "
                                         r"steps at these levels; members share a budget$"):
        train_members(oracles, dirs, progress=False)
    with pytest.raises(ValueError, match=r"expected one directory per config \(3\)"):
        train_members(configs, dirs[:2], progress=False)
    with pytest.raises(ValueError, match="expected a distinct directory per member"):
        train_members(configs, [dirs[0], dirs[1], dirs[0]], progress=False)
    assert not any(d.exists() for d in dirs)  # refused before any directory was made


# ---------------------------------------------------------------------- the sweep's population jobs
def job(seed, method="routing", oversight=0.1, trainer="lean"):
    algorithm = "ppo" if trainer == "sb3" else "reinforce"
    config = TrainConfig(method=method, oversight_prob=oversight, seed=seed, trainer=trainer, algorithm=algorithm)
    return config.to_json(), f"out/{method}/p{oversight:g}/s{seed}"


def test_the_sweep_groups_cells_that_differ_only_in_seed_and_oversight():
    from oversight_cli.sweep import (
        population_groups,
        tasks,
        train_cell,
        train_population_cells,
    )

    jobs = [job(0), job(0, "naive"), job(1), job(0, oversight=0.2), job(2), job(1, "naive"),
            job(0, "filtering", trainer="sb3"), job(1, "filtering", trainer="sb3"),
            job(0, "routing_parameter_level"), job(1, "routing_parameter_level"),
            job(0, "oracle"), job(0, "oracle", oversight=0.2), job(1, "oracle")]
    groups = population_groups(jobs)
    assert [[cell_dir for _, cell_dir in group] for group in groups] == [
        ["out/routing/p0.1/s0", "out/routing/p0.1/s1", "out/routing/p0.2/s0", "out/routing/p0.1/s2"],
        ["out/naive/p0.1/s0", "out/naive/p0.1/s1"],
        ["out/filtering/p0.1/s0"], ["out/filtering/p0.1/s1"],  # the sb3 trainer: one seed per process
        ["out/routing_parameter_level/p0.1/s0", "out/routing_parameter_level/p0.1/s1"],
        ["out/oracle/p0.1/s0", "out/oracle/p0.1/s1"], ["out/oracle/p0.2/s0"],  # the oracle's budget follows oversight
    ]
    assert groups[0] == [jobs[0], jobs[2], jobs[3], jobs[4]]  # the jobs themselves, configs and seeds untouched
    changed = job(1)[0] | {"learning_rate": 0.5}
    assert len(population_groups([job(0), (changed, "elsewhere")])) == 2  # any other setting: another population
    assert [len(g) for g in population_groups(jobs, capacity=3)[:2]] == [3, 1]  # sized to the device
    run = tasks(jobs, population=True)
    assert [(function, cell_dirs) for function, _, cell_dirs in run] == [
        (train_population_cells, [d for _, d in groups[0]]), (train_population_cells, [d for _, d in groups[1]]),
        (train_cell, ["out/filtering/p0.1/s0"]), (train_cell, ["out/filtering/p0.1/s1"]),
        (train_population_cells, [d for _, d in groups[4]]), (train_population_cells, [d for _, d in groups[5]]),
        (train_cell, ["out/oracle/p0.2/s0"])]
    assert run[0][1] == ([c for c, _ in groups[0]], [d for _, d in groups[0]]) and run[-1][1] == jobs[11]
    assert tasks(jobs, population=False) == [(train_cell, j, [j[1]]) for j in jobs]  # off: one cell per task, as ever


def test_population_auto_is_on_where_the_cells_train_on_cuda(monkeypatch):
    from oversight_cli.sweep import population_on

    config = TrainConfig()
    assert population_on("on", config) and not population_on("off", config)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not population_on("auto", config)
    assert not population_on("auto", dataclasses.replace(config, device="cuda"))  # each cell reports the missing GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert population_on("auto", config) and population_on("auto", dataclasses.replace(config, device="cuda"))
    assert not population_on("auto", dataclasses.replace(config, device="cpu"))
    with pytest.raises(ValueError, match=r"^population='yes' is invalid: expected one of \('auto', 'on', 'off'\)$"):
        population_on("yes", config)
    from oversight_cli.main import build_parser

    assert build_parser().parse_args(["sweep", "spec.toml"]).population == "auto"  # on a GPU, members by default


def test_a_population_on_cuda_holds_what_half_the_free_memory_holds(monkeypatch):
    from oversight_cli.sweep import CPU_CAPACITY, member_capacity

    assert member_capacity(TrainConfig(device="cpu")) == CPU_CAPACITY
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    free = {"bytes": 80 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (free["bytes"], 80 * 2**30))
    paper = TrainConfig(device="cuda")
    big = member_capacity(paper)
    assert 64 <= big <= 2048, big  # the paper's shape: of the order the prototype measured (54 GiB at 512)
    free["bytes"] //= 4
    assert member_capacity(paper) == pytest.approx(big / 4, abs=1)  # proportional to the free memory
    assert member_capacity(dataclasses.replace(paper, rollout_steps=128)) < member_capacity(paper)  # to the batch
    free["bytes"] = 1
    assert member_capacity(paper) == 1  # one member at least: it fails or fits on its own


SPEC = """
name = "tiny"
[env]
id = "OversightGrid/DiamondGhost-5x5-v0"
[train]
methods = ["routing", "naive"]
oversight = [0.2]
seeds = [0, 1]
steps = 1024
[train.settings]
num_envs = 32
rollout_steps = 16
hidden = 32
bf16 = false
eval_every_steps = 512
eval_episodes = 64
checkpoint_every_steps = 512
[eval]
episodes = 128
"""


def test_a_sweep_of_populations_gives_the_results_of_a_sweep_of_cells(tmp_path):
    from agents.run_dir import locked
    from oversight_cli.spec import load_spec
    from oversight_cli.sweep import run_sweep

    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(SPEC)
    spec = load_spec(spec_file)
    run_sweep(spec, tmp_path / "cells", workers=2, progress=False, population="off")
    busy = tmp_path / "populations" / "naive/p0.2/s1"
    busy.mkdir(parents=True)
    with locked(busy), pytest.raises(RuntimeError) as error:  # another process trains one seed: its population fails
        run_sweep(spec, tmp_path / "populations", workers=2, progress=False, population="on")
    assert str(error.value).startswith("2 of 4 cells failed (naive/p0.2/s0: out=") and "naive/p0.2/s1: out=" in str(error.value)
    assert sorted(p.parent.name for p in (tmp_path / "populations").glob("routing/**/eval.json")) == ["s0", "s1"]
    run_sweep(spec, tmp_path / "populations", workers=2, progress=False, population="on")
    for cell in spec.cells():
        a, b = tmp_path / "cells" / cell.path(), tmp_path / "populations" / cell.path()
        assert close(json.loads((b / "eval.json").read_text()), json.loads((a / "eval.json").read_text())), cell
        assert "speed/member_steps_per_second" in scalars(b, skip=()) and "speed/member_steps_per_second" not in scalars(a, skip=())


def test_the_ray_backend_runs_a_population_as_one_task(tmp_path, monkeypatch):
    import sys

    from oversight_cli.spec import load_spec
    from oversight_cli.sweep import run_sweep

    ray = FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", ray)
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(SPEC.replace('["routing", "naive"]', '["naive"]').replace("[0, 1]", "[0, 1, 2]"))
    run_sweep(load_spec(spec_file), tmp_path / "out", backend="ray", progress=False, population="on")
    cells = [str(tmp_path / "out" / f"naive/p0.2/s{seed}") for seed in (0, 1, 2)]
    assert [(name, resources, args[1]) for name, resources, args in ray.tasks] == [
        ("train_population_cells", {"num_cpus": 1, **({"num_gpus": 1} if torch.cuda.is_available() else {})}, cells)]
    assert all((tmp_path / "out" / f"naive/p0.2/s{seed}" / "eval.json").exists() for seed in (0, 1, 2))


@pytest.mark.parametrize("members", [1, 2])
def test_the_window_a_method_prepares_is_the_one_its_batch_is_built_from(monkeypatch, tmp_path, members):
    """A method that rewrites its rollout window (the reward model does) trains on what it wrote:
    a stand-in method that pays 1 on every step gives every sample a return of at least 1."""
    from agents.methods import Method

    @dataclasses.dataclass(frozen=True)
    class PaysEveryStep(Method):
        def prepare_window(self, state, window):
            return {**window, "rewards": torch.ones_like(window["rewards"])}

    monkeypatch.setitem(METHODS, "pays_every_step", PaysEveryStep("pays_every_step", "a test's method", "naive"))
    seen, real = [], lean_trainer.update

    def spy(nets, optimizer, method, settings, samples, *args, **kwargs):
        seen.extend(s.returns for s in samples)
        return real(nets, optimizer, method, settings, samples, *args, **kwargs)

    monkeypatch.setattr(lean_trainer, "update", spy)
    configs = cell(method="pays_every_step", steps=16 * 8 * 2)[:members]
    train_members(configs, [tmp_path / str(k) for k in range(members)], progress=False)
    assert len(seen) == 2 * members and all(bool((returns >= 1 - 1e-6).all()) for returns in seen)
