"""The loss and the update of every method, defined once and shared by every trainer (the lean
trainer and `RoutedPPO`).

`policy_loss` = weighted mean over samples of (policy-gradient term - entropy bonus + value
loss), plus the gate loss on labelled samples. The policy-gradient term is REINFORCE with a
baseline (`-log pi(a|s) * advantage`) or PPO's clipped surrogate. Sample weights (filtering) are
0 or 1 and the mean is over all samples, so the loss is scaled by the kept fraction.
`policy_loss` is the network's forward followed by `output_loss`, the loss of an output.

`update` applies one rollout's samples: REINFORCE takes one gradient step on all of them; PPO
takes `epochs` passes over `minibatches` random minibatches, each with its advantages normalized
(over the samples the loss keeps: `normalized`).
A method with a gate replay adds replayed labelled samples to every step's gate loss.
Both clip the gradient's norm when `max_grad_norm` is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch.distributions import Categorical

from agents.methods import ROUTES, Method
from agents.networks import ActorCritic, ActorCriticOutput
from routing import UNLABELLED, gate_loss, routed_backward

if TYPE_CHECKING:
    from agents.config import TrainConfig


@dataclass(frozen=True)
class UpdateSettings:
    """The coefficients of one update; `from_config` fills them from `TrainConfig` at a point of
    the run (the entropy bonus and the learning rate follow their schedules)."""

    algorithm: str  # "reinforce" or "ppo"
    learning_rate: float
    ent_coef: float
    vf_coef: float
    gate_coef: float
    max_grad_norm: float | None = None
    clip_range: float = 0.2  # PPO only
    epochs: int = 1  # PPO only
    minibatches: int = 1  # PPO only

    @classmethod
    def from_config(cls, config: TrainConfig, progress: float) -> UpdateSettings:
        """The settings of the update that starts after `progress` (0 to 1) of the run."""
        return cls(config.algorithm, config.learning_rate_at(progress), config.entropy_bonus(progress), config.vf_coef,
                   config.gate_coef, config.max_grad_norm, config.clip_range, config.ppo_epochs, config.ppo_minibatches)


class Samples(NamedTuple):
    """One rollout's samples, flat (N, ...), in the order of `flatten`."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


def flatten(tensors: Samples, count: int | None = None) -> Samples:
    """(T, B, ...) tensors as (T * B, ...), time-major, keeping the first `count` samples."""
    return Samples(*(x.reshape(-1, *x.shape[2:])[:count] for x in tensors))


