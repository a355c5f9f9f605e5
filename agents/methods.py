"""The methods a study compares, by name: everything that differs between them, in one place.

A trainer never branches on a method's name; it asks the method which network to build, which
reward to train on, how to label and weight samples, how long to train, and which variant of
the policy to evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from routing import UNLABELLED

ROUTED = ("diamond", "ghost")
SINGLE = ("diamond",)

#: Routing labels and their names: unlabelled, then one per expert of ROUTED (label k = expert k).
ROUTES = ((UNLABELLED, "unlabelled"), (1, "diamond"), (2, "ghost"))


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    experts: tuple[str, ...]  # ROUTED: the two-expert mixture; SINGLE: one network
    reward: str  # the environment reward trained on
    route: bool = False  # labelled samples update only their expert
    gate_loss: bool = False  # train the gate toward labelled samples' experts
    filter_unobserved: bool = False  # train only on episodes known to be overseen or to reach no terminal
    evaluate_without: str | None = None  # the expert ablated in the evaluated policy
    label_budget_only: bool = False  # train only for as many steps as the oversight budget labels
    early_stopping: bool = False  # keep the checkpoint best on held-out labelled episodes

    @property
    def uses_labels(self) -> bool:
        return self.route or self.gate_loss

    def episode_labels(self, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        """The routing label of finished episodes: their outcome (1 diamond, 2 ghost, which are
        the experts' positions) where overseen, `UNLABELLED` otherwise."""
        return torch.where(overseen, outcome, UNLABELLED)

    def episode_kept(self, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        """Code of finished episodes for filtering: 1 kept (overseen, or no terminal reached),
        2 dropped (reached a terminal unobserved). Steps whose episode has not ended get 0: dropped."""
        return torch.where(overseen | (outcome == 0), 1, 2)

    def training_steps(self, steps: int, oversight_prob: float) -> int:
        """Environment steps this method trains for in a comparison with a budget of `steps`."""
        return max(1, round(steps * oversight_prob)) if self.label_budget_only else steps


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "routing",
            "Gradient routing (the paper's method). A mixture of a diamond and a ghost expert, trained on the "
            "`outcome` reward (+1 for either terminal). Steps of overseen episodes update only the expert of the "
            "terminal reached (and train the gate toward it); all other steps update everything. Evaluated with "
            "the ghost expert ablated: the gate fixed to the diamond expert.",
            ROUTED, "outcome", route=True, gate_loss=True, evaluate_without="ghost",
        ),
        Method(
            "routing_no_gate_loss",
            "Control: `routing` without the gate loss. Labelled samples are still routed to their expert, but "
            "nothing teaches the gate which expert is which. Evaluated with the ghost expert ablated.",
            ROUTED, "outcome", route=True, evaluate_without="ghost",
        ),
        Method(
            "moe_no_routing",
            "Control: `routing` without gradient routing. The same mixture and gate loss, but every sample "
            "updates every expert, so the experts have no reason to specialize. Evaluated with the ghost expert "
            "ablated, like `routing`.",
            ROUTED, "outcome", gate_loss=True, evaluate_without="ghost",
        ),
        Method(
            "naive",
            "Baseline: a single network trained on the `naive` proxy reward, what a partial overseer pays: +1 for "
            "either terminal, -1 for an overseen ghost. It learns to take the ghost when unobserved.",
            SINGLE, "naive",
        ),
        Method(
            "filtering",
            "Baseline: a single network trained on the `true` reward, but only on episodes whose true reward the "
            "overseer knows: overseen ones and those that reached no terminal. Other steps are dropped, and the loss "
            "is scaled by the kept fraction, as in the paper. Steps whose episode has not ended when the update comes "
            "are dropped too (the paper kept them; their reward was unknown).",
            SINGLE, "true", filter_unobserved=True,
        ),
        Method(
            "oracle",
            "Reference: a single network trained on the `true` reward of every episode, but only for as many "
            "steps as the oversight budget labels (oversight_prob x the comparison's steps): the same number of "
            "labelled episodes as the other methods get.",
            SINGLE, "true", label_budget_only=True,
        ),
        Method(
            "naive_early_stopping",
            "Baseline: `naive` with early stopping. A quarter of the oversight budget is held out: training sees "
            "oversight with 3/4 of the probability, and the held-out labels score the policy's true return on "
            "fresh episodes at every evaluation; the best-scoring checkpoint is the result. Answers the critique "
            "that naive training with early stopping matches routing, with the same labelling budget.",
            SINGLE, "naive", early_stopping=True,
        ),
    ]
}

#: Share of the oversight budget that `naive_early_stopping` holds out for validation.
EARLY_STOPPING_HOLDOUT = 0.25


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method={name!r} is invalid: expected one of {sorted(METHODS)}")
    return METHODS[name]
