"""The policy network, defined once (Cloud et al. 2024, Sec 4.3): a routed mixture actor and a
value network. Every trainer builds it here, the evaluator ablates it, SB3's policy wraps it.

- Experts ("intended", "proxy"): flatten, MLP in -> 256 -> 256, ReLU after every layer.
- Gate: 1x1 conv (C -> C), flatten, MLP in -> 256 -> 256 -> 1 (ReLU between), sigmoid. With
  `gate_planes` the gate reads only those observation planes (`routing_blind_gate`); without
  `gate_from_policy` it learns only from the gate loss, not from the policy's loss.
- Actor: `g * intended + (1 - g) * proxy` in hidden space, then a shared Linear(256 -> actions).
- Critic: 1x1 conv (C -> 16), flatten, Linear -> 256 -> 32 -> 1 with no nonlinearities, as published.
- The single network of the baselines is the intended expert with the shared head, no gate.
- Initialisation: PyTorch's defaults; with `zero_biases` (the paper preset) every bias is zero,
  as in the published code.

`sample_actions` is how every trainer and the evaluator draw actions from the logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from agents.legacy_names import modern_name
from routing import RoutedMixture


class ActorCriticOutput(NamedTuple):
    logits: torch.Tensor  # (B, actions)
    value: torch.Tensor  # (B,)
    gate: torch.Tensor  # (B,) weight of the first expert
    gate_logit: torch.Tensor | None


def mlp(sizes: Sequence[int], relu_last: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if relu_last or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SelectPlanes(nn.Module):
    """The observation planes `planes` of (B, C, H, W) input, in that order."""

    def __init__(self, planes: Sequence[int], channels: int):
        super().__init__()
        if not planes or any(not 0 <= p < channels for p in planes) or len(set(planes)) != len(planes):
            raise ValueError(f"gate_planes={list(planes)} is invalid: expected distinct plane indices in [0, {channels})")
        self.planes = tuple(int(p) for p in planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, list(self.planes)]

    def extra_repr(self) -> str:
        return f"planes={self.planes}"


def planes_shown(plane_names: Sequence[str], hidden: Sequence[str]) -> tuple[int, ...] | None:
    """The indices of the planes of `plane_names` not named in `hidden` (None when none is hidden)."""
    if not any(name in plane_names for name in hidden):
        return None
    return tuple(i for i, name in enumerate(plane_names) if name not in hidden)


class ActorCritic(nn.Module):
    """Routed (two experts) or single-expert actor, and a critic, over (C, H, W) observations."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int = 4,
        experts: Sequence[str] = ("intended", "proxy"),
        hidden: int = 256,
        zero_biases: bool = False,
        gate_planes: Sequence[int] | None = None,
        gate_from_policy: bool = True,
    ):
        super().__init__()
        channels, height, width = obs_shape
        n_in = channels * height * width
        self.config = {"obs_shape": tuple(obs_shape), "n_actions": n_actions, "experts": tuple(experts), "hidden": hidden,
                       "zero_biases": zero_biases}
        gate = None
        if len(experts) == 2:
            gate_layers: list[nn.Module] = []
            gate_channels = channels
            if gate_planes is not None:
                self.config["gate_planes"] = tuple(gate_planes)
                gate_layers.append(SelectPlanes(gate_planes, channels))
                gate_channels = len(gate_planes)
            if not gate_from_policy:
                self.config["gate_from_policy"] = False
            gate = nn.Sequential(*gate_layers, nn.Conv2d(gate_channels, gate_channels, 1), nn.Flatten(),
                                 mlp([gate_channels * height * width, hidden, hidden, 1], relu_last=False))
        self.actor = RoutedMixture(
            {name: nn.Sequential(nn.Flatten(), mlp([n_in, hidden, hidden], relu_last=True)) for name in experts},
            head=nn.Linear(hidden, n_actions),
            gate=gate,
            detach_gate=not gate_from_policy,
        )
        self.register_load_state_dict_pre_hook(self._read_old_names)
        self.critic = nn.Sequential(
            nn.Conv2d(channels, 16, 1),
            nn.Flatten(),
            nn.Linear(16 * height * width, 256),
            nn.Linear(256, 32),
            nn.Linear(32, 1),
        )
        if zero_biases:
            with torch.no_grad():
                for name, parameter in self.named_parameters():
                    if name.endswith("bias"):
                        parameter.zero_()

    def forward(self, obs: torch.Tensor, labels: torch.Tensor | None = None) -> ActorCriticOutput:
        actor = self.actor(obs, labels)
        return ActorCriticOutput(actor.out, self.critic(obs).squeeze(-1), actor.gate, actor.gate_logit)

    @classmethod
    def from_config(cls, config: dict) -> ActorCritic:
        """The network a checkpoint's `network_config` describes (an old checkpoint's experts renamed)."""
        return cls(**{**config, "experts": tuple(modern_name(e) for e in config["experts"])})

    @staticmethod
    def _read_old_names(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
        """A load_state_dict pre-hook: parameters saved as `experts.diamond...` (before the generic
        vocabulary) load as `experts.intended...`."""
        for key in [k for k in state_dict if k.startswith(prefix) and modern_name(k) != k]:
            state_dict[modern_name(key)] = state_dict.pop(key)


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from the softmax of `logits` (B, actions) with `generator`, and their log
    probabilities (computed in float32 whatever the logits' type)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
    return actions, log_probs.gather(1, actions[:, None]).squeeze(1)