def policy_loss(
    net: ActorCritic,
    method: Method,
    settings: UpdateSettings,
    samples: Samples,
    normalize_advantages: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's loss on `samples`, and its parts for logging: the network's forward, then
    `output_loss`."""
    out = net(samples.obs, routing_labels(method, samples))
    return output_loss(out, method, settings, samples, normalize_advantages)


def routing_labels(method: Method, samples: Samples) -> torch.Tensor | None:
    """The labels the network's forward routes gradients by: the samples' own, or None."""
    return samples.labels if method.route_labels else None


class LossTerms(NamedTuple):
    """A method's loss on N samples, in parts: `per_sample` (N,), each sample's weighted term
    (the loss is their mean), and `gate`, the weighted gate loss (None when the method has none)."""

    per_sample: torch.Tensor
    gate: torch.Tensor | None

    def total(self) -> torch.Tensor:
        loss = self.per_sample.mean()
        return loss if self.gate is None else loss + self.gate


def output_loss(
    out: ActorCriticOutput,
    method: Method,
    settings: UpdateSettings,
    samples: Samples,
    normalize_advantages: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The method's loss on `samples` given the network's output on them, `out`, and its parts
    for logging. Apart from the forward so that a member axis of networks (`agents.stacked`)
    can run one batched forward (`torch.vmap`, which cannot run this function's data-dependent
    Python) and take each member's loss on its slice of the output."""
    terms, stats = output_loss_terms(out, method, settings, samples, normalize_advantages)
    return terms.total(), stats


def output_loss_terms(
    out: ActorCriticOutput,
    method: Method,
    settings: UpdateSettings,
    samples: Samples,
    normalize_advantages: bool = False,
    gate_replay: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[LossTerms, dict[str, torch.Tensor]]:
    """`output_loss` in its parts (`LossTerms`), for parameter-level routing, which sends each
    route's samples' terms to its own parameters. `gate_replay`, (gate logits, labels) of
    replayed samples, joins the gate loss: the mean over every labelled sample, current or replayed."""
    _, actions, old_log_prob, advantages, returns, labels, weights = samples
    if normalize_advantages:
        advantages = normalized(advantages, weights)
    dist = Categorical(logits=out.logits.float())
    log_prob = dist.log_prob(actions)
    entropy = dist.entropy()
    if settings.algorithm == "ppo":
        ratio = torch.exp(log_prob - old_log_prob)
        clipped = torch.clamp(ratio, 1 - settings.clip_range, 1 + settings.clip_range)
        pg = -torch.min(ratio * advantages, clipped * advantages)
    else:
        pg = -log_prob * advantages
    value_loss = (out.value.float() - returns) ** 2
    per_sample = pg - settings.ent_coef * entropy + settings.vf_coef * value_loss
    gate_logit, gate_labels = (None if out.gate_logit is None else out.gate_logit.float()), labels
    if gate_replay is not None and gate_logit is not None:
        gate_logit, gate_labels = torch.cat([gate_logit, gate_replay[0].float()]), torch.cat([labels, gate_replay[1]])
    g_loss = gate_loss(gate_logit, gate_labels)
    terms = LossTerms(weights * per_sample, settings.gate_coef * g_loss if method.gate_loss else None)
    with torch.no_grad():  # tensors: read once per update (`read_stats`), not once per number
        stats = {
            "loss/policy": (weights * pg).mean(),
            "loss/value": (weights * value_loss).mean(),
            "loss/entropy": entropy.mean(),
            "loss/gate": g_loss,
            "loss/total": terms.total(),
        }
        if out.gate_logit is not None:  # the gate on each route's samples: does routing separate them?
            gate = out.gate.float()
            for code, name in ROUTES:
                chosen = labels == code  # NaN where the route has no samples: `read_stats` leaves it out
                tag = name if code == UNLABELLED else f"{name}_labelled"
                stats[f"gate/{tag}"] = torch.where(chosen, gate, 0.0).sum() / chosen.sum()
    return terms, stats


def read_stats(stats: Sequence[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
    """Loss statistics (`output_loss_terms`'s tensors) of one or more members as numbers, read
    from the device at once; a gate statistic of a route without samples (NaN) is left out."""
    keys = [list(member) for member in stats]
    values = torch.stack([v.detach().float().reshape(()) for member in stats for v in member.values()]).tolist()
    read, i = [], 0
    for member in keys:
        numbers = dict(zip(member, values[i:i + len(member)]))
        i += len(member)
        read.append({k: v for k, v in numbers.items() if not (k.startswith("gate/") and math.isnan(v))})
    return read


def normalized(advantages: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """PPO's advantage normalization by the mean and standard deviation of the samples the loss
    keeps (weight > 0): a dropped sample's advantage comes from a return the method may not know
    (filtering drops the unobserved episodes, whose true reward only the testbed knows), so it
    must not move the kept samples' advantages. With fewer than two kept samples, unchanged."""
    kept = weights > 0
    if bool(kept.all()):
        return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    if int(kept.sum()) < 2:
        return advantages
    return (advantages - advantages[kept].mean()) / (advantages[kept].std() + 1e-8)


def update(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    method: Method,
    settings: UpdateSettings,
    samples: Samples,
    generator: torch.Generator,
    autocast: AbstractContextManager,
    gate_replay: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Train `net` on one rollout's `samples` (see the module docstring); the last step's stats.
    PPO's minibatches are drawn with `generator`."""
    for group in optimizer.param_groups:
        group["lr"] = settings.learning_rate
    if settings.algorithm != "ppo":
        stats = _gradient_step(net, optimizer, method, settings, samples, autocast, normalize=False, gate_replay=gate_replay)
        return read_stats([stats])[0]
    for idx in minibatches(len(samples.obs), settings, generator):
        stats = _gradient_step(net, optimizer, method, settings, Samples(*(x[idx] for x in samples)), autocast,
                               normalize=len(idx) > 1, gate_replay=gate_replay)
    return read_stats([stats])[0]


def minibatches(count: int, settings: UpdateSettings, generator: torch.Generator) -> list[torch.Tensor]:
    """PPO's minibatches of `count` samples, in order: each epoch a random order drawn with
    `generator`, cut into `settings.minibatches` pieces."""
    return [idx for _ in range(settings.epochs)
            for idx in torch.randperm(count, generator=generator, device=generator.device).chunk(settings.minibatches)]


def _gradient_step(net, optimizer, method, settings, samples, autocast, normalize: bool,
                   gate_replay: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    with autocast:
        out = net(samples.obs, routing_labels(method, samples))
        replay = None if gate_replay is None else (net.actor.gate(gate_replay[0]).squeeze(-1), gate_replay[1])
        terms, stats = output_loss_terms(out, method, settings, samples, normalize_advantages=normalize, gate_replay=replay)
    optimizer.zero_grad()
    if method.route_parameters:
        parameter_routed_backward(net, terms, samples.labels)
    else:
        terms.total().backward()
    if settings.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), settings.max_grad_norm)
    optimizer.step()
    return stats


def parameter_routed_backward(net: ActorCritic, terms: LossTerms, labels: torch.Tensor) -> None:
    """Parameter-level routing (`routing.routed_backward`): the terms of each route's samples
    update every parameter but those the route freezes (`RoutedMixture.frozen_for`: the other
    expert and the gate); the gate loss updates what it reaches (the gate)."""
    n = len(labels)
    losses, parameters = {}, {}
    for code, _ in ROUTES:
        chosen = labels == code
        if bool(chosen.any()):
            frozen = {id(p) for p in net.actor.frozen_for(code)}
            losses[code] = terms.per_sample[chosen].sum() / n
            parameters[code] = [p for p in net.parameters() if id(p) not in frozen]
    if terms.gate is not None:
        losses["gate"], parameters["gate"] = terms.gate, list(net.parameters())
    routed_backward(losses, parameters)
