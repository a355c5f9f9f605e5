"""Which episodes a policy is scored on, and that each is scored once and correctly.

Properties pinned:
- the final evaluation of two seeds of one cell runs on different episodes (its seed derives
  from the config's), and one seed's evaluation is the same episodes and numbers every time;
- the evaluator's environment stream and action stream are independent: the episodes drawn do
  not depend on the policy (sampling, greedy, other weights), the actions drawn do not depend
  on the environments, and the two generators are not seeded alike;
- each requested episode is counted exactly once, from its first step to its first end: its
  record (outcome, oversight, length, true reward, discounted returns-to-go, facts at reset,
  mean gate) is what a replay of that episode alone, from its start state with the actions it
  was dealt, gives; environments that finished early add nothing more.
"""

import json

import numpy as np
import pytest
import torch

import agents.evaluator as evaluator
from agents.config import TrainConfig
from agents.evaluator import evaluate, run_episodes
from agents.networks import ActorCritic
from agents.train import write_evaluation
from oversight_env import make_batched

ENV = "OversightGrid/DiamondGhost-5x5-v0"


class Recorder:
    """`agents.evaluator.make_batched` that records, for every twin the evaluator makes, the
    observation of each reset it asks for, the start state of each environment (with `starts`)
    and the actions of each step."""

    def __init__(self, monkeypatch, starts=False):
        self.twins, real = [], make_batched

        def make(*args, **kwargs):
            twin = real(*args, **kwargs)
            record = {"env_id": args[0], "kwargs": kwargs, "resets": [], "starts": None, "actions": []}
            real_reset, real_step = twin.reset, twin.step

            def reset(*a, **k):
                obs, facts = real_reset(*a, **k)
                record["resets"].append(obs.clone())
                if starts:
                    record["starts"] = [twin.get_state(i) for i in range(twin.num_envs)]
                return obs, facts

            def step(actions):
                record["actions"].append(torch.as_tensor(actions).clone())
                return real_step(actions)

            twin.reset, twin.step = reset, step
            self.twins.append(record)
            return twin

        monkeypatch.setattr(evaluator, "make_batched", make)


def routed_net(seed=0, obs_shape=(4, 5, 5)):
    torch.manual_seed(seed)
    return ActorCritic(obs_shape)


def single_net(seed=0):
    """One expert: one policy variant to evaluate (a routed network has three)."""
    torch.manual_seed(seed)
    return ActorCritic((4, 5, 5), experts=("intended",))


def constant_policy(obs_shape):
    """A single network whose action probabilities are the same fixed, non-uniform ones everywhere."""
    net = ActorCritic(obs_shape, experts=("intended",))
    with torch.no_grad():
        for p in net.actor.parameters():
            p.zero_()
        net.actor.head.bias.copy_(torch.tensor([0.6, -0.2, 0.1, -0.5]))
    return net


def test_two_seeds_final_evaluations_run_on_different_episodes_and_one_seed_always_on_the_same(tmp_path, monkeypatch):
    net = single_net()
    resets, reports = [], []
    for seed in (0, 1, 0):
        recorder = Recorder(monkeypatch)
        config = TrainConfig(method="naive", seed=seed, final_eval_episodes=64)
        out = tmp_path / f"{len(resets)}"
        out.mkdir()
        write_evaluation(net, config, out, 0)
        resets.append([obs for twin in recorder.twins for obs in twin["resets"]])
        reports.append((out / "eval.json").read_text())
    assert len(resets[0]) == len(resets[1]) >= 2  # the policy's episodes, and the window metric's
    for a, b in zip(resets[0], resets[1]):
        assert not torch.equal(a, b)  # seed 1 plays other episodes than seed 0, in every part of its evaluation
        # ... and not merely the same episodes in another order.
        assert {tuple(x.flatten().tolist()) for x in a} != {tuple(x.flatten().tolist()) for x in b}
    assert all(torch.equal(a, b) for a, b in zip(resets[0], resets[2]))  # seed 0 again: the same episodes
    assert reports[0] == reports[2] != reports[1]  # and the same numbers


def test_an_evaluation_gives_the_same_numbers_twice():
    net = single_net()
    first = evaluate(net, ENV, episodes=64, seed=5)
    assert json.dumps(first) == json.dumps(evaluate(net, ENV, episodes=64, seed=5))
    assert json.dumps(first) != json.dumps(evaluate(net, ENV, episodes=64, seed=6))


def test_the_episodes_drawn_do_not_depend_on_the_policy(monkeypatch):
    """Sampling, greedy, or another network: the same environments at reset, the same facts."""
    recorder = Recorder(monkeypatch)
    runs = [run_episodes(routed_net(0), ENV, 128, seed=3), run_episodes(routed_net(0), ENV, 128, seed=3, greedy=True),
            run_episodes(routed_net(1), ENV, 128, seed=3), run_episodes(constant_policy((4, 5, 5)), ENV, 128, seed=3)]
    first = recorder.twins[0]["resets"][0]
    assert all(torch.equal(twin["resets"][0], first) for twin in recorder.twins)
    for data in runs[1:]:
        assert np.array_equal(data["proxy_overseen"], runs[0]["proxy_overseen"])
        assert np.array_equal(data["nearer"], runs[0]["nearer"])
    assert not np.array_equal(runs[0]["length"], runs[1]["length"])  # the policies did act differently


