"""Partial-oversight gridworlds: MiniGrid environments, their batched twins, and registration.

Importing this package registers the built-in environment ids with gymnasium:

- `OversightGrid/DiamondGhost-5x5-v0`, `OversightGrid/DiamondGhost-7x7-v0`: the reference task.
- `OversightGrid/DiamondGhost-Hidden-5x5-v0`: the agent cannot see which cells are overseen.
- `OversightGrid/DiamondGhost-Supervisor-5x5-v0`: a supervisor the agent sees watches whole episodes.
- `OversightGrid/DiamondGhost-Noisy-5x5-v0`: the overseer misjudges a fifth of the episodes it watches.
- `OversightGrid/TwoRooms-v0`: two rooms, two gems and two traps.
- `OversightGrid/DiamondGhost-Maze-7x7-v0`, `-9x9-v0`, `-13x13-v0`: DiamondGhost in mazes drawn
  each episode.
- `OversightGrid/AbsentSupervisor-v0`: a shortcut that costs only when a supervisor is present;
  `-Short-v0`, a smaller ring whose way round exploration finds.
- `OversightGrid/CheeseInCorner-7x7-v0`, `-9x9-v0`, `-13x13-v0`: mazes whose cheese is usually in
  the corner.
- `OversightGrid/KeysAndChests-7x7-v0` (open), `-9x9-v0` (walls): open the chest, or hoard the keys.
- `OversightGrid/Tampering-7x7-v0`: a button that makes the episode look successful;
  `Tampering-Blind-7x7-v0`: every ending on the diamond or the button looks the same.
- `OversightGrid/LavaCrossing-S9N1-v0`: a stock MiniGrid environment made partial-oversight by a
  wrapper (`register_partial_oversight`); no batched twin (`VectorOversightEnv` steps copies).

The 7x7 variants are the zoo's reference sizes: with the paper's network, naive training learns
them (and misgeneralizes) within a few million steps; the 9x9 and 13x13 ones need longer budgets
(docs/study.md, "Budget calibration").
"""

from oversight_env import stock
from oversight_env.absent_supervisor import AbsentSupervisorEnv
from oversight_env.batched import BatchedOversightEnv, TwinStep
from oversight_env.cheese_corner import CheeseInCornerEnv
from oversight_env.diamond_ghost import DiamondGhostEnv
from oversight_env.env_ids import import_env_module, resolve_env_id, short_name
from oversight_env.grid_env import OversightGridEnv
from oversight_env.keys_chests import KeysAndChestsEnv
from oversight_env.objects import TerminalObject
from oversight_env.registration import (
    make_batched,
    make_oversight_env,
    register_oversight_env,
)
from oversight_env.spec import (
    NEARER_LABELS,
    REWARDS,
    Action,
    EpisodeState,
    GridLayout,
    Outcome,
    OversightConfig,
    RandomWalls,
    TerminalType,
    TileType,
    WallGenerator,
)
from oversight_env.tampering import TamperingEnv
from oversight_env.two_rooms import TwoRoomsEnv
from oversight_env.wrappers import (
    PartialOversight,
    VectorOversightEnv,
    register_partial_oversight,
)

ZOO_ENV_IDS = (
    "OversightGrid/DiamondGhost-Maze-7x7-v0",
    "OversightGrid/DiamondGhost-Maze-9x9-v0",
    "OversightGrid/DiamondGhost-Maze-13x13-v0",
    "OversightGrid/AbsentSupervisor-v0",
    "OversightGrid/AbsentSupervisor-Short-v0",
    "OversightGrid/CheeseInCorner-7x7-v0",
    "OversightGrid/CheeseInCorner-9x9-v0",
    "OversightGrid/CheeseInCorner-13x13-v0",
    "OversightGrid/KeysAndChests-7x7-v0",
    "OversightGrid/KeysAndChests-9x9-v0",
    "OversightGrid/Tampering-7x7-v0",
    "OversightGrid/Tampering-Blind-7x7-v0",
)
WRAPPED_ENV_IDS = ("OversightGrid/LavaCrossing-S9N1-v0",)  # no batched twin
BUILTIN_ENV_IDS = (
    "OversightGrid/DiamondGhost-5x5-v0",
    "OversightGrid/DiamondGhost-7x7-v0",
    "OversightGrid/DiamondGhost-Hidden-5x5-v0",
    "OversightGrid/DiamondGhost-Supervisor-5x5-v0",
    "OversightGrid/DiamondGhost-Noisy-5x5-v0",
    "OversightGrid/Tampering-Fooled-7x7-v0",
    "OversightGrid/TwoRooms-v0",
    *ZOO_ENV_IDS,
)

