"""Carrying running episodes into the next window (`agents.carry`, `routing_full_labels`): which
steps train when, on windows small enough to follow by hand."""


import torch

from agents.carry import episode_finished, extend, split
from agents.config import TrainConfig
from agents.lean_trainer import train_lean
from agents.methods import get_method
from tests.test_agents import TINY, scalars

T, F = True, False


def window(done, outcome=None, overseen=None):
    done = torch.tensor(done)
    steps = torch.arange(done.numel()).view(done.shape).float()  # each step's identity, to follow it
    return {"done": done, "obs": steps, "outcome": torch.tensor(outcome) if outcome else torch.zeros_like(done, dtype=torch.long),
            "overseen": torch.tensor(overseen) if overseen else torch.zeros_like(done)}


def test_a_step_is_finished_when_its_episode_ends_at_it_or_later_in_the_window():
    done = torch.tensor([[F, F], [T, F], [F, F], [F, T]])
    assert episode_finished(done).tolist() == [[T, T], [T, T], [F, T], [F, T]]


def test_running_episodes_wait_for_their_end_and_then_train_with_its_label():
    routing = get_method("routing")
    # Window 1 (3 steps, 2 environments): env 0's episode ends at step 1, then a new one runs;
    # env 1's episode runs through the whole window.
    first = window([[F, F], [T, F], [F, F]], outcome=[[0, 0], [1, 0], [0, 0]], overseen=[[F, F], [T, F], [F, F]])
    valid = torch.ones(3, 2, dtype=torch.bool)
    extended, valid = extend(None, first, valid)
    trained, carry = split(extended, valid)
    assert trained.tolist() == [[T, F], [T, F], [F, F]]  # only env 0's ended episode trains now
    assert carry["obs"].tolist() == [[0, 1], [2, 3], [4, 5]]  # env 1 needs all three rows
    assert carry["valid"].tolist() == [[F, T], [F, T], [T, T]]  # env 0 carries its last step only
    # Window 2 (2 steps): env 0's carried episode ends at its first step (a proxy, overseen),
    # env 1's at its second (a intended, overseen); env 0 starts another that runs on.
    second = window([[T, F], [F, T]], outcome=[[2, 0], [0, 1]], overseen=[[T, F], [F, T]])
    second["obs"] += 100
    extended, valid = extend(carry, second, torch.ones(2, 2, dtype=torch.bool))
    labels = routing.step_labels(extended["done"], extended["outcome"], extended["overseen"])
    trained, carry = split(extended, valid)
    assert extended["obs"][trained].tolist() == [1, 3, 4, 5, 100, 101, 103]  # time-major
    assert labels[trained].tolist() == [1, 1, 2, 1, 2, 1, 1]  # every trained step has its episode's label
    assert carry["obs"].tolist() == [[102, 103]] and carry["valid"].tolist() == [[T, F]]


def test_every_step_trains_once_except_those_still_waiting_at_the_end(tmp_path):
    # The budget ends part-way through a window: its steps beyond the budget neither train nor wait.
    config = TrainConfig(method="routing_full_labels", steps=16 * 8 * 5 + 40, oversight_prob=0.5, **TINY)
    train_lean(config, tmp_path, progress=False)
    trained = sum(v for _, v in scalars(tmp_path)["route/samples_trained"])
    waiting = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["carry"]
    assert trained + int(waiting["valid"].sum()) == config.steps
    assert 0 < int(waiting["valid"].sum()) < config.num_envs * 32  # at most one running episode per environment