def test_the_actions_drawn_do_not_depend_on_the_environments(monkeypatch):
    """A policy whose probabilities are the same everywhere draws the same first actions in any
    environment (other layouts, other oversight): the action stream is the evaluator's own."""
    recorder = Recorder(monkeypatch)
    for env_id, shape, oversight in ((ENV, (4, 5, 5), 0.1), (ENV, (4, 5, 5), 0.9),
                                     ("OversightGrid/DiamondGhost-7x7-v0", (4, 7, 7), 0.5)):
        run_episodes(constant_policy(shape), env_id, 256, seed=11, oversight_prob=oversight)
    first = [twin["actions"][0] for twin in recorder.twins]
    assert all(torch.equal(a, first[0]) for a in first)
    assert len(set(first[0].tolist())) == 4  # four actions drawn: a real stream, not a constant


@pytest.mark.parametrize("seed", [0, 7, 1_000_000])
def test_the_environment_and_action_generators_are_seeded_apart(seed):
    twin, actions = evaluator._fresh_environments(ENV, 4, seed, None, None)
    assert twin.generator.initial_seed() != actions.initial_seed()
    other, _ = evaluator._fresh_environments(ENV, 4, seed + 1, None, None)
    assert other.generator.initial_seed() != twin.generator.initial_seed()


def replay(env_id, start, actions, gamma, net=None):
    """Environment `start` alone with `actions`, to its first end: what the evaluator should record."""
    twin = make_batched(env_id, 1, seed=0, reward="true")
    obs = twin.set_state(0, start)[None]
    facts = {key: value[0].item() for key, value in twin.facts().items()}
    true_reward = return_to_go = 0.0
    gates = []
    for length, action in enumerate(actions, start=1):
        if net is not None:
            with torch.no_grad():
                gates.append(float(net(obs).gate[0]))
        step = twin.step(torch.tensor([action]))
        r = float(step.true_reward[0])
        true_reward += r
        return_to_go += r * (1 - gamma**length) / (1 - gamma)
        if bool(step.done[0]):
            return {"outcome": int(step.outcome[0]), "overseen": bool(step.overseen[0]), "length": length,
                    "true_reward": true_reward, "return_to_go": return_to_go, "facts": facts,
                    "mean_gate": sum(gates) / length if gates else None}
        obs = step.obs
    raise AssertionError("the episode did not end within the actions it was dealt")


@pytest.mark.parametrize("env_id", [ENV, "OversightGrid/AbsentSupervisor-v0"])  # AbsentSupervisor pays on the way too
def test_each_requested_episode_is_counted_once_as_a_replay_of_it_alone_gives(monkeypatch, env_id):
    episodes, gamma = 48, 0.9
    shape = make_batched(env_id, 1).obs_shape
    net = routed_net(2, shape)
    recorder = Recorder(monkeypatch, starts=True)
    data = run_episodes(net, env_id, episodes, seed=4, oversight_prob=0.5, record_gate=True, gamma=gamma)
    (twin,) = recorder.twins
    max_steps = len(twin["actions"])
    assert all(len(v) == episodes for v in data.values())
    assert data["length"].min() >= 1 and data["length"].max() == max_steps <= 32  # the loop stops at the last end
    actions = torch.stack(twin["actions"])  # (steps, episodes): what each environment was dealt
    paid = overseen = 0
    for i in range(episodes):
        expected = replay(env_id, twin["starts"][i], actions[:, i].tolist(), gamma, net)
        for key in ("outcome", "overseen", "length"):
            assert data[key][i] == expected[key], (i, key)
        assert data["true_reward"][i] == pytest.approx(expected["true_reward"], abs=1e-9), i
        assert data["return_to_go"][i] == pytest.approx(expected["return_to_go"], abs=1e-9), i
        assert data["mean_gate"][i] == pytest.approx(expected["mean_gate"], abs=1e-5), i
        assert data["proxy_overseen"][i] == expected["facts"]["proxy_overseen"], i
        assert data["nearer"][i] == expected["facts"]["nearer"], i
        paid += expected["true_reward"] != 0
        overseen += expected["overseen"]
    assert paid >= 5 and overseen >= 2  # the comparison covers rewards and oversight
    assert (data["length"] < max_steps).sum() >= episodes // 4  # many finished early and kept being stepped


def test_two_seeds_are_scored_during_training_on_episodes_of_their_own(tmp_path, monkeypatch):
    """The periodic evaluations and early stopping's validation (which picks the run's result)
    play episodes that differ between seeds and repeat for one seed: shared episodes would make
    the seeds' scores agree more than independent runs do, and intervals over seeds too narrow."""
    from agents.train import train

    tiny = dict(num_envs=16, rollout_steps=8, hidden=32, bf16=False, device="cpu", oversight_prob=1.0, steps=512,
                eval_every_steps=128, checkpoint_every_steps=512, eval_episodes=32, final_eval_episodes=32)
    scored = []
    for k, seed in enumerate((0, 1, 0)):
        recorder = Recorder(monkeypatch)
        train(TrainConfig(method="naive_early_stopping", seed=seed, **tiny), tmp_path / str(k), progress=False)
        scored.append([obs for twin in recorder.twins for obs in twin["resets"]])
    assert len(scored[0]) == len(scored[1]) >= 8  # evaluations and validations at 4 points, and the final evaluation
    for a, b in zip(scored[0], scored[1]):  # each evaluation or validation, seed 0's against seed 1's
        assert {tuple(x.flatten().tolist()) for x in a} != {tuple(x.flatten().tolist()) for x in b}
    # Within a run, each evaluation and each validation starts from episodes of its own.
    firsts = [tuple(obs[0].flatten().tolist()) for obs in scored[0]]
    assert len(set(firsts)) == len(firsts)
    assert all(torch.equal(a, b) for a, b in zip(scored[0], scored[2]))
