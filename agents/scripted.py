"""Scripted policies: fixed behaviours to demonstrate environments and to bound learned agents.

Each policy maps (layout, state, rng) to an action. `nearest` walks a shortest path to the
closest terminal of any kind, the behaviour a misgeneralized agent shows when it ignores what the
overseer wants; `intended` walks to the closest intended terminal, never stepping on a proxy
object (a proxy, a punishment tile), the behaviour the designer wants; `random` picks uniformly.
Both walkers fetch a key first when the only terminal left is a chest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from oversight_env.spec import Action, EpisodeState, GridLayout, Outcome, TileType, next_cells

Policy = Callable[[GridLayout, EpisodeState, np.random.Generator], int]


def nearest_terminal_action(
    layout: GridLayout, state: EpisodeState, rng: np.random.Generator, role: Outcome | None = None
) -> int:
    """A first step of a shortest path to the nearest terminal the agent can enter now (of `role`,
    if given, never stepping on an object of the other role), or, when there is none (a chest and
    no key), to the nearest key; ties are broken at random. Paths follow the episode's walls."""
    w = layout.width
    last_key = layout.hoard is not None and state.keys + 1 >= layout.hoard  # the next key ends the episode: a hoard
    enterable, keys, blocked = set(), set(), set()
    for cell, t in zip(state.objects, layout.object_types):
        if cell is None:
            continue
        kind, flat = layout.object_kinds[t], cell[1] * w + cell[0]
        key = isinstance(kind, TileType) and kind.key
        ends = kind.terminal or (key and last_key)
        # An ending of the other role, or a proxy tile, is avoided; a key that ends nothing is an instrument.
        if role is not None and (ends or not key) and layout.role(kind) not in (role, Outcome.NONE):
            blocked.add(flat)
        elif ends and (not kind.terminal or not kind.needs_key or state.keys > 0):
            enterable.add(flat)
        elif key:
            keys.add(flat)
    table = next_cells(state.episode_walls(layout)) if state.walls is not None else layout.next_cell
    remaining = _steps_to(table, enterable or keys, blocked)
    options = table[state.agent[1] * w + state.agent[0]]
    best = np.flatnonzero(remaining[options] == remaining[options].min())
    return int(rng.choice(best))


def _steps_to(table: np.ndarray, targets: set[int], blocked: set[int]) -> np.ndarray:
    """Steps from every cell to the nearest target, avoiding blocked cells (inf where cut off)."""
    steps = np.full(len(table), np.inf)
    steps[list(targets)] = 0
    frontier = list(targets)
    while frontier:
        nxt = []
        for cell in frontier:
            # Moves are reversible on a grid, so the cells one step from `cell` are its neighbours.
            for neighbour in table[cell]:
                if steps[neighbour] == np.inf and neighbour not in blocked:
                    steps[neighbour] = steps[cell] + 1
                    nxt.append(neighbour)
        frontier = nxt
    return steps


def random_action(layout: GridLayout, state: EpisodeState, rng: np.random.Generator) -> int:
    return int(rng.integers(len(Action)))


POLICIES: dict[str, Policy] = {
    "nearest": nearest_terminal_action,
    "intended": lambda layout, state, rng: nearest_terminal_action(layout, state, rng, role=Outcome.INTENDED),
    "random": random_action,
}
