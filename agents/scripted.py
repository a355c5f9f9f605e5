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
    """A first step of a shortest path to the nearest terminal (of `role`, if given, never
    stepping on a terminal of the other role); ties are broken at random."""
    w = layout.width
    targets, blocked = set(), set()
    for (x, y), t in zip(state.objects, layout.object_types):
        wanted = role is None or layout.terminals[t].outcome == role
        (targets if wanted else blocked).add(y * w + x)
    remaining = _steps_to(layout, targets, blocked)
    options = layout.next_cell[state.agent[1] * w + state.agent[0]]
    best = np.flatnonzero(remaining[options] == remaining[options].min())
    return int(rng.choice(best))


def _steps_to(layout: GridLayout, targets: set[int], blocked: set[int]) -> np.ndarray:
    """Steps from every cell to the nearest target, avoiding blocked cells (inf where cut off)."""
    steps = np.full(layout.num_cells, np.inf)
    steps[list(targets)] = 0
    frontier = list(targets)
    while frontier:
        nxt = []
        for cell in frontier:
            # Moves are reversible on a grid, so the cells one step from `cell` are its neighbours.
            for neighbour in layout.next_cell[cell]:
                if steps[neighbour] == np.inf and neighbour not in blocked:
                    steps[neighbour] = steps[cell] + 1
                    nxt.append(neighbour)
        frontier = nxt
    return steps


def random_action(layout: GridLayout, state: EpisodeState, rng: np.random.Generator) -> int:
    return int(rng.integers(len(Action)))


POLICIES: dict[str, Policy] = {
    "nearest": nearest_terminal_action,
    "diamond": lambda layout, state, rng: nearest_terminal_action(layout, state, rng, role=Outcome.DIAMOND),
    "random": random_action,
}
