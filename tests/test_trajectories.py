"""What a trajectory reward model keeps of running episodes (`agents.trajectories`) and how the
learned-reward methods pay an unobserved episode.

Properties: however episodes are cut into rollout windows, each ended episode's summary is the
mean of its per-step features over all its observations (the last one included) beside its last
observation, and `paid_before` the sum of the rewards it was paid before each step; a resumed
object (a checkpoint round trip between windows) continues the same; and an unobserved episode's
rewards add up to the true return the model expects of it, whatever it was paid on the way.
"""

import copy
import io

import pytest
import torch

from agents.methods import get_method
from agents.trajectories import RunningEpisodes, step_features
from oversight_env import Outcome

D, G = int(Outcome.INTENDED), int(Outcome.PROXY)


def random_play(seed: int, steps: int = 60, envs: int = 5, shape=(3, 2, 2)):
    """Random observations, final observations, rewards and episode ends of `envs` environments."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(steps, envs, *shape, generator=g)
    obs[:, :, 0] = 0.0
    cells = torch.randint(0, shape[1] * shape[2], (steps, envs), generator=g)
    obs[:, :, 0].view(steps, envs, -1).scatter_(2, cells[..., None], 1.0)  # one agent cell per frame
    final = torch.rand(steps, envs, *shape, generator=g)
    done = torch.rand(steps, envs, generator=g) < 0.2
    rewards = torch.randn(steps, envs, generator=g)
    return obs, final, rewards, done


def expected(obs, final, rewards, done):
    """Summaries and rewards paid before, computed episode by episode from the whole play."""
    steps, envs = done.shape
    summaries = torch.zeros(steps, envs, 3 * obs.shape[2], *obs.shape[3:])
    before = torch.zeros(steps, envs)
    for n in range(envs):
        start = 0
        for t in range(steps):
            before[t, n] = rewards[start:t, n].sum()
            if done[t, n]:
                frames = torch.cat([obs[start:t + 1, n], final[t, n][None]])
                mean = step_features(frames, 0).mean(dim=0)
                summaries[t, n] = torch.cat([mean, final[t, n]])
                start = t + 1
    return summaries, before


@pytest.mark.parametrize("seed", range(8))
def test_summaries_and_payments_are_the_whole_episodes_however_windows_cut_them(seed):
    obs, final, rewards, done = random_play(seed)
    want_summaries, want_before = expected(obs, final, rewards, done)
    cuts = sorted(torch.randint(1, len(done), (3,), generator=torch.Generator().manual_seed(100 + seed)).tolist())
    episodes = RunningEpisodes(done.shape[1])
    got_summaries, got_before = [], []
    for a, b in zip([0, *cuts], [*cuts, len(done)]):
        if a == b:
            continue
        buffer = io.BytesIO()  # a checkpoint between windows
        torch.save(episodes, buffer)
        buffer.seek(0)
        episodes = torch.load(buffer, weights_only=False)
        got_summaries.append(episodes.summaries(obs[a:b], final[a:b], done[a:b]))
        got_before.append(episodes.paid_before(rewards[a:b], done[a:b]))
    assert torch.allclose(torch.cat(got_summaries), want_summaries, atol=1e-5)
    assert torch.allclose(torch.cat(got_before), want_before, atol=1e-5)


def test_step_features_mark_what_the_agent_stands_on():
    obs = torch.zeros(3, 2, 2)
    obs[0, 1, 1] = 1.0  # the agent
    obs[1, 1, 1] = obs[1, 0, 0] = 1.0  # a tile under it, and another away from it
    features = step_features(obs, 0)
    assert features.shape == (6, 2, 2) and torch.equal(features[:3], obs)
    assert features[4].tolist() == [[0.0, 0.0], [0.0, 1.0]]  # only the tile it stands on


def window_with_a_toll():
    """Env 0: an unobserved episode over two windows that was paid -1 and then +1 on its last step;
    env 1: an overseen proxy episode paid -2 on the way and +1 at the end (-1 in all, as the
    overseer paid it), env 2: an overseen intended one (+1)."""
    shape = (2, 1, 3)
    first = {"done": torch.tensor([[False, False, False], [False, True, True]]),
             "outcome": torch.tensor([[0, 0, 0], [0, G, D]]),
             "overseen": torch.tensor([[False, False, False], [False, True, True]]),
             "rewards": torch.tensor([[-1.0, -2.0, 0.0], [0.0, 1.0, 1.0]]),
             "true_return": torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -5.0, 5.0]]),  # the truth: never read
             "obs": torch.zeros(2, 3, *shape), "final_obs": torch.zeros(2, 3, *shape)}
    second = {"done": torch.tensor([[True, False, False]]), "outcome": torch.tensor([[G, 0, 0]]),
              "overseen": torch.tensor([[False, False, False]]), "rewards": torch.tensor([[1.0, 0.0, 0.0]]),
              "true_return": torch.tensor([[0.0, 0.0, 0.0]]), "obs": torch.zeros(1, 3, *shape),
              "final_obs": torch.zeros(1, 3, *shape)}
    return first, second


@pytest.mark.parametrize("name", ["reward_model", "reward_model_trajectory"])
def test_an_unobserved_episode_is_paid_in_all_the_true_return_the_model_expects(name):
    method = get_method(name)
    state = method.initial_state(("agent", "thing"))
    first, second = window_with_a_toll()
    paid = method.prepare_window(state, first)["rewards"]
    assert torch.equal(paid, first["rewards"])  # nothing ended unobserved: as paid
    model = state["model"]
    assert model.class_rewards().tolist() == [1.0, -1.0]  # what the overseer paid for each in all, not the last reward
    judged = method.judged(copy.deepcopy(state), second)[0, 0]  # what the model judges of env 0's episode
    last = float(method.prepare_window(state, second)["rewards"][0, 0])
    assert abs(-1.0 + last - float(model.expected_reward(judged[None])[0])) < 1e-5
    assert last != 1.0  # not what the overseer paid


def test_the_trajectory_model_sees_the_way_the_last_frame_model_does_not():
    first, second = window_with_a_toll()
    for w in (first, second):
        w["obs"][:, :, 0, 0, 0] = 1.0  # the agent stands in cell 0 ...
    second["obs"][0, 0, 0] = 0.0
    second["obs"][0, 0, 0, 0, 1] = 1.0  # ... but env 0 crossed cell 1 on its last step
    for name, differs in (("reward_model", False), ("reward_model_trajectory", True)):
        method = get_method(name)
        a, b = method.initial_state(("agent", "thing")), method.initial_state(("agent", "thing"))
        plain = {k: v.clone() for k, v in second.items()}
        plain["obs"][0, 0] = second["obs"][0, 1]
        method.prepare_window(a, {k: v.clone() for k, v in first.items()})
        method.prepare_window(b, {k: v.clone() for k, v in first.items()})
        seen_a = method.judged(a, second)[0, 0]
        seen_b = method.judged(b, plain)[0, 0]
        assert (not torch.equal(seen_a, seen_b)) == differs


@pytest.mark.parametrize("names", [("oversight", "thing", "agent"), ("agent", "oversight", "thing")])
def test_the_trajectory_model_finds_the_agent_plane_by_name(names):
    method = get_method("reward_model_trajectory")
    state = method.initial_state(names)
    shown = [n for n in names if n != "oversight"]
    assert state["agent_plane"] == shown.index("agent")  # among the planes the model reads
    obs = torch.zeros(1, 1, 2, 1, 2)  # the model's planes, in `shown`'s order
    obs[0, 0, shown.index("agent"), 0, 1] = 1.0  # the agent on cell 1 ...
    obs[0, 0, shown.index("thing"), 0, :] = 1.0  # ... where a thing lies, as on cell 0
    full = torch.zeros(1, 1, 3, 1, 2)
    full[:, :, [names.index(n) for n in shown]] = obs
    window = {"obs": full, "final_obs": full.clone(), "done": torch.tensor([[True]])}
    summary = method.judged(state, window)[0, 0]  # the planes' means, the same under the agent, the last frame
    assert summary[2 + shown.index("thing")].tolist() == [[0.0, 1.0]]  # the thing it stood on, not the one beside it
