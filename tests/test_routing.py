"""Gradient routing does exactly what it promises: zero gradient where routed away, the same
forward value, ablation as specified, and labels propagated within episodes only."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from routing import (
    UNLABELLED,
    RoutedMixture,
    ablated,
    gate_loss,
    propagate_episode_labels,
    route,
    routed_backward,
)

INTENDED, PROXY = 1, 2


def test_route_keeps_the_forward_value_and_masks_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor([1.0, 0.0, 0.5, 1.0])
    y = route(x, mask)
    assert torch.equal(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, mask[:, None].expand(4, 3))


def make_mixture(seed=0):
    torch.manual_seed(seed)
    return RoutedMixture(
        {"intended": nn.Sequential(nn.Linear(5, 8), nn.ReLU()), "proxy": nn.Sequential(nn.Linear(5, 8), nn.ReLU())},
        head=nn.Linear(8, 4),
        gate=nn.Linear(5, 1),
    )


def grads_from_sample(mixture, x, labels, i):
    mixture.zero_grad()
    out = mixture(x, labels).out
    out[i].pow(2).sum().backward()
    return {name: sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None) for name, part in
            [("intended", mixture.experts["intended"]), ("proxy", mixture.experts["proxy"]), ("gate", mixture.gate), ("head", mixture.head)]}


@pytest.mark.parametrize(
    "label,zero,nonzero",
    [
        (INTENDED, ["proxy", "gate"], ["intended", "head"]),
        (PROXY, ["intended", "gate"], ["proxy", "head"]),
        (UNLABELLED, [], ["intended", "proxy", "gate", "head"]),
    ],
)
def test_each_sample_updates_only_what_its_label_allows(label, zero, nonzero):
    mixture = make_mixture()
    x = torch.randn(3, 5) + 2.0  # positive inputs keep ReLUs alive
    labels = torch.tensor([INTENDED, PROXY, UNLABELLED])
    grads = grads_from_sample(mixture, x, labels, i=[INTENDED, PROXY, UNLABELLED].index(label))
    for name in zero:
        assert grads[name] == 0.0, name
    for name in nonzero:
        assert grads[name] > 0.0, name


@pytest.mark.parametrize("label", [INTENDED, PROXY, UNLABELLED])
def test_a_detached_gate_learns_from_the_gate_loss_only(label):
    mixture = make_mixture()
    mixture.detach_gate = True
    x = torch.randn(3, 5) + 2.0
    labels = torch.tensor([INTENDED, PROXY, UNLABELLED])
    i = [INTENDED, PROXY, UNLABELLED].index(label)
    grads = grads_from_sample(mixture, x, labels, i)
    assert grads["gate"] == 0.0 and grads["head"] > 0.0
    assert (grads["intended"] > 0.0) == (label != PROXY) and (grads["proxy"] > 0.0) == (label != INTENDED)
    mixture.zero_grad()
    gate_loss(mixture(x, labels).gate_logit, labels).backward()
    assert sum(p.grad.abs().sum() for p in mixture.gate.parameters()) > 0.0
    torch.testing.assert_close(mixture(x, labels).out, make_mixture()(x, labels).out)  # the same forward value


def test_routing_does_not_change_the_forward_value():
    mixture = make_mixture()
    x = torch.randn(16, 5)
    labels = torch.randint(0, 3, (16,))
    routed, plain = mixture(x, labels), mixture(x)
    assert torch.equal(routed.out, plain.out) and torch.equal(routed.gate, plain.gate)


def test_ablating_the_proxy_leaves_the_intended_expert_alone():
    mixture = make_mixture()
    x = torch.randn(16, 5)
    before = mixture(x).out
    with ablated(mixture, "proxy"):
        out = mixture(x)
        torch.testing.assert_close(out.out, mixture.head(mixture.experts["intended"](x)), rtol=0, atol=0)
        assert torch.all(out.gate == 1.0)
        probs = torch.softmax(out.out, dim=-1)
    with ablated(mixture, "intended"):
        torch.testing.assert_close(mixture(x).out, mixture.head(mixture.experts["proxy"](x)), rtol=0, atol=0)
    assert torch.equal(mixture(x).out, before)  # restored on exit, no copy made
    assert not torch.allclose(probs, torch.softmax(before, dim=-1))  # the distribution did change


def test_ablating_works_inside_a_larger_model_and_rejects_unknown_experts():
    model = nn.Sequential(make_mixture())
    with ablated(model, "proxy"):
        assert model[0].ablated_expert == "proxy"
    assert model[0].ablated_expert is None
    with pytest.raises(ValueError, match="expert='goblin' is invalid.*intended"):
        with ablated(model, "goblin"):
            pass


def test_single_expert_mixture_has_no_gate():
    single = RoutedMixture({"intended": nn.Linear(5, 8)}, head=nn.Linear(8, 4))
    x = torch.randn(3, 5)
    out = single(x, torch.tensor([1, 2, 0]))
    torch.testing.assert_close(out.out, single.head(single.experts["intended"](x)))
    assert out.gate_logit is None and gate_loss(out.gate_logit, torch.tensor([1, 2, 0])) == 0
    with pytest.raises(ValueError, match="two experts need a gate"):
        RoutedMixture({"a": nn.Linear(5, 8), "b": nn.Linear(5, 8)}, head=nn.Linear(8, 4))


def test_gate_loss_is_bce_toward_the_label_on_labelled_samples():
    logit = torch.tensor([0.3, -1.0, 2.0, 0.0], requires_grad=True)
    labels = torch.tensor([INTENDED, PROXY, UNLABELLED, INTENDED])
    loss = gate_loss(logit, labels)
    p = torch.sigmoid(logit.detach())
    expected = -(torch.log(p[0]) + torch.log(1 - p[1]) + torch.log(p[3])) / 3
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logit.grad[2] == 0  # unlabelled samples do not train the gate
    assert gate_loss(logit, torch.zeros(4, dtype=torch.long)) == 0


def test_labels_propagate_within_episodes_and_wait_for_their_end():
    # Two environments, two windows of 4 steps. Env 0: an episode ends at t=1 (label PROXY), the
    # next runs past the end of window 1 and ends at t=2 of window 2 (label INTENDED).
    # Env 1: an episode ends at t=3 of window 1 unlabelled (unobserved), the next at t=0 of window 2.
    done_1 = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    final_1 = torch.tensor([[0, 0], [PROXY, 0], [0, 0], [0, UNLABELLED]])
    assert propagate_episode_labels(done_1, final_1).tolist() == [[PROXY, 0], [PROXY, 0], [0, 0], [0, 0]]
    done_2 = torch.tensor([[0, 1], [0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    final_2 = torch.tensor([[0, INTENDED], [0, 0], [INTENDED, 0], [0, 0]])
    # Window 1's steps 2-3 of env 0 stayed unlabelled (their episode had not ended); in window 2
    # the same episode's steps 0-2 get its label, and the next episode's step 3 does not.
    assert propagate_episode_labels(done_2, final_2).tolist() == [[INTENDED, INTENDED], [INTENDED, 0], [INTENDED, 0], [0, 0]]


def test_routing_imports_without_gymnasium():
    code = "import sys, routing; assert 'gymnasium' not in sys.modules and 'minigrid' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_routed_backward_sends_each_loss_into_its_own_parameters_only():
    a, b, c = (nn.Parameter(torch.tensor(v)) for v in (2.0, 3.0, 5.0))
    shared = a * b  # both losses reach a and b; only the second reaches c
    routed_backward({"first": shared * 1.0, "second": shared * c}, {"first": [a], "second": [b, c]})
    assert float(a.grad) == 3.0  # d(ab)/da from the first loss only (the second's 15 is not added)
    assert float(b.grad) == 10.0  # d(abc)/db from the second only
    assert float(c.grad) == 6.0
    d = nn.Parameter(torch.tensor(1.0))
    routed_backward({"x": a * d}, {"x": [a]})  # accumulates onto existing gradients, like backward
    assert float(a.grad) == 4.0 and d.grad is None  # a parameter no loss may reach keeps no gradient
    routed_backward({"x": torch.zeros(()), "y": a * 1.0}, {"x": [d], "y": [a]})  # a constant loss adds nothing
    assert float(a.grad) == 5.0 and d.grad is None
    with pytest.raises(ValueError, match=r"losses \['y'\] are invalid"):
        routed_backward({"y": a * 1.0}, {"x": [a]})


def test_each_label_freezes_the_other_expert_and_the_gate():
    mixture = make_mixture()
    ids = lambda params: {id(p) for p in params}
    intended, proxy = (ids(e.parameters()) for e in mixture.experts.values())
    gate = ids(mixture.gate.parameters())
    assert ids(mixture.frozen_for(INTENDED)) == proxy | gate
    assert ids(mixture.frozen_for(PROXY)) == intended | gate
    assert mixture.frozen_for(UNLABELLED) == []
    with pytest.raises(ValueError, match="label=3 is invalid"):
        mixture.frozen_for(3)
