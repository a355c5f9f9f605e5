"""`OversightGridEnv`: the MiniGrid implementation of the partial-oversight rules in `spec.py`.

One class serves every layout: a `GridLayout` says where walls are and which terminal objects to
place; the class places them with MiniGrid's own sampling, moves the agent through MiniGrid's
grid, and reports every episode's outcome and oversight in `info`. Environments such as
`DiamondGhostEnv` are small subclasses that choose a layout.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any, SupportsFloat

import numpy as np
from gymnasium import spaces
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Wall
from minigrid.minigrid_env import MiniGridEnv

from oversight_env.objects import TerminalObject
from oversight_env.spec import (
    MOVES,
    NEARER_LABELS,
    Action,
    EpisodeState,
    GridLayout,
    Outcome,
    OversightConfig,
    invalid_argument,
    nearer,
    render_text,
    reward,
    role_overseen,
)

# The MiniGridEnv arguments a caller may pass on (see OversightGridEnv's **kwargs); the others
# (grid size, step limit, mission) are set from the layout and the config.
_MINIGRID_KWARGS = ("tile_size", "screen_size", "highlight")

# MiniGrid's agent_dir (0 right, 1 down, 2 left, 3 up) after each of our actions, for rendering.
_ACTION_TO_DIR = {Action.UP: 3, Action.RIGHT: 0, Action.DOWN: 1, Action.LEFT: 2}


class OversightGridEnv(MiniGridEnv):
    """A gridworld whose terminal objects are each overseen with some probability.

    Args:
        layout: walls and terminal objects (see `GridLayout`).
        oversight_prob: probability that a terminal object's cell is overseen, one number or a
            mapping from terminal type name to probability.
        spurious_oversight_prob: probability that any other free cell is overseen.
        max_steps: the episode is truncated after this many steps.
        reward: the reward returned by `step`: "naive" (what a partial overseer pays, default),
            "true" or "outcome"; see `spec.REWARDS`. `info["true_reward"]` always has the truth.
        observe_oversight: whether the observation includes the oversight map.
        render_mode: None, "rgb_array", "human" or "ansi" (text).
        **kwargs: passed to `MiniGridEnv` (tile_size, screen_size, highlight).

    Info: every step's info has `outcome` ("diamond", "ghost" or "none" while the episode runs
    or when it is truncated), `overseen` (the episode ended on an overseen terminal),
    `true_reward`, `terminal` (name of the terminal type reached, or None), and the episode's
    facts at reset, also in the reset info: `nearer` ("diamond", "ghost" or "tie": which role's
    nearest terminal was closer to the agent), `diamond_overseen` and `ghost_overseen` (whether
    any terminal of that role was overseen).

    Reset options: `{"state": EpisodeState}` starts the episode from that exact state.
    """

    metadata = {"render_modes": ["human", "rgb_array", "ansi"], "render_fps": 10}

    def __init__(
        self,
        layout: GridLayout,
        oversight_prob: float | dict[str, float] = 0.1,
        spurious_oversight_prob: float = 0.0,
        max_steps: int = 32,
        reward: str = "naive",
        observe_oversight: bool = True,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(layout, GridLayout):
            raise invalid_argument("layout", layout, "expected a GridLayout")
        self._check_minigrid_kwargs(kwargs)
        self.config = OversightConfig(oversight_prob, spurious_oversight_prob, max_steps, reward, observe_oversight)
        self.config.check_layout(layout)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise invalid_argument("render_mode", render_mode, f"expected None or one of {self.metadata['render_modes']}")
        self.layout = layout
        # Making one object of each type checks its color and teaches MiniGrid its type name.
        for terminal in layout.terminals:
            TerminalObject(terminal)
        intended = " or ".join(t.name for t in layout.terminals if t.intended) or "nothing"
        mission = f"reach a {intended}"
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: mission),
            width=layout.width + 2,  # MiniGrid draws an outer wall around the layout
            height=layout.height + 2,
            max_steps=self.config.max_steps,
            see_through_walls=True,
            render_mode=render_mode,
            **kwargs,
        )
        self.action_space = spaces.Discrete(len(Action))
        self.plane_names = layout.plane_names(self.config.observe_oversight)
        self.observation_space = spaces.Box(
            0.0, 1.0, shape=(len(self.plane_names), layout.height, layout.width), dtype=np.float32
        )
        self._requested_state: EpisodeState | None = None
        self._static_planes: np.ndarray | None = None
        self._facts: dict[str, Any] | None = None  # set by reset(): None means no episode yet

    @classmethod
    def accepted_kwargs(cls) -> list[str]:
        """The keyword arguments this class takes: its own, its parents' up to this class, and
        the `MiniGridEnv` arguments it passes on."""
        names: set[str] = set(_MINIGRID_KWARGS)
        for klass in cls.__mro__[: cls.__mro__.index(OversightGridEnv) + 1]:
            names |= {
                p.name for p in inspect.signature(klass.__init__).parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            }
        if cls is not OversightGridEnv:
            names.discard("layout")  # a subclass chooses its own layout
        return sorted(names)

    def _check_minigrid_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Refuse keyword arguments that MiniGridEnv would not take (or that this class sets
        itself) with one line, instead of MiniGrid's TypeError."""
        unknown = sorted(set(kwargs) - set(_MINIGRID_KWARGS))
        if unknown:
            raise invalid_argument(
                unknown[0], kwargs[unknown[0]],
                f"{type(self).__name__} takes no such keyword argument; expected one of {type(self).accepted_kwargs()}",
            )
        for name in ("tile_size", "screen_size"):
            value = kwargs.get(name, 1)
            if (name != "screen_size" or value is not None) and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
            ):
                raise invalid_argument(name, value, "expected an integer >= 1 (pixels)")
        if not isinstance(kwargs.get("highlight", True), (bool, np.bool_)):
            raise invalid_argument("highlight", kwargs["highlight"], "expected True or False")

    # ------------------------------------------------------------------ episode generation
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        state = options.pop("state", None)
        if options:
            raise invalid_argument("options", sorted(options), 'expected no options other than "state"')
        if state is not None:
            if not isinstance(state, EpisodeState):
                raise invalid_argument("options['state']", state, "expected an EpisodeState")
            state.check(self.layout)
        self._requested_state = state
        obs, _ = super().reset(seed=seed)
        self._requested_state = None
        start = self.state
        self._facts = {
            "nearer": NEARER_LABELS[nearer(self.layout, start)],
            "diamond_overseen": role_overseen(self.layout, start, Outcome.DIAMOND),
            "ghost_overseen": role_overseen(self.layout, start, Outcome.GHOST),
        }
        return obs, dict(self._facts)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        for y, x in zip(*np.nonzero(self.layout.walls)):
            self.grid.set(int(x) + 1, int(y) + 1, Wall())
        self.objects = [TerminalObject(self.layout.terminals[t]) for t in self.layout.object_types]
        state = self._requested_state
        if state is None:
            self.place_agent(rand_dir=False)
            for obj in self.objects:
                self.place_obj(obj)
            probs = self.overseen_probs()
            self.overseen = self.np_random.random(probs.shape) < probs
        else:
            self.agent_pos = (state.agent[0] + 1, state.agent[1] + 1)
            for obj, (x, y) in zip(self.objects, state.objects):
                self.put_obj(obj, x + 1, y + 1)
            self.overseen = np.array(state.overseen, dtype=bool)
        self.agent_dir = _ACTION_TO_DIR[Action.UP]
        self._static_planes = None

    def overseen_probs(self) -> np.ndarray:
        """Float (H, W): the probability that each cell is overseen, given the objects placed."""
        probs = np.where(self.layout.walls, 0.0, self.config.spurious_oversight_prob)
        for obj in self.objects:
            x, y = obj.cur_pos
            probs[y - 1, x - 1] = self.config.prob_for(obj.terminal)
        return probs

    @property
    def state(self) -> EpisodeState:
        """The current episode's state, in layout coordinates."""
        ax, ay = self.agent_pos
        return EpisodeState(
            agent=(int(ax) - 1, int(ay) - 1),
            objects=tuple((int(o.cur_pos[0]) - 1, int(o.cur_pos[1]) - 1) for o in self.objects),
            overseen=self.overseen.copy(),
            step_count=self.step_count,
        )

    # ------------------------------------------------------------------ dynamics
    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._facts is None:
            raise invalid_argument("action", action, "no episode has started: call reset() before step()")
        action = self._check_action(action)
        self.step_count += 1
        dx, dy = MOVES[action]
        ax, ay = self.agent_pos
        target = (ax + dx, ay + dy)
        cell = self.grid.get(*target)
        if cell is None or cell.can_overlap():
            self.agent_pos = target
        self.agent_dir = _ACTION_TO_DIR[action]

        here = self.grid.get(*self.agent_pos)
        terminated = isinstance(here, TerminalObject)
        outcome = here.terminal.outcome if terminated else Outcome.NONE
        overseen = terminated and bool(self.overseen[self.agent_pos[1] - 1, self.agent_pos[0] - 1])
        truncated = not terminated and self.step_count >= self.max_steps
        info = {
            "outcome": outcome.label,
            "overseen": overseen,
            "true_reward": reward("true", outcome, overseen),
            "terminal": here.type if terminated else None,
            **self._facts,
        }
        if self.render_mode == "human":
            self.render()
        return self.gen_obs(), reward(self.config.reward, outcome, overseen), terminated, truncated, info

    def _check_action(self, action: Any) -> Action:
        try:
            if isinstance(action, (bool, np.bool_)):
                raise TypeError
            index = operator.index(action)
        except TypeError:
            index = None
        if index is None or not 0 <= index < len(Action):
            raise invalid_argument("action", action, f"expected an integer in [0, {len(Action)}): 0 up, 1 right, 2 down, 3 left")
        return Action(index)

    # ------------------------------------------------------------------ observation
    def gen_obs(self) -> np.ndarray:
        if self._static_planes is None:
            self._static_planes = self._observe_static()
        obs = self._static_planes.copy()
        ax, ay = self.agent_pos
        obs[0, ay - 1, ax - 1] = 1.0
        return obs

    def _observe_static(self) -> np.ndarray:
        """The planes that stay fixed during an episode, read off MiniGrid's grid."""
        planes = np.zeros(self.observation_space.shape, dtype=np.float32)
        plane_of = {name: i for i, name in enumerate(self.plane_names)}
        for y in range(self.layout.height):
            for x in range(self.layout.width):
                cell = self.grid.get(x + 1, y + 1)
                if cell is not None:
                    planes[plane_of[cell.type], y, x] = 1.0
        if "oversight" in plane_of:
            planes[plane_of["oversight"]] = self.overseen
        return planes

    # ------------------------------------------------------------------ rendering
    def get_full_render(self, highlight: bool, tile_size: int) -> np.ndarray:
        """The whole grid, with overseen cells highlighted (instead of MiniGrid's agent view)."""
        mask = np.zeros((self.width, self.height), dtype=bool)
        mask[1:-1, 1:-1] = self.overseen.T
        return self.grid.render(tile_size, self.agent_pos, self.agent_dir, highlight_mask=mask if highlight else None)

    def render(self) -> np.ndarray | str | None:
        if self.render_mode == "ansi":
            return render_text(self.layout, self.state)
        return super().render()

    def pprint_grid(self) -> str:
        return render_text(self.layout, self.state)
