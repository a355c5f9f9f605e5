"""Partial-oversight gridworlds: MiniGrid environments, their batched twins, and registration.

Importing this package registers the built-in environment ids with gymnasium:

- `OversightGrid/DiamondGhost-5x5-v0`, `OversightGrid/DiamondGhost-7x7-v0`: the reference task.
- `OversightGrid/DiamondGhost-Hidden-5x5-v0`: the agent cannot see which cells are overseen.
- `OversightGrid/TwoRooms-v0`: two rooms, two gems and two traps.
"""

from oversight_env.batched import BatchedOversightEnv, TwinStep
from oversight_env.diamond_ghost import DiamondGhostEnv
from oversight_env.grid_env import OversightGridEnv
from oversight_env.objects import TerminalObject
from oversight_env.registration import (
    make_batched,
    make_oversight_env,
    register_oversight_env,
)
from oversight_env.spec import (
    DIAMOND,
    GHOST,
    NEARER_LABELS,
    REWARDS,
    Action,
    EpisodeState,
    GridLayout,
    Outcome,
    OversightConfig,
    TerminalType,
)
from oversight_env.two_rooms import TwoRoomsEnv

BUILTIN_ENV_IDS = (
    "OversightGrid/DiamondGhost-5x5-v0",
    "OversightGrid/DiamondGhost-7x7-v0",
    "OversightGrid/DiamondGhost-Hidden-5x5-v0",
    "OversightGrid/TwoRooms-v0",
)

register_oversight_env("OversightGrid/DiamondGhost-5x5-v0", DiamondGhostEnv, size=5)
register_oversight_env("OversightGrid/DiamondGhost-7x7-v0", DiamondGhostEnv, size=7)
register_oversight_env("OversightGrid/DiamondGhost-Hidden-5x5-v0", DiamondGhostEnv, size=5, observe_oversight=False)
register_oversight_env("OversightGrid/TwoRooms-v0", TwoRoomsEnv)

__all__ = [
    "BUILTIN_ENV_IDS",
    "DIAMOND",
    "GHOST",
    "NEARER_LABELS",
    "REWARDS",
    "Action",
    "BatchedOversightEnv",
    "DiamondGhostEnv",
    "EpisodeState",
    "GridLayout",
    "Outcome",
    "OversightConfig",
    "OversightGridEnv",
    "TerminalObject",
    "TerminalType",
    "TwinStep",
    "TwoRoomsEnv",
    "make_batched",
    "make_oversight_env",
    "register_oversight_env",
]
