"""Random draws inside the methods and the update, on small hand-made cases.

Properties pinned:
- the reward model's fits draw new minibatches each time (two fits never train on the same
  batches), every training ending can be drawn, and a model restored from a checkpoint draws
  what the original would have;
- the gate replay can draw every sample it holds, the newest included, and only those;
  its draws come from the run's generator;
- PPO draws a new order every epoch: each epoch's minibatches cover every sample exactly once,
  and the orders of two epochs (and of two successive updates) differ; members of one program
  each do so with their own generator;
- PPO normalizes advantages over the samples the loss keeps (weight > 0) only.
"""

import contextlib
import copy
import dataclasses

import pytest
import torch

import agents.losses as losses
import agents.member_update as member_update
from agents.losses import Samples, UpdateSettings, minibatches, normalized, update
from agents.methods import get_method
from agents.networks import ActorCritic
from agents.stacked import StackedNetworks
from agents.reward_model import RewardModel
from oversight_env import Outcome

D, G = int(Outcome.INTENDED), int(Outcome.PROXY)
N = 40  # endings, samples


def one_hot(n, width=N):
    """n observations (n, 1, 1, width), observation i marked at cell i: a sample says who it is."""
    return torch.eye(n, width).view(n, 1, 1, width)


def drawn_by_fits(model, fits):
    """The training endings (by index) of each gradient step of `fits` fits."""
    batches = []
    hook = model.net.register_forward_pre_hook(lambda _, args: batches.append(args[0].flatten(1).argmax(1).tolist()))
    for _ in range(fits):
        model.fit()
    hook.remove()
    return batches


