"""The loss of every method, defined once and shared by every trainer (lean trainer, RoutedPPO).

`policy_loss` = weighted mean over samples of (policy-gradient term - entropy bonus + value
loss), plus the gate loss on labelled samples. The policy-gradient term is REINFORCE with a
baseline (`-log pi(a|s) * advantage`) or PPO's clipped surrogate. Sample weights (filtering) are
0 or 1 and the mean is over all samples, so the loss is scaled by the kept fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import Categorical

from agents.methods import ROUTES, Method
from agents.networks import ActorCritic
from routing import UNLABELLED, gate_loss


@dataclass(frozen=True)
class LossSettings:
    """The coefficients of one update; trainers fill them from `TrainConfig` (no defaults here)."""

    algorithm: str  # "reinforce" or "ppo"
    ent_coef: float
    vf_coef: float
    gate_coef: float
    clip_range: float  # PPO only


def policy_loss(
    net: ActorCritic,
    method: Method,
    settings: LossSettings,
    obs: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    old_log_prob: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's loss on one batch, and its parts for logging."""
    out = net(obs, labels if method.route else None)
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
    loss = (weights * per_sample).mean()
    g_loss = gate_loss(out.gate_logit.float() if out.gate_logit is not None else None, labels)
    if method.gate_loss:
        loss = loss + settings.gate_coef * g_loss
    with torch.no_grad():
        stats = {
            "loss/policy": float((weights * pg).mean()),
            "loss/value": float((weights * value_loss).mean()),
            "loss/entropy": float(entropy.mean()),
            "loss/gate": float(g_loss),
            "loss/total": float(loss),
        }
        if out.gate_logit is not None:  # the gate on each route's samples: does routing separate them?
            for code, name in ROUTES:
                chosen = labels == code
                if bool(chosen.any()):
                    tag = name if code == UNLABELLED else f"{name}_labelled"
                    stats[f"gate/{tag}"] = float(out.gate[chosen].float().mean())
    return loss, stats
