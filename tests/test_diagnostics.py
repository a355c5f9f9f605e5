"""Separation diagnostics of routed networks: how far apart the experts act, what the gate says
on the episodes nobody oversaw, and how many labelled episodes each expert has seen."""

import math

import pytest
import torch

from agents.evaluator import expert_divergence, gate_by_outcome
from agents.methods import get_method
from agents.networks import ActorCritic

ENV = "OversightGrid/DiamondGhost-5x5-v0"


def _constant_experts(intended_logit: float, proxy_logit: float) -> ActorCritic:
    """A routed network whose intended-only policy has logits (intended_logit, 0, 0, 0) and whose
    proxy-only policy has (proxy_logit, 0, 0, 0), whatever the state."""
    net = ActorCritic((4, 5, 5), hidden=8)
    with torch.no_grad():
        for parameter in net.actor.parameters():
            parameter.zero_()
        for name, value in (("intended", intended_logit), ("proxy", proxy_logit)):
            net.actor.experts[name][-1][-2].bias[0] = value  # the expert's last linear layer (then ReLU)
        net.actor.head.weight[0, 0] = 1.0
    return net


def _approx(x: float):
    return pytest.approx(x, rel=1e-5, abs=1e-7)


def _kl(a: float, b: float) -> float:
    p = [math.exp(a), 1, 1, 1]
    q = [math.exp(b), 1, 1, 1]
    p, q = [x / sum(p) for x in p], [x / sum(q) for x in q]
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_expert_divergence_is_the_kl_from_the_first_experts_policy_to_the_seconds():
    assert expert_divergence(_constant_experts(2.0, 0.0), ENV, states=64) == _approx(_kl(2.0, 0.0))
    assert expert_divergence(_constant_experts(0.0, 2.0), ENV, states=64) == _approx(_kl(0.0, 2.0))
    assert _kl(2.0, 0.0) != _approx(_kl(0.0, 2.0))  # the direction matters
    assert expert_divergence(_constant_experts(1.5, 1.5), ENV, states=64) == 0.0


class _Run:
    def __init__(self):
        self.logged = {}

    def log(self, tag, value):
        self.logged[tag] = value


def test_routed_methods_count_the_labelled_episodes_each_expert_has_seen():
    method = get_method("routing")
    state = method.initial_state()
    # outcome: 0 timeout, 1 intended, 2 proxy; only overseen episodes ending at a terminal are labelled
    method.after_rollout(state, torch.tensor([1, 1, 2, 2, 0, 1]), torch.tensor([True, False, True, True, True, True]))
    method.after_rollout(state, torch.tensor([2, 1]), torch.tensor([True, False]))
    run = _Run()
    method.at_evaluation(state, run)
    assert run.logged == {"route/labelled_episodes_intended": 2, "route/labelled_episodes_proxy": 3}
    assert get_method("naive").initial_state() == {}  # a single network has no experts to count for


def _gate_reads_whether_the_proxy_is_overseen(hidden: int = 32) -> ActorCritic:
    """A routed network whose gate is sigmoid(+10) while the proxy's cell is overseen and
    sigmoid(-10) otherwise (planes: agent, proxy, intended, oversight); uniform actions."""
    net = ActorCritic((4, 5, 5), hidden=hidden)
    conv, _, mlp = net.actor.gate
    with torch.no_grad():
        for parameter in net.actor.parameters():
            parameter.zero_()
        conv.weight[0, 1], conv.weight[0, 3], conv.bias[0] = 1.0, 1.0, -1.0  # 1 where proxy and overseen, else <= 0
        first, _, second, _, last = mlp
        first.weight[:25, :25] = torch.eye(25)  # channel 0's 25 cells, each through a ReLU
        second.weight[0, :25] = 1.0
        last.weight[0, 0], last.bias[0] = 20.0, -10.0
    return net


def test_gate_by_outcome_averages_each_episodes_gate_by_terminal_and_oversight():
    groups = gate_by_outcome(_gate_reads_whether_the_proxy_is_overseen(), ENV, episodes=512, oversight_prob=0.5)
    assert set(groups) == {"intended_overseen", "intended_unobserved", "proxy_overseen", "proxy_unobserved"}
    assert groups["proxy_overseen"] == _approx(1 / (1 + math.exp(-10)))
    assert groups["proxy_unobserved"] == _approx(1 / (1 + math.exp(10)))
    assert 0.2 < groups["intended_unobserved"] < 0.8  # the proxy overseen in about half of them
    only_unobserved = gate_by_outcome(_gate_reads_whether_the_proxy_is_overseen(), ENV, episodes=64, oversight_prob=0.0)
    assert set(only_unobserved) <= {"intended_unobserved", "proxy_unobserved"}