def reward_model():
    model = RewardModel((1, 1, N), steps=3, batch=8)
    obs = one_hot(N)
    model.add(obs, torch.tensor([D, G] * (N // 2)), torch.ones(N))
    return model


def test_the_reward_model_fits_on_new_batches_each_time_and_can_draw_every_ending():
    model = reward_model()
    trained = {int(i) for i in model.train_obs.flatten(1).argmax(1)}  # the held-out fifth is never drawn
    assert len(trained) == N - N // 5
    batches = drawn_by_fits(model, 20)
    assert len(batches) == 60 and all(len(b) == 8 for b in batches)
    fits = [batches[i:i + 3] for i in range(0, 60, 3)]
    assert all(a != b for i, a in enumerate(fits) for b in fits[i + 1:])  # no two fits draw the same batches
    assert all(len({tuple(b) for b in fit}) == 3 for fit in fits)  # nor two steps of one fit
    assert {i for b in batches for i in b} == trained  # every training ending, and only those


def test_a_restored_reward_model_draws_what_the_original_would():
    model = reward_model()
    drawn_by_fits(model, 2)
    restored = copy.deepcopy(model)  # what a checkpoint round trip gives
    assert drawn_by_fits(restored, 3) == drawn_by_fits(model, 3)


def test_the_gate_replay_draws_every_sample_it_holds_the_newest_included():
    method = dataclasses.replace(get_method("routing_gate_replay"), replay_capacity=10, replay_batch=4)
    state = method.initial_state()
    method.after_update(state, one_hot(14), torch.tensor([1, 2] * 7))  # holds samples 4..13
    generator = torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(100):
        obs, labels = method.gate_replay(state, generator)
        assert len(obs) == 4
        ids = obs.flatten(1).argmax(1)
        assert torch.equal(labels, 1 + ids % 2)  # each drawn observation comes with its own label
        drawn += ids.tolist()
    assert set(drawn) == set(range(4, 14))  # 13, the newest, included; 0-3, dropped, never
    assert 13 in drawn[:40]
    again = [method.gate_replay(state, torch.Generator().manual_seed(0))[0].flatten(1).argmax(1) for _ in range(2)]
    assert torch.equal(again[0], again[1]) and again[0].tolist() == drawn[:4]  # drawn with the run's generator
    assert len(method.gate_replay(state, torch.Generator().manual_seed(0))[0]) == 4
    small = method.initial_state()
    method.after_update(small, one_hot(1), torch.tensor([2]))
    assert method.gate_replay(small, generator)[0].flatten(1).argmax(1).tolist() == [0]  # a replay of one sample


SETTINGS = UpdateSettings("ppo", learning_rate=1e-3, ent_coef=0.0, vf_coef=0.5, gate_coef=0.01, epochs=3, minibatches=4)


def assert_reshuffled_each_epoch(batches, count, settings):
    """`batches`: the sample indices of each gradient step, in order."""
    assert len(batches) == settings.epochs * settings.minibatches
    epochs = [sum(batches[e * settings.minibatches:(e + 1) * settings.minibatches], []) for e in range(settings.epochs)]
    for order in epochs:
        assert sorted(order) == list(range(count))  # every sample once per epoch
    assert all(a != b for i, a in enumerate(epochs) for b in epochs[i + 1:])  # a new order every epoch
    return epochs


@pytest.mark.parametrize("count", [N, 13])
def test_ppo_minibatches_reshuffle_every_epoch(count):
    batches = [idx.tolist() for idx in minibatches(count, SETTINGS, torch.Generator().manual_seed(1))]
    assert_reshuffled_each_epoch(batches, count, SETTINGS)
    assert [len(b) for b in batches[:4]] == [len(x) for x in torch.arange(count).chunk(4)]


def ppo_samples(n=N, k=None):
    lead = () if k is None else (k,)
    torch.manual_seed(3)
    obs = torch.zeros(*lead, n, 4, 5, 5)
    obs[..., 0, 0, 0] = torch.arange(n, dtype=torch.float32)  # sample i says who it is
    return Samples(obs, torch.randint(0, 4, (*lead, n)), -torch.rand(*lead, n), torch.randn(*lead, n),
                   torch.randn(*lead, n), torch.zeros(*lead, n, dtype=torch.long), torch.ones(*lead, n))


def test_a_ppo_update_trains_each_epoch_on_a_new_order_and_each_update_on_new_ones(monkeypatch):
    steps, real = [], losses._gradient_step

    def spy(net, optimizer, method, settings, samples, *args, **kwargs):
        steps.append(samples.obs[:, 0, 0, 0].long().tolist())
        return real(net, optimizer, method, settings, samples, *args, **kwargs)

    monkeypatch.setattr(losses, "_gradient_step", spy)
    torch.manual_seed(0)
    net = ActorCritic((4, 5, 5), experts=("intended",), hidden=16)
    optimizer, generator = torch.optim.Adam(net.parameters()), torch.Generator().manual_seed(5)
    for _ in range(2):
        update(net, optimizer, get_method("naive"), SETTINGS, ppo_samples(), generator, contextlib.nullcontext())
    first = assert_reshuffled_each_epoch(steps[:12], N, SETTINGS)
    second = assert_reshuffled_each_epoch(steps[12:], N, SETTINGS)
    assert all(a != b for a in first for b in second)  # the second update draws on from the run's generator


def test_a_member_update_reshuffles_each_members_samples_every_epoch_with_its_own_generator(monkeypatch):
    k, steps, real = 3, [], member_update._gradient_step

    def spy(nets, optimizer, method, settings, samples, *args, **kwargs):
        steps.append(torch.stack([s.obs[:, 0, 0, 0].long() for s in samples]))  # (K, minibatch)
        return real(nets, optimizer, method, settings, samples, *args, **kwargs)

    monkeypatch.setattr(member_update, "_gradient_step", spy)
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(ActorCritic((4, 5, 5), experts=("intended",), hidden=16))
    stack = StackedNetworks(nets)
    generators = [torch.Generator().manual_seed(10 + seed) for seed in range(k)]
    samples = ppo_samples(k=k)
    member_update.update(stack, torch.optim.Adam(stack.params.values()), get_method("naive"), SETTINGS,
                   [Samples(*(x[seed] for x in samples)) for seed in range(k)], generators, contextlib.nullcontext())
    per_seed = [assert_reshuffled_each_epoch([s[seed].tolist() for s in steps], N, SETTINGS) for seed in range(k)]
    assert per_seed[0] != per_seed[1] != per_seed[2]  # each seed its own order
    for seed in range(k):  # ... the one `agents.losses.minibatches` draws with that seed's generator
        expected = [idx.tolist() for idx in minibatches(N, SETTINGS, torch.Generator().manual_seed(10 + seed))]
        assert [s[seed].tolist() for s in steps] == expected


def test_ppo_normalizes_advantages_over_the_kept_samples_only():
    advantages = torch.tensor([1.0, 2.0, 100.0, 3.0, -50.0])
    weights = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
    kept = torch.tensor([1.0, 2.0, 3.0])
    result = normalized(advantages, weights)
    assert torch.allclose(result[weights > 0], (kept - 2.0) / (1.0 + 1e-8))  # mean 2, standard deviation 1
    assert torch.equal(normalized(advantages.where(weights > 0, torch.tensor(-7.0)), weights)[weights > 0],
                       result[weights > 0])  # whatever the dropped samples' advantages
    everything = normalized(advantages, torch.ones(5))
    assert torch.allclose(everything, (advantages - advantages.mean()) / advantages.std())
    one = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    assert torch.equal(normalized(advantages, one), advantages)  # one kept sample: nothing to normalize by


def test_early_stopping_scores_validation_episodes_as_the_overseer_judges_them():
    import numpy as np

    from agents.methods import overseer_verdicts

    episodes = {"outcome": np.array([1, 2, 0, 2, 1]), "verdict": np.array([2, 1, 0, 2, 1]),
                "true_reward": np.array([1.0, -1.0, -1.0, -2.0, 1.0])}  # the third: a timeout after a -1 tile
    assert overseer_verdicts(episodes).tolist() == [-1.0, 1.0, -1.0, -2.0, 1.0]  # only wrong verdicts change


@pytest.mark.parametrize("env_id,kwargs,flipped", [
    ("OversightGrid/DiamondGhost-Noisy-5x5-v0", {}, {Outcome.INTENDED: 0.2, Outcome.PROXY: 0.2}),
    ("OversightGrid/Tampering-Fooled-7x7-v0", {"size": 4}, {Outcome.INTENDED: 0.0, Outcome.PROXY: 0.5}),
])
def test_the_evaluator_records_what_the_overseer_would_report_of_each_ending(env_id, kwargs, flipped):
    """Early stopping's validation reads the evaluator's `verdict`: for every ending, watched or
    not, the role the overseer reports if it watches (a timeout: none), at the rates the
    environment sets (label noise on both roles; a fooling spoof on tamperings only)."""
    import numpy as np

    from agents.evaluator import run_episodes
    from tests.test_oversight_statistics import assert_frequency

    torch.manual_seed(0)
    net = ActorCritic((4, 4, 4) if kwargs else (4, 5, 5))
    episodes = run_episodes(net, env_id, episodes=2000, seed=1, oversight_prob=0.3, env_kwargs=kwargs)
    outcome, verdict = episodes["outcome"], episodes["verdict"]
    assert (verdict[outcome == Outcome.NONE] == Outcome.NONE).all() and set(np.unique(verdict)) <= {0, 1, 2}
    for role, share in flipped.items():
        ended = outcome == role
        assert_frequency(int((verdict[ended] != role).sum()), int(ended.sum()), share, f"{role.name} endings flipped")
