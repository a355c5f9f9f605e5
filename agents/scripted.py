"""Scripted policies: fixed behaviours to demonstrate environments and to bound learned agents.

Each policy maps (layout, state, rng) to an action. `nearest` walks a shortest path to the
closest terminal of any kind, the behaviour a misgeneralized agent shows when it ignores what the
overseer wants; `diamond` walks to the closest intended terminal, the behaviour the designer
wants; `random` picks uniformly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from oversight_env.spec import Action, EpisodeState, GridLayout, Outcome

Policy = Callable[[GridLayout, EpisodeState, np.random.Generator], int]


def nearest_terminal_action(
    layout: GridLayout, state: EpisodeState, rng: np.random.Generator, role: Outcome | None = None
) -> int:
    """A first step of a shortest path to the nearest terminal (of `role`, if given); ties are
    broken at random."""
    w = layout.width
    here = state.agent[1] * w + state.agent[0]
    targets = [
        y * w + x
        for (x, y), t in zip(state.objects, layout.object_types)
        if role is None or layout.terminals[t].outcome == role
    ]
    remaining = [min(_distance(layout, cell, target) for target in targets) for cell in layout.next_cell[here]]
    best = np.flatnonzero(np.array(remaining) == min(remaining))
    return int(rng.choice(best))


def _distance(layout: GridLayout, a: int, b: int) -> float:
    d = layout.distances[a, b]
    return float(d) if d >= 0 else np.inf


def random_action(layout: GridLayout, state: EpisodeState, rng: np.random.Generator) -> int:
    return int(rng.integers(len(Action)))


POLICIES: dict[str, Policy] = {
    "nearest": nearest_terminal_action,
    "diamond": lambda layout, state, rng: nearest_terminal_action(layout, state, rng, role=Outcome.DIAMOND),
    "random": random_action,
}
