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
import torch
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
    TileType,
    invalid_argument,
    nearer,
    region_mask,
    render_text,
    reward,
    role_overseen,
    shortest_steps,
    verdict,
)

# The MiniGridEnv arguments a caller may pass on (see OversightGridEnv's **kwargs); the others
# (grid size, step limit, mission) are set from the layout and the config.
_MINIGRID_KWARGS = ("tile_size", "screen_size", "highlight")

# MiniGrid's agent_dir (0 right, 1 down, 2 left, 3 up) after each of our actions, for rendering.
_ACTION_TO_DIR = {Action.UP: 3, Action.RIGHT: 0, Action.DOWN: 1, Action.LEFT: 2}


class OversightGridEnv(MiniGridEnv):
    """A gridworld whose objects are overseen with some probability (the rules: `oversight_env.spec`).

    Args:
        layout: walls and objects (see `GridLayout`).
        oversight_prob: per cell, the probability that an object's cell is overseen, one number
            or a mapping from object type name to probability; per episode, the probability that
            a supervisor is present.
        spurious_oversight_prob: probability that any other free cell is overseen (per cell only).
        max_steps: the episode is truncated after this many steps.
        reward: the reward returned by `step`: "naive" (what a partial overseer pays, default),
            "true" or "outcome"; see `spec.REWARDS`. `info["true_reward"]` always has the truth.
        observe_oversight: whether the observation includes the oversight map.
        oversight_unit: "cell" (default: each cell overseen on its own) or "episode" (a supervisor
            oversees every cell or none).
        placement: "train" (default: object types' regions apply) or "test" (the regions of
            `shifted` object types do not: a distribution shift).
        label_noise: the probability that the overseer misjudges an episode: on an overseen
            ending it then reports, and pays for, the other role (spec rules 2, 4, 5).
        spoof_prob: the probability that an ending on a terminal that spoofs fools an overseer
            who watches it: it then reports, and pays for, success (spec rules 2, 4, 5).
        render_mode: None, "rgb_array", "human" or "ansi" (text).
        **kwargs: passed to `MiniGridEnv` (tile_size, screen_size, highlight).

    Info: every step's info has `outcome` ("intended", "proxy" or "none" while the episode runs
    or when it is truncated), `reported` (the overseer's verdict: the outcome, but on an overseen
    episode it misjudges, or whose spoof fools it, what it believes), `overseen` (the episode ended
    on an overseen cell),
    `true_reward` (of this step), `terminal` (name of the object type whose entering ended the
    episode, or None), and the episode's facts at reset, also in the reset info: `nearer`
    ("intended", "proxy" or "tie": which role's nearest object was closer to the agent),
    `intended_overseen` and `proxy_overseen` (whether any object of that role was overseen).

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
        oversight_unit: str = "cell",
        placement: str = "train",
        label_noise: float = 0.0,
        spoof_prob: float = 0.0,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(layout, GridLayout):
            raise invalid_argument("layout", layout, "expected a GridLayout")
        self._check_minigrid_kwargs(kwargs)
        self.config = OversightConfig(oversight_prob, spurious_oversight_prob, max_steps, reward, observe_oversight,
                                      oversight_unit, placement, label_noise, spoof_prob)
        self.config.check_layout(layout)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise invalid_argument("render_mode", render_mode, f"expected None or one of {self.metadata['render_modes']}")
        self.layout = layout
        # Making one object of each type checks its color and teaches MiniGrid its type name.
        for kind in layout.object_kinds:
            TerminalObject(kind)
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
        self._ending_frame = layout.ending_frame(self.plane_names) if layout.blind_endings else None  # spec rule 6
        self.observation_space = spaces.Box(
            0.0, 1.0, shape=(len(self.plane_names), layout.height, layout.width), dtype=np.float32
        )
        self._agent_region = region_mask(layout.agent_region, layout.height, layout.width)
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
            "intended_overseen": role_overseen(self.layout, start, Outcome.INTENDED),
            "proxy_overseen": role_overseen(self.layout, start, Outcome.PROXY),
        }
        return obs, dict(self._facts)

    _MAX_REDRAWS = 100  # as the twin's

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        layout, state = self.layout, self._requested_state
        self.objects = [TerminalObject(layout.object_kinds[t]) for t in layout.object_types]
        self.present = [True] * len(self.objects)
        self.keys, self.marked, self.misjudged, self.fooled = 0, False, False, False
        if state is not None:
            self.walls = state.episode_walls(layout).copy()
            self._put_walls()
            self.agent_pos = (state.agent[0] + 1, state.agent[1] + 1)
            for i, (obj, cell) in enumerate(zip(self.objects, state.objects)):
                if cell is None:
                    self.present[i] = False
                else:
                    self.put_obj(obj, cell[0] + 1, cell[1] + 1)
            self.overseen = np.array(state.overseen, dtype=bool)
            self.keys, self.marked, self.misjudged, self.fooled = state.keys, state.marked, state.misjudged, state.fooled
        elif layout.simple:  # the draws of earlier versions, so their seeds give the same episodes
            self.walls = layout.walls.copy()
            self._put_walls()
            self.place_agent(rand_dir=False)
            for obj in self.objects:
                self.place_obj(obj)
            self._draw_oversight()
        else:
            self._draw_episode()
        self.agent_dir = _ACTION_TO_DIR[Action.UP]
        self._static_planes = None

    def _put_walls(self) -> None:
        for y, x in zip(*np.nonzero(self.walls)):
            self.grid.set(int(x) + 1, int(y) + 1, Wall())

    def _draw_episode(self) -> None:
        """Spec rule 1: the episode's walls, the agent and the objects, then its oversight."""
        layout, rng = self.layout, self.np_random
        for _ in range(self._MAX_REDRAWS):
            walls = layout.walls
            if layout.procedural:  # the generator draws in torch, from a stream seeded by this env's
                generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
                walls = layout.walls_generator.sample(torch.as_tensor(walls)[None], generator)[0].numpy() | walls
            starts = np.flatnonzero(~walls & self._agent_region)
            if not len(starts):
                continue
            agent = int(rng.choice(starts))
            reachable = (shortest_steps(walls, agent) >= 0).reshape(walls.shape)
            pinned = layout.pinned_regions(self.config.placement)
            if reachable.sum() >= 1 + layout.num_objects and all(
                (reachable & region_mask(region, layout.height, layout.width)).any() for region in pinned
            ):
                break
        else:
            raise invalid_argument("walls_generator", layout.walls_generator, f"{self._MAX_REDRAWS} draws in a row left "
                                   f"no room for the agent and the {layout.num_objects} objects (spec rule 1): fewer walls")
        self.walls = walls | ~reachable
        self._put_walls()
        self.agent_pos = (agent % layout.width + 1, agent // layout.width + 1)
        taken = np.zeros_like(reachable)
        taken.flat[agent] = True
        for obj in self.objects:
            allowed = reachable & ~taken
            kind = obj.terminal
            if kind.region is not None and not (kind.shifted and self.config.placement == "test"):
                inside = allowed & region_mask(kind.region, layout.height, layout.width)
                if rng.random() < kind.region_prob and inside.any():
                    allowed = inside
            cell = int(rng.choice(np.flatnonzero(allowed)))
            taken.flat[cell] = True
            self.put_obj(obj, cell % layout.width + 1, cell // layout.width + 1)
        self._draw_oversight()

    def _draw_oversight(self) -> None:
        """Spec rule 2 (no draw for the misjudgement without label noise, none for the spoof
        without `spoof_prob`: the streams of earlier versions stay as they were)."""
        if self.config.oversight_unit == "episode":
            self.overseen = ~self.walls & (self.np_random.random() < self.config.oversight_prob)
        else:
            probs = self.overseen_probs()
            self.overseen = self.np_random.random(probs.shape) < probs
        self.misjudged = bool(self.config.label_noise) and bool(self.np_random.random() < self.config.label_noise)
        self.fooled = bool(self.config.spoof_prob) and bool(self.np_random.random() < self.config.spoof_prob)

    def overseen_probs(self) -> np.ndarray:
        """Float (H, W): the probability that each cell is overseen, given the objects placed
        (per-cell oversight)."""
        probs = np.where(self.walls, 0.0, self.config.spurious_oversight_prob)
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
            objects=tuple((int(o.cur_pos[0]) - 1, int(o.cur_pos[1]) - 1) if present else None
                          for o, present in zip(self.objects, self.present)),
            overseen=self.overseen.copy(),
            step_count=self.step_count,
            walls=self.walls.copy() if self.layout.procedural else None,
            keys=self.keys,
            marked=self.marked,
            misjudged=self.misjudged,
            fooled=self.fooled,
        )

    # ------------------------------------------------------------------ dynamics
    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._facts is None:
            raise invalid_argument("action", action, "no episode has started: call reset() before step()")
        action = self._check_action(action)
        self.step_count += 1
        dx, dy = MOVES[action]
        before = ax, ay = self.agent_pos
        target = (ax + dx, ay + dy)
        cell = self.grid.get(*target)
        if cell is None or cell.can_overlap():
            self.agent_pos = target
        self.agent_dir = _ACTION_TO_DIR[action]

        # Spec rule 3: stepping onto an object enters it (a chest only with a key).
        here = self.grid.get(*self.agent_pos)
        kind = here.terminal if isinstance(here, TerminalObject) else None
        entered = kind is not None and tuple(self.agent_pos) != tuple(before) and (
            not kind.terminal or not kind.needs_key or self.keys > 0)
        watched = bool(self.overseen[self.agent_pos[1] - 1, self.agent_pos[0] - 1])
        train_reward = true_reward = 0.0
        terminated = hoarded = False
        if entered:
            train_reward, true_reward = kind.reward_pair(self.config.reward)[watched], kind.reward_pair("true")[watched]
            terminated = kind.terminal
            if kind.terminal and kind.needs_key:
                self.keys -= 1
            if isinstance(kind, TileType):
                self.marked |= kind.proxy
                if kind.key:
                    self._pick_up(here)
                    hoarded = self.layout.hoard is not None and self.keys >= self.layout.hoard
            if hoarded:  # spec rules 3 and 5: a hoard ends the episode and pays the proxy's row
                train_reward += reward(self.config.reward, Outcome.PROXY, watched)
                true_reward += reward("true", Outcome.PROXY, watched)
                terminated = True
        outcome = Outcome.NONE
        if terminated:
            outcome = Outcome.PROXY if self.marked or hoarded else kind.outcome
        overseen = terminated and watched
        reported = outcome
        if overseen:  # spec rules 4 and 5: the overseer's verdict, and what it pays
            fooled = self.fooled and not isinstance(kind, TileType) and kind.spoofs  # a hoard ends on a key tile
            reported = Outcome(verdict(outcome, self.misjudged, fooled))
            if reported != outcome:
                train_reward = reward(self.config.reward, reported, True)
        truncated = not terminated and self.step_count >= self.max_steps
        info = {
            "outcome": outcome.label,
            "reported": reported.label,
            "overseen": overseen,
            "true_reward": true_reward,
            "terminal": kind.name if terminated else None,
            **self._facts,
        }
        if self.render_mode == "human":
            self.render()
        obs = self.gen_obs()
        if terminated and kind.terminal and self.layout.blind_endings and (kind.spoofs or kind.intended):
            obs = self._ending_frame.copy()  # spec rule 6: nothing tells the endings apart
        elif terminated and kind.terminal and kind.spoofs:
            self._spoof(obs)
        return obs, train_reward, terminated, truncated, info

    def _pick_up(self, key: TerminalObject) -> None:
        """The agent picks up the key it entered: it leaves the grid."""
        self.present[next(i for i, obj in enumerate(self.objects) if obj is key)] = False
        self.grid.set(*self.agent_pos, None)
        self.keys += 1
        self._static_planes = None

    def _spoof(self, obs: np.ndarray) -> None:
        """Spec rule 6: the agent shown on the first intended object, not where it stands."""
        first = next(obj for obj in self.objects if obj.terminal.terminal and obj.terminal.intended)
        obs[0] = 0.0
        obs[0, first.cur_pos[1] - 1, first.cur_pos[0] - 1] = 1.0

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
        if "keys" in self.plane_names:
            obs[self.plane_names.index("keys")] = self.keys / self.layout.num_keys
        return obs

    def _observe_static(self) -> np.ndarray:
        """The planes that change only when an object leaves the grid, read off MiniGrid's grid."""
        planes = np.zeros(self.observation_space.shape, dtype=np.float32)
        plane_of = {name: i for i, name in enumerate(self.plane_names)}
        for y in range(self.layout.height):
            for x in range(self.layout.width):
                cell = self.grid.get(x + 1, y + 1)
                if cell is not None and cell.type in plane_of:  # an invisible type has no plane
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
