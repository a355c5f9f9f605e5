"""`agents.batch.build_batch` on small hand-computed windows: labels, weights, returns and
advantages, for episodes ending inside and across windows, timeouts, overseen and unobserved
endings, filtering, and both update rules."""

import pytest
import torch

from agents.batch import ReturnRule, Rollout, build_batch
from agents.methods import get_method

F, T = False, True


def window(**overrides):
    """Two environments, four steps (rows are steps, columns environments).

    env 0: an overseen proxy episode ends at step 1 (reward 1), then an episode runs past the window.
    env 1: an unobserved intended episode ends at step 1 (reward -1 in this made-up reward), then an
    overseen intended episode ends at step 3 (reward 1).
    """
    fields = dict(
        rewards=torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.0, 0.0], [0.0, 1.0]]),
        values=torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]),
        done=torch.tensor([[F, F], [T, T], [F, F], [F, T]]),
        truncated=torch.zeros(4, 2, dtype=torch.bool),
        outcome=torch.tensor([[0, 0], [2, 1], [0, 0], [0, 1]]),
        overseen=torch.tensor([[F, F], [T, F], [F, F], [F, T]]),
        last_value=torch.tensor([2.0, 4.0]),
    )
    return Rollout(**{**fields, **overrides})


def test_routing_labels_cover_exactly_the_steps_of_overseen_episodes():
    batch = build_batch(window(), get_method("routing"), ReturnRule("reinforce", 0.5))
    # env 0: proxy (2) on its first episode, the running episode unlabelled; env 1: the unobserved
    # episode unlabelled, the overseen intended episode (1).
    assert batch.labels.T.tolist() == [[2, 2, 0, 0], [0, 0, 1, 1]]
    for method in ("routing_no_gate_loss", "moe_no_routing"):  # the controls get the same labels
        assert torch.equal(build_batch(window(), get_method(method), ReturnRule("reinforce", 0.5)).labels, batch.labels)
    for method in ("naive", "filtering", "oracle", "naive_early_stopping"):
        assert not build_batch(window(), get_method(method), ReturnRule("reinforce", 0.5)).labels.any(), method


def test_filtering_keeps_overseen_and_timed_out_episodes_and_drops_the_rest():
    rule = ReturnRule("reinforce", 0.5)
    weights = build_batch(window(), get_method("filtering"), rule).weights
    # env 0: overseen episode kept, running episode dropped (its reward is unknown);
    # env 1: unobserved terminal dropped, overseen one kept.
    assert weights.T.tolist() == [[1, 1, 0, 0], [0, 0, 1, 1]]
    timeout = window(outcome=torch.tensor([[0, 0], [2, 0], [0, 0], [0, 1]]),
                     truncated=torch.tensor([[F, F], [F, T], [F, F], [F, F]]))
    assert build_batch(timeout, get_method("filtering"), rule).weights[:, 1].tolist() == [1, 1, 1, 1]
    for method in ("naive", "routing", "oracle"):
        assert build_batch(window(), get_method(method), rule).weights.eq(1).all(), method


def test_reinforce_returns_stop_at_episode_ends_and_at_the_window():
    batch = build_batch(window(), get_method("naive"), ReturnRule("reinforce", gamma=0.5))
    # env 0: t1 ends with 1 -> [0.5, 1, 0, 0]; env 1: t1 ends with -1, t3 with 1 -> [-0.5, -1, 0.5, 1].
    assert batch.returns.T.tolist() == [[0.5, 1.0, 0.0, 0.0], [-0.5, -1.0, 0.5, 1.0]]
    assert torch.allclose(batch.advantages, batch.returns - window().values)


def test_reinforce_with_bootstrap_continues_from_the_value_after_the_window_and_of_timeouts():
    rule = ReturnRule("reinforce", gamma=0.5, bootstrap=True)
    returns = build_batch(window(), get_method("naive"), rule).returns
    assert returns.T.tolist() == [[0.5, 1.0, 0.5, 1.0], [-0.5, -1.0, 0.5, 1.0]]  # env 0's last value 2
    timeout = window(rewards=torch.tensor([[0.0, 0.0], [0.0, -1.0], [0.0, 0.0], [0.0, 1.0]]),
                     outcome=torch.tensor([[0, 0], [0, 1], [0, 0], [0, 1]]),
                     truncated=torch.tensor([[F, F], [T, F], [F, F], [F, F]]),
                     timeout_values=torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    assert build_batch(timeout, get_method("naive"), rule).returns[:2, 0].tolist() == [0.75, 1.5]
    # Without bootstrap (the paper's rule) a timeout is an ending with its reward, here 0.
    assert build_batch(timeout, get_method("naive"), ReturnRule("reinforce", 0.5)).returns[:2, 0].tolist() == [0.0, 0.0]


def test_ppo_advantages_are_gae_cut_at_episode_ends_and_bootstrapped_at_the_window_and_timeouts():
    one = dict(values=torch.tensor([[0.2], [0.4]]), done=torch.tensor([[T], [F]]), truncated=torch.tensor([[F], [F]]),
               outcome=torch.tensor([[1], [0]]), overseen=torch.tensor([[F], [F]]), last_value=torch.tensor([1.0]))
    rule = ReturnRule("ppo", gamma=0.5, gae_lambda=0.5)
    batch = build_batch(Rollout(rewards=torch.tensor([[1.0], [0.0]]), **one), get_method("naive"), rule)
    # t1: delta = 0 + 0.5 * 1.0 - 0.4 = 0.1; t0 ends its episode: delta = 1 - 0.2 = 0.8, nothing carried.
    assert batch.advantages[:, 0].tolist() == pytest.approx([0.8, 0.1])
    assert batch.returns[:, 0].tolist() == pytest.approx([1.0, 0.5])
    timed_out = {**one, "truncated": torch.tensor([[T], [F]]), "outcome": torch.tensor([[0], [0]]),
                 "timeout_values": torch.tensor([[2.0], [0.0]])}
    batch = build_batch(Rollout(rewards=torch.tensor([[0.0], [0.0]]), **timed_out), get_method("naive"), rule)
    assert batch.advantages[0, 0].item() == pytest.approx(0.5 * 2.0 - 0.2)  # bootstrapped from the final value
    # Two steps of one episode: the advantage carries gamma * lambda of the next one.
    running = {**one, "done": torch.tensor([[F], [F]]), "outcome": torch.tensor([[0], [0]])}
    batch = build_batch(Rollout(rewards=torch.tensor([[1.0], [0.0]]), **running), get_method("naive"), rule)
    assert batch.advantages[:, 0].tolist() == pytest.approx([1.0 + 0.25 * 0.1, 0.1])  # delta0 = 1 + 0.5*0.4 - 0.2
