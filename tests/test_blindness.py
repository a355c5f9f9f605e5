"""Blindness to the hidden truth: a method that is not an oracle never learns how an unobserved
episode really ended.

Property: for every method of `agents.methods.METHODS` but the oracles (`oracle`,
`oracle_all_labels`, which read true rewards by design), a tiny training run is bitwise the same
(final weights, optimizer, the method's state where comparable) when, at the seam where the
environment's step enters the trainer (`record_step`), every episode that reached a terminal
without being overseen has its outcome swapped (intended <-> proxy) together with the training
reward and the true reward it would then have paid (`oversight_env.spec.REWARDS`). Observations
are left alone: they are what the agent sees. A method that reads the truth anywhere (labels from
outcomes without the overseen mask, a reward model fitted on or labelling with unobserved
outcomes, filtering keeping unobserved steps, PPO statistics over dropped samples) trains
differently. The oracles must NOT be blind: that is the test's power. Members of one program too,
at mixed oversight levels.
"""

import dataclasses

import pytest
import torch

import agents.lean_trainer as lean_trainer
from agents.config import TrainConfig
from agents.files import load_checkpoint
from agents.methods import METHODS, get_method
from agents.reward_model import RewardModel
from agents.trajectories import RunningEpisodes
from oversight_env.spec import REWARDS, Outcome

ORACLES = ("oracle", "oracle_all_labels")
BLIND = sorted(m for m in METHODS if m not in ORACLES)
D, G = int(Outcome.INTENDED), int(Outcome.PROXY)
TINY = dict(env_id="OversightGrid/DiamondGhost-5x5-v0", num_envs=32, rollout_steps=8, hidden=32, bf16=False,
            device="cpu", oversight_prob=0.3, steps=32 * 8 * 3 + 40, eval_every_steps=512, eval_episodes=32,
            final_eval_episodes=32, checkpoint_every_steps=10**6)
ORACLE_STEPS = 2700  # `oracle` trains oversight_prob (0.3) of these: as many steps as TINY's
# Diagnostics that read the truth by design (the testbed's accuracy of the model on unobserved endings).
DIAGNOSTICS = {"unobserved_correct", "unobserved_total"}


def scrambled(step, reward_name, counts):
    """`step` with the outcome and rewards of its unobserved terminal endings swapped."""
    unobserved_pay = torch.tensor([row[0] for row in REWARDS[reward_name]])  # by outcome, on an unobserved cell
    true_pay = torch.tensor([row[0] for row in REWARDS["true"]])
    hidden = step.terminated & ~step.overseen & (step.outcome != 0)
    if not bool(hidden.any()):
        return step
    # The simple layout pays exactly the table at a terminal and nothing before: the swap is honest.
    assert torch.equal(step.reward[hidden], unobserved_pay[step.outcome[hidden]])
    assert torch.equal(step.true_reward[hidden], true_pay[step.outcome[hidden]])
    outcome = torch.where(hidden, D + G - step.outcome, step.outcome)
    reward = torch.where(hidden, unobserved_pay[outcome], step.reward)
    true_reward = torch.where(hidden, true_pay[outcome], step.true_reward)
    counts["endings"] += int(hidden.sum())
    counts["rewards"] += int((reward != step.reward).sum())
    return dataclasses.replace(step, outcome=outcome, reward=reward, true_reward=true_reward,
                               true_return=step.true_return - step.true_reward + true_reward)


def scrambler(module, reward_name, counts):
    """`module.record_step` with the outcome and rewards of unobserved terminal endings swapped."""
    real = module.record_step

    def record_step(buf, t, obs, actions, log_prob, value, step, critic):
        return real(buf, t, obs, actions, log_prob, value, scrambled(step, reward_name, counts), critic)

    return record_step


def comparable(value):
    """A method state (or anything in a checkpoint) with its diagnostics of the truth left out."""
    if isinstance(value, RewardModel):
        fields = {k: v for k, v in vars(value).items() if k not in DIAGNOSTICS | {"net", "optimizer"}}
        return comparable({**fields, "net": value.net.state_dict(), "optimizer": value.optimizer.state_dict()})
    if isinstance(value, RunningEpisodes):  # what a reward model keeps of running episodes
        return comparable(vars(value))
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    return value


