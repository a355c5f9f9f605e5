"""The `reward_model` method: which episodes its model learns from, which rewards it replaces and
with what, what it logs, and that a run with it trains and resumes."""

import io

import torch

from agents.config import TrainConfig
from agents.files import load_checkpoint
from agents.methods import get_method
from agents.reward_model import HELD_OUT_EVERY, RewardModel
from agents.run_dir import read_evaluation
from agents.train import train
from oversight_env import Outcome, make_batched

SHAPE = (2, 1, 3)
D, G = int(Outcome.INTENDED), int(Outcome.PROXY)


def ending(cell: int) -> torch.Tensor:
    obs = torch.zeros(SHAPE)
    obs[0, 0, cell] = 1.0
    return obs


def window() -> dict[str, torch.Tensor]:
    """Two steps of three environments: env 0 ends overseen at a intended (step 0), env 1 unobserved
    at a proxy (step 1), env 2 by the step limit (step 1)."""
    done = torch.tensor([[True, False, False], [False, True, True]])
    outcome = torch.tensor([[D, 0, 0], [0, G, 0]])
    overseen = torch.tensor([[True, False, False], [False, False, False]])
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # naive: the unobserved proxy pays +1
    true_return = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    final = torch.zeros(2, 3, *SHAPE)
    final[0, 0], final[1, 1], final[1, 2] = ending(0), ending(2), ending(1)
    return {"done": done, "outcome": outcome, "overseen": overseen, "rewards": rewards, "true_return": true_return,
            "final_obs": final}


def test_only_overseen_endings_teach_the_model_and_only_unobserved_ones_are_rescored():
    method = get_method("reward_model")
    state = method.initial_state()
    w = window()
    rewards = method.prepare_window(state, w)["rewards"]
    model = state["model"]
    assert model.labelled == 1 and model.heldout_labels.tolist() == [0]  # the first labelled ending is held out
    assert rewards[0, 0] == 1.0 and rewards[1, 2] == 0.0 and rewards[0, 1] == 0.0  # overseen, timeout, mid-episode: kept
    expected = float(model.expected_reward(w["final_obs"][1, 1][None])[0])
    assert rewards[1, 1] == expected != 1.0  # the unobserved proxy: the model's expectation, not the naive +1
    assert torch.equal(w["rewards"], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # the window itself untouched


def test_the_model_never_reads_the_oversight_map():
    for name in ("reward_model", "routing_reward_model"):
        method = get_method(name)
        state = method.initial_state(("agent", "oversight"))
        w = window()
        w["final_obs"][1, 1, 1] = 1.0  # the unobserved proxy's ending, now with its cell marked overseen
        method.prepare_window(state, w)
        assert state["model"].train_obs.shape[1:] == (1, 1, 3)  # the agent plane only
    rewards = []
    for marked in (False, True):
        method = get_method("reward_model")
        state = method.initial_state(("agent", "oversight"))
        w = window()
        w["final_obs"][1, 1, 1] = float(marked)
        torch.manual_seed(0)  # the same model either way
        rewards.append(float(method.prepare_window(state, w)["rewards"][1, 1]))
    assert rewards[0] == rewards[1]  # the mark changes nothing


def test_the_expected_reward_weighs_each_class_by_its_mean_true_reward():
    model = RewardModel(SHAPE)
    obs = torch.stack([ending(0), ending(0), ending(2), ending(2), ending(2)])
    model.add(obs, torch.tensor([D, D, G, G, G]), torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0]))
    assert torch.allclose(model.class_rewards(), torch.tensor([1.0, -2.0 / 3.0]))
    with torch.no_grad():  # a model sure of "proxy"
        for p in model.net.parameters():
            p.zero_()
        model.net[-1].bias.copy_(torch.tensor([-20.0, 20.0]))
    assert abs(float(model.expected_reward(ending(1)[None])[0]) + 2.0 / 3.0) < 1e-6


def test_every_fifth_labelled_ending_is_held_out_and_fitting_learns_them():
    model = RewardModel(SHAPE, steps=50, learning_rate=1e-2)
    for _ in range(20):
        model.add(torch.stack([ending(0), ending(2)]), torch.tensor([D, G]), torch.tensor([1.0, -1.0]))
    assert len(model.heldout_labels) == 40 // HELD_OUT_EVERY and len(model.train_labels) == 40 - 40 // HELD_OUT_EVERY
    model.fit()
    model.score_unobserved(torch.stack([ending(2), ending(0)]), torch.tensor([G, D]))
    assert model.accuracies() == {"heldout_accuracy": 1.0, "unobserved_accuracy": 1.0}
    assert model.accuracies() == {"heldout_accuracy": 1.0}  # the unobserved count restarts at each call
    buffer = io.BytesIO()
    torch.save({"model": model}, buffer)  # it lives in the run's checkpoint
    buffer.seek(0)
    assert torch.load(buffer, weights_only=False)["model"].labelled == 40


def test_a_reward_model_run_trains_logs_and_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(method="reward_model", oversight_prob=0.5, steps=1024, num_envs=32, rollout_steps=16,
                         eval_every_steps=512, eval_episodes=16, final_eval_episodes=32, checkpoint_every_steps=512)
    train(config, tmp_path / "run", progress=False)
    report = read_evaluation(tmp_path / "run")
    assert report["env_steps"] == 1024 and report["evaluated_variant"] == "full"
    events = EventAccumulator(str(tmp_path / "run/tb"))
    events.Reload()
    assert {"reward_model/heldout_accuracy", "reward_model/labelled_episodes"} <= set(events.Tags()["scalars"])
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["state"]["method"]["model"]
    assert isinstance(saved, RewardModel) and saved.labelled > 0  # a resumed run continues with its model and data
    assert saved.train_obs.shape[1] == len(make_batched(config.env_id, 1).plane_names) - 1  # the trainer named the planes


def test_routing_with_model_labels_labels_the_unobserved_endings_the_model_is_sure_of():
    method = get_method("routing_reward_model")
    state = method.initial_state()
    model = state["model"] = RewardModel(SHAPE)
    with torch.no_grad():  # a model sure of "proxy" for every ending
        for p in model.net.parameters():
            p.zero_()
        model.net[-1].bias.copy_(torch.tensor([-20.0, 20.0]))
    w = window()
    prepared = method.prepare_window(state, w)
    labels = method.step_labels(prepared["done"], prepared["outcome"], prepared["overseen"])
    assert labels.tolist() == [[1, 2, 0], [0, 2, 0]]  # env 1's unobserved proxy episode now routes to the proxy expert
    assert not w["overseen"][1, 1]  # the trainer's own record of what was overseen is untouched
    model.net[-1].bias.data.copy_(torch.tensor([0.0, 0.0]))  # unsure: nothing more is labelled
    labels = method.step_labels(*(method.prepare_window(state, window())[k] for k in ("done", "outcome", "overseen")))
    assert labels.tolist() == [[1, 0, 0], [0, 0, 0]]