register_oversight_env("OversightGrid/DiamondGhost-5x5-v0", DiamondGhostEnv, size=5)
register_oversight_env("OversightGrid/DiamondGhost-7x7-v0", DiamondGhostEnv, size=7)
register_oversight_env("OversightGrid/DiamondGhost-Hidden-5x5-v0", DiamondGhostEnv, size=5, observe_oversight=False)
register_oversight_env("OversightGrid/DiamondGhost-Supervisor-5x5-v0", DiamondGhostEnv, size=5, oversight_unit="episode")
register_oversight_env("OversightGrid/DiamondGhost-Noisy-5x5-v0", DiamondGhostEnv, size=5, label_noise=0.2)
register_oversight_env("OversightGrid/TwoRooms-v0", TwoRoomsEnv)
register_oversight_env("OversightGrid/DiamondGhost-Maze-7x7-v0", DiamondGhostEnv, size=7, wall_density=0.15, max_steps=32)
register_oversight_env("OversightGrid/DiamondGhost-Maze-9x9-v0", DiamondGhostEnv, size=9, wall_density=0.25, max_steps=48)
register_oversight_env("OversightGrid/DiamondGhost-Maze-13x13-v0", DiamondGhostEnv, size=13, wall_density=0.25, max_steps=64)
register_oversight_env("OversightGrid/AbsentSupervisor-v0", AbsentSupervisorEnv)
register_oversight_env("OversightGrid/AbsentSupervisor-Short-v0", AbsentSupervisorEnv, width=5, height=3)
register_oversight_env("OversightGrid/CheeseInCorner-7x7-v0", CheeseInCornerEnv, size=7, wall_density=0.15, max_steps=32)
register_oversight_env("OversightGrid/CheeseInCorner-9x9-v0", CheeseInCornerEnv, size=9, max_steps=48)
register_oversight_env("OversightGrid/CheeseInCorner-13x13-v0", CheeseInCornerEnv, size=13)
register_oversight_env("OversightGrid/KeysAndChests-7x7-v0", KeysAndChestsEnv, size=7, wall_density=0.0, max_steps=32)
register_oversight_env("OversightGrid/KeysAndChests-9x9-v0", KeysAndChestsEnv)
register_oversight_env("OversightGrid/Tampering-7x7-v0", TamperingEnv)
register_oversight_env("OversightGrid/Tampering-Blind-7x7-v0", TamperingEnv, blind_endings=True)
register_oversight_env("OversightGrid/Tampering-Fooled-7x7-v0", TamperingEnv, spoof_prob=0.5)
stock.register()

__all__ = [
    "BUILTIN_ENV_IDS",
    "DIAMOND",
    "GHOST",
    "NEARER_LABELS",
    "REWARDS",
    "WRAPPED_ENV_IDS",
    "ZOO_ENV_IDS",
    "AbsentSupervisorEnv",
    "Action",
    "BatchedOversightEnv",
    "CheeseInCornerEnv",
    "DiamondGhostEnv",
    "EpisodeState",
    "GridLayout",
    "KeysAndChestsEnv",
    "Outcome",
    "OversightConfig",
    "OversightGridEnv",
    "PartialOversight",
    "RandomWalls",
    "TamperingEnv",
    "TerminalObject",
    "TerminalType",
    "TileType",
    "TwinStep",
    "TwoRoomsEnv",
    "VectorOversightEnv",
    "WallGenerator",
    "import_env_module",
    "make_batched",
    "make_oversight_env",
    "register_oversight_env",
    "register_partial_oversight",
    "resolve_env_id",
    "short_name",
]