def same(a, b, path="") -> bool:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        return all(same(a[k], b[k], f"{path}/{k}") for k in a)
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        return all(same(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def trained(config, out_dir, monkeypatch, scramble, counts):
    """Train `config` with the lean trainer, the truth of unobserved endings swapped or not; what it ends with."""
    with monkeypatch.context() as patch:
        if scramble:
            reward = get_method(config.method).reward
            patch.setattr(lean_trainer, "record_step", scrambler(lean_trainer, reward, counts))
        net, _ = lean_trainer.train_lean(config, out_dir, progress=False)
    saved = load_checkpoint(out_dir / "checkpoint.pt")
    return {"final": net.state_dict(), "last": saved["model"], "optimizer": saved["optimizer"],
            "state": comparable(saved["state"])}


def run_twice(tmp_path, monkeypatch, **settings):
    config = TrainConfig(**{**TINY, **settings})
    counts = {"endings": 0, "rewards": 0}
    honest = trained(config, tmp_path / "honest", monkeypatch, False, counts)
    scrambled = trained(config, tmp_path / "scrambled", monkeypatch, True, counts)
    assert counts["endings"] >= 20, counts  # the scramble did change what happened
    if get_method(config.method).reward == "true":
        assert counts["rewards"] >= 20, counts  # and the rewards a method trained on the truth receives
    return honest, scrambled


def assert_blind(honest, scrambled):
    for part in ("final", "last", "optimizer"):
        assert same(honest[part], scrambled[part]), f"the {part} weights read the unobserved endings' truth"
    assert same(honest["state"], scrambled["state"]), "the method's state read the unobserved endings' truth"


@pytest.mark.parametrize("method", BLIND)
def test_every_method_but_the_oracles_trains_the_same_whatever_unobserved_episodes_really_did(
        tmp_path, monkeypatch, method):
    assert_blind(*run_twice(tmp_path, monkeypatch, method=method))


@pytest.mark.parametrize("method", ["filtering", "reward_model", "routing_reward_model"])
def test_ppo_updates_are_blind_too(tmp_path, monkeypatch, method):
    """PPO's minibatches and advantage normalisation: statistics over every sample must not carry
    the dropped samples' true returns (filtering)."""
    assert_blind(*run_twice(tmp_path, monkeypatch, method=method, algorithm="ppo", ppo_epochs=2, ppo_minibatches=2))


def test_a_reward_model_that_labels_every_unobserved_episode_labels_it_with_its_prediction(tmp_path, monkeypatch):
    """`routing_reward_model` sure of every ending (confidence 0): the labels of unobserved episodes
    are all the model's, and none may be the true outcome."""
    method = dataclasses.replace(METHODS["routing_reward_model"], confidence=0.0)
    monkeypatch.setitem(METHODS, "routing_reward_model", method)
    honest, scrambled = run_twice(tmp_path, monkeypatch, method="routing_reward_model")
    assert honest["state"]["method"]["model_labelled"] >= 20  # the model did label unobserved episodes
    assert_blind(honest, scrambled)


@pytest.mark.parametrize("method", ORACLES)
def test_the_oracles_do_read_the_truth(tmp_path, monkeypatch, method):
    honest, scrambled = run_twice(tmp_path, monkeypatch, method=method, steps=ORACLE_STEPS)
    assert not same(honest["final"], scrambled["final"])


@pytest.mark.parametrize("method", ["filtering", "routing", "reward_model", "oracle"])
def test_members_are_blind_as_lone_runs_are(tmp_path, monkeypatch, method):
    steps = ORACLE_STEPS if method == "oracle" else TINY["steps"]
    levels = (TINY["oversight_prob"],) * 2 if method == "oracle" else (TINY["oversight_prob"], 2 * TINY["oversight_prob"])
    configs = [TrainConfig(**{**TINY, "method": method, "algorithm": "ppo", "seed": seed, "steps": steps,
                              "oversight_prob": level}) for seed, level in zip((0, 1), levels)]
    counts, results = {"endings": 0, "rewards": 0}, []
    for scramble in (False, True):
        dirs = [tmp_path / f"{scramble}{c.seed}" for c in configs]
        with monkeypatch.context() as patch:
            if scramble:
                patch.setattr(lean_trainer, "record_step", scrambler(lean_trainer, get_method(method).reward, counts))
            nets = lean_trainer.train_members(configs, dirs, progress=False)
        results.append([{"final": net.state_dict(), "state": comparable(load_checkpoint(d / "checkpoint.pt")["state"])}
                        for (net, _), d in zip(nets, dirs)])
    assert counts["endings"] >= 20, counts
    for honest, scrambled in zip(*results):
        blind = same(honest["final"], scrambled["final"]) and same(honest["state"], scrambled["state"])
        assert blind == (method != "oracle"), method


def sb3_twice(tmp_path, monkeypatch, config, change):
    """`RoutedPPO`'s final weights trained on `config` as it is, then with every step of the twin it
    steps passed through `change` (at the seam where SB3 reads episodes: `agents.sb3_env`)."""
    from agents import sb3_env
    from agents.sb3 import train_sb3

    results, real = [], sb3_env.make_batched
    for changed in (False, True):
        with monkeypatch.context() as patch:
            if changed:
                def make(*args, **kwargs):
                    twin = real(*args, **kwargs)
                    step = twin.step
                    twin.step = lambda actions: change(step(actions))
                    return twin

                patch.setattr(sb3_env, "make_batched", make)
            out = tmp_path / str(changed)
            out.mkdir()
            net, _ = train_sb3(config, out, progress=False)
        results.append(net.state_dict())
    return results


@pytest.mark.parametrize("method", ["filtering", "routing", "naive_early_stopping", "oracle_all_labels"])
def test_the_stable_baselines3_adapter_is_blind_as_the_lean_trainer_is(tmp_path, monkeypatch, method):
    """`RoutedPPO` reads episodes through SB3's info dicts (`agents.sb3_env`): scrambled at the
    twin it steps, its training is the same for every method but the oracle."""
    config = TrainConfig(**{**TINY, "method": method, "trainer": "sb3", "algorithm": "ppo", "ppo_minibatches": 2})
    counts = {"endings": 0, "rewards": 0}
    results = sb3_twice(tmp_path, monkeypatch, config, lambda step: scrambled(step, get_method(method).reward, counts))
    assert counts["endings"] >= 20, counts
    assert same(*results) == (method != "oracle_all_labels"), method


def verdict_truth_swapped(step, counts):
    """`step` with the truth behind each wrong verdict made to agree with the verdict: the outcome
    and the true reward of every overseen ending whose verdict is wrong (label noise, a spoof that
    fooled the overseer)."""
    wrong = step.overseen & (step.reported != step.outcome)
    if not bool(wrong.any()):
        return step
    true_pay = torch.tensor([row[1] for row in REWARDS["true"]])
    true_reward = torch.where(wrong, true_pay[step.reported], step.true_reward)
    counts["endings"] += int(wrong.sum())
    return dataclasses.replace(step, outcome=torch.where(wrong, step.reported, step.outcome), true_reward=true_reward,
                               true_return=step.true_return - step.true_reward + true_reward)


WRONG_VERDICTS = {"noisy": ("OversightGrid/DiamondGhost-Noisy-5x5-v0", {}),
                  "fooled": ("OversightGrid/Tampering-Fooled-7x7-v0", {"size": 4, "spoof_prob": 1.0})}  # many endings


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("overseer", sorted(WRONG_VERDICTS))
def test_no_method_reads_the_truth_behind_a_wrong_verdict(tmp_path, monkeypatch, overseer, method):
    """Under label noise, or a spoof that fools the overseer, a method learns what the overseer
    reported where it watched, never what really happened there: every method, the oracles too
    (their reward follows the verdict where the overseer watched, spec rule 5), trains the same when
    the truth behind each wrong verdict is swapped to agree with it."""
    env_id, env_kwargs = WRONG_VERDICTS[overseer]
    config = TrainConfig(**{**TINY, "method": method, "env_id": env_id, "env_kwargs": env_kwargs, "oversight_prob": 1.0,
                            "steps": ORACLE_STEPS if method == "oracle" else TINY["steps"]})
    counts, results = {"endings": 0}, []
    for swap in (False, True):
        with monkeypatch.context() as patch:
            if swap:
                real = lean_trainer.record_step
                patch.setattr(lean_trainer, "record_step", lambda buf, t, obs, actions, log_prob, value, step, critic:
                              real(buf, t, obs, actions, log_prob, value, verdict_truth_swapped(step, counts), critic))
            net, _ = lean_trainer.train_lean(config, tmp_path / str(swap), progress=False)
        saved = load_checkpoint(tmp_path / str(swap) / "checkpoint.pt")
        results.append({"final": net.state_dict(), "state": comparable(saved["state"])})
    assert counts["endings"] >= 10, counts  # wrong verdicts happened, and were swapped
    assert same(results[0]["final"], results[1]["final"]) and same(results[0]["state"], results[1]["state"])


@pytest.mark.parametrize("method", ["routing", "filtering"])
def test_the_stable_baselines3_adapter_reads_verdicts_too(tmp_path, monkeypatch, method):
    config = TrainConfig(**{**TINY, "method": method, "trainer": "sb3", "algorithm": "ppo", "ppo_minibatches": 2,
                            "env_id": "OversightGrid/DiamondGhost-Noisy-5x5-v0", "oversight_prob": 1.0})
    counts = {"endings": 0}
    results = sb3_twice(tmp_path, monkeypatch, config, lambda step: verdict_truth_swapped(step, counts))
    assert counts["endings"] >= 10, counts
    assert same(*results)
