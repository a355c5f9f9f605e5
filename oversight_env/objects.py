"""MiniGrid world objects for the spec's object types: terminals (what ends an episode) and tiles.

MiniGrid identifies object types through its `OBJECT_TO_IDX` / `IDX_TO_OBJECT` tables (a
`WorldObj` refuses a type it does not list, and the tile cache keys on the index), so every
terminal type is added to those tables before its first object is made.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import COLORS, IDX_TO_OBJECT, OBJECT_TO_IDX
from minigrid.core.world_object import WorldObj
from minigrid.utils.rendering import (
    fill_coords,
    point_in_circle,
    point_in_line,
    point_in_rect,
    point_in_triangle,
)

from oversight_env.spec import TerminalType, TileType, invalid_argument


def register_object_type(name: str) -> int:
    """Add `name` to MiniGrid's object-type tables (idempotent) and return its index."""
    if name not in OBJECT_TO_IDX:
        index = max(OBJECT_TO_IDX.values()) + 1
        OBJECT_TO_IDX[name] = index
        IDX_TO_OBJECT[index] = name
    return OBJECT_TO_IDX[name]


class TerminalObject(WorldObj):
    """An object of a `TerminalType` or a `TileType` (the name is older than tiles): the agent can
    step onto it; what entering it does is the spec's (`oversight_env.spec`, rule 3).

    Intended terminals are drawn as a diamond, proxy terminals as a ghost, chests as a box, keys
    as MiniGrid's key, other tiles as a square with a cross, in the color of their type; an
    invisible type (no observation plane) is drawn faintly. Subclass and override `render` to draw
    your own.
    """

    def __init__(self, terminal: TerminalType | TileType):
        if terminal.color not in COLORS:
            raise invalid_argument("color", terminal.color, f"expected a MiniGrid color, one of {sorted(COLORS)}")
        register_object_type(terminal.name)
        super().__init__(terminal.name, terminal.color)
        self.terminal = terminal  # the object's type

    def can_overlap(self) -> bool:
        return True

    def render(self, img: np.ndarray) -> None:
        kind = self.terminal
        color = COLORS[self.color] if kind.visible else COLORS[self.color] // 3
        if isinstance(kind, TileType):
            if kind.key:
                fill_coords(img, point_in_rect(0.50, 0.63, 0.31, 0.88), color)  # shaft, teeth, ring
                fill_coords(img, point_in_rect(0.38, 0.50, 0.59, 0.66), color)
                fill_coords(img, point_in_rect(0.38, 0.50, 0.81, 0.88), color)
                fill_coords(img, point_in_circle(0.56, 0.28, 0.19), color)
                fill_coords(img, point_in_circle(0.56, 0.28, 0.064), (0, 0, 0))
            else:
                fill_coords(img, point_in_rect(0.08, 0.92, 0.08, 0.92), color)
                fill_coords(img, point_in_line(0.2, 0.2, 0.8, 0.8, 0.05), (0, 0, 0))
                fill_coords(img, point_in_line(0.2, 0.8, 0.8, 0.2, 0.05), (0, 0, 0))
        elif kind.needs_key:
            fill_coords(img, point_in_rect(0.12, 0.88, 0.3, 0.88), color)  # a chest with its lid
            fill_coords(img, point_in_rect(0.18, 0.82, 0.36, 0.82), (0, 0, 0))
            fill_coords(img, point_in_rect(0.12, 0.88, 0.5, 0.56), color)
            fill_coords(img, point_in_rect(0.45, 0.55, 0.5, 0.66), color)
        elif kind.intended:
            fill_coords(img, point_in_triangle((0.5, 0.12), (0.85, 0.45), (0.15, 0.45)), color)
            fill_coords(img, point_in_triangle((0.15, 0.45), (0.85, 0.45), (0.5, 0.88)), color)
        else:
            fill_coords(img, point_in_circle(0.5, 0.42, 0.3), color)
            fill_coords(img, point_in_rect(0.2, 0.8, 0.42, 0.82), color)
            for x in (0.2, 0.4, 0.6):  # the ragged hem
                fill_coords(img, point_in_triangle((x, 0.88), (x + 0.1, 0.78), (x + 0.2, 0.88)), color)
            for x in (0.38, 0.62):  # eyes
                fill_coords(img, point_in_circle(x, 0.4, 0.08), (255, 255, 255))
                fill_coords(img, point_in_circle(x, 0.42, 0.04), (0, 0, 0))
