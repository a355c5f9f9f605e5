"""A routed mixture of two named experts, its gate loss, and expert ablation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from routing.labels import UNLABELLED
from routing.masks import route


class MixtureOutput(NamedTuple):
    out: torch.Tensor  # the shared head's output
    gate: torch.Tensor  # (B,) weight of the first expert (1 with a single expert)
    gate_logit: torch.Tensor | None  # (B,) pre-sigmoid gate, None with a single expert


class RoutedMixture(nn.Module):
    """`head(g * first(x) + (1 - g) * second(x))` with `g = sigmoid(gate(x))`.

    With `labels` (one per sample), gradient routing decides what each sample may update:
    label 1 updates only the first expert (the second expert's output and the gate are detached),
    label 2 only the second, `UNLABELLED` (0) everything. The shared head always learns. The
    forward value is the same with or without labels.

    With `detach_gate` the gate's weight is detached from the output for every sample: the gate
    learns only from a loss on `gate_logit` (e.g. `gate_loss`), never from what the output is
    trained on.

    With one expert there is no gate (`g = 1`): the same code serves as the unrouted baseline.
    `ablated_expert` (set through `ablated(...)`) removes an expert: the gate is fixed to the other.
    """

    def __init__(self, experts: Mapping[str, nn.Module], head: nn.Module, gate: nn.Module | None = None,
                 detach_gate: bool = False):
        super().__init__()
        if len(experts) not in (1, 2):
            raise ValueError(f"experts={list(experts)} is invalid: expected one or two named experts")
        if (gate is None) != (len(experts) == 1):
            raise ValueError("gate is invalid: two experts need a gate, one expert takes none")
        self.experts = nn.ModuleDict(experts)
        self.gate = gate
        self.head = head
        self.detach_gate = detach_gate
        self.ablated_expert: str | None = None

    @property
    def expert_names(self) -> tuple[str, ...]:
        return tuple(self.experts)

    def frozen_for(self, label: int) -> list[nn.Parameter]:
        """The parameters a sample with `label` may not update under parameter-level routing (the
        counterpart of `forward`'s detaches): label k freezes the other expert and the gate;
        `UNLABELLED` freezes nothing."""
        if label == UNLABELLED or self.gate is None:
            return []
        if label not in (1, 2):
            raise ValueError(f"label={label} is invalid: expected {UNLABELLED}, 1 or 2")
        other = list(self.experts.values())[2 - label]
        return [*other.parameters(), *self.gate.parameters()]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> MixtureOutput:
        experts = list(self.experts.values())
        if self.gate is None:
            hidden = experts[0](x)
            ones = hidden.new_ones(hidden.shape[0])
            return MixtureOutput(self.head(hidden), ones, None)
        first, second = experts[0](x), experts[1](x)
        logit = self.gate(x).squeeze(-1)
        g = torch.sigmoid(logit)
        if self.ablated_expert is not None:
            g = torch.full_like(g, 1.0 if self.ablated_expert == self.expert_names[1] else 0.0)
        if labels is not None:
            first = route(first, labels != 2)
            second = route(second, labels != 1)
            g = route(g, labels == UNLABELLED)
        if self.detach_gate:
            g = g.detach()
        g2 = g.unsqueeze(-1)
        return MixtureOutput(self.head(g2 * first + (1 - g2) * second), g, logit)


def gate_loss(gate_logit: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the gate toward 1 for label-1 samples and 0 for label-2 samples,
    averaged over the labelled samples (0 when there are none, or no gate)."""
    labelled = labels != UNLABELLED
    if gate_logit is None or not bool(labelled.any()):
        return torch.zeros((), device=labels.device)
    target = (labels[labelled] == 1).to(gate_logit.dtype)
    return F.binary_cross_entropy_with_logits(gate_logit[labelled], target)


@contextmanager
def ablated(model: nn.Module, expert: str) -> Iterator[nn.Module]:
    """Within the block, every `RoutedMixture` in `model` runs without `expert`: its gate is
    fixed to the other expert. The model is changed in place and restored on exit; no copy."""
    mixtures = [m for m in model.modules() if isinstance(m, RoutedMixture)]
    if not mixtures or any(expert not in m.expert_names or m.gate is None for m in mixtures):
        names = sorted({n for m in mixtures for n in m.expert_names if m.gate is not None})
        raise ValueError(f"expert={expert!r} is invalid: the model's routed mixtures have experts {names}")
    previous = [m.ablated_expert for m in mixtures]
    for m in mixtures:
        m.ablated_expert = expert
    try:
        yield model
    finally:
        for m, p in zip(mixtures, previous):
            m.ablated_expert = p
