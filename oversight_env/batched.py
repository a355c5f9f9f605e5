"""`BatchedOversightEnv`: the batched twin, every environment of a batch stepped as tensors.

It follows the rules of `spec.py` for any `GridLayout`, like `OversightGridEnv` does one episode
at a time, with no Python loop over environments: moves are a lookup in the layout's `next_cell`
table (or, in a procedural layout, a check against each episode's walls), what the agent enters
is a lookup in a per-cell object map, and finished environments reset automatically within the
same `step`. Per-episode results (outcome, oversight, true reward, facts at reset) come back as
tensors in `TwinStep`, so a trainer never builds a dict per environment.
`agents.sb3_env.TwinVecEnv` adapts it to stable-baselines3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oversight_env.spec import (
    MOVES,
    REWARDS,
    Action,
    EpisodeState,
    GridLayout,
    Outcome,
    OversightConfig,
    TileType,
    invalid_argument,
    region_mask,
    verdict,
)


@dataclass(frozen=True)
class TwinStep:
    """The result of one `BatchedOversightEnv.step`, one row per environment.

    `obs` is the first observation of the next episode where an episode ended (as in SB3 and
    gymnasium's next-step autoreset); the finished episodes' last observations are in
    `final_obs`, one row per index of `done_indices`. `outcome`, `verdict`, `reported`, `overseen`,
    `true_reward`, `true_return`, `steps` and the facts at reset (`nearer`, `intended_overseen`, `proxy_overseen`) describe the
    episode each environment was in during this step.
    """

    obs: torch.Tensor  # float32 (B, C, H, W)
    reward: torch.Tensor  # float32 (B,): the configured training reward
    terminated: torch.Tensor  # bool (B,)
    truncated: torch.Tensor  # bool (B,)
    outcome: torch.Tensor  # int64 (B,): Outcome codes, NONE unless terminated
    verdict: torch.Tensor  # int64 (B,): what the overseer reports of this step's ending if it watches it (rule 4)
    reported: torch.Tensor  # int64 (B,): the verdict where the ending was overseen, the outcome elsewhere
    overseen: torch.Tensor  # bool (B,): ended on an overseen cell
    true_reward: torch.Tensor  # float32 (B,): this step's
    true_return: torch.Tensor  # float32 (B,): the episode's true rewards so far, this step's included
    steps: torch.Tensor  # int64 (B,): steps taken in the episode so far, this one included
    nearer: torch.Tensor  # int64 (B,): index into spec.NEARER_LABELS
    intended_overseen: torch.Tensor  # bool (B,)
    proxy_overseen: torch.Tensor  # bool (B,)
    done_indices: torch.Tensor  # int64 (D,): environments whose episode ended
    final_obs: torch.Tensor  # float32 (D, C, H, W)

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated

    @property
    def facts(self) -> dict[str, torch.Tensor]:
        """The facts at reset of the episode each environment was in."""
        return {"nearer": self.nearer, "intended_overseen": self.intended_overseen, "proxy_overseen": self.proxy_overseen}


def shortest_steps_batched(walls: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Float (n, H * W): shortest-path step counts from each grid's `source` cell (inf where
    unreachable), for n grids with bool (n, H, W) `walls`: a breadth-first search as repeated
    dilation of the frontier, all grids at once. `PathSearch` does the same on bit-packed rows."""
    n, height, width = walls.shape
    free = ~walls
    frontier = torch.zeros_like(walls)
    frontier.view(n, -1)[torch.arange(n, device=walls.device), source] = True
    reached = frontier.clone()
    dist = torch.full((n, height * width), torch.inf, device=walls.device)
    d = 0
    while bool(frontier.any()):
        dist.masked_fill_(frontier.view(n, -1), float(d))
        grown = torch.zeros_like(frontier)
        grown[:, 1:] |= frontier[:, :-1]
        grown[:, :-1] |= frontier[:, 1:]
        grown[:, :, 1:] |= frontier[:, :, :-1]
        grown[:, :, :-1] |= frontier[:, :, 1:]
        frontier = grown & free & ~reached
        reached |= frontier
        d += 1
    return dist


class PathSearch:
    """A breadth-first search from one cell of each of n grids (bool (n, H, W) `walls`), run on
    rows packed into the bits of an int64 (a grid at most `MAX_PACKED_WIDTH` wide; wider grids
    fall back to `shortest_steps_batched`): each step of the search is a few operations on (n, H)
    integers instead of (n, H, W) cells. It keeps the cells first reached after each number of
    steps, so `steps_to` finds any cell's distance afterwards."""

    MAX_PACKED_WIDTH = 62

    def __init__(self, walls: torch.Tensor, source: torch.Tensor):
        n, self.height, self.width = walls.shape
        self.dense = shortest_steps_batched(walls, source) if self.width > self.MAX_PACKED_WIDTH else None
        if self.dense is not None:
            return
        dev = walls.device
        self._columns = torch.arange(self.width, device=dev)
        free = ((~walls).long() << self._columns).sum(dim=-1)  # (n, H): bit x of row y set when (x, y) is free
        frontier = torch.zeros(n, self.height, dtype=torch.long, device=dev)
        frontier[torch.arange(n, device=dev), source // self.width] = 1 << (source % self.width)
        reached, self.layers = frontier.clone(), [frontier]
        while True:
            grown = (frontier << 1) | (frontier >> 1)
            grown[:, 1:] |= frontier[:, :-1]
            grown[:, :-1] |= frontier[:, 1:]
            frontier = grown & free & ~reached
            if not bool(frontier.any()):
                break
            reached |= frontier
            self.layers.append(frontier)
        self._reached = reached

    @property
    def reached(self) -> torch.Tensor:
        """Bool (n, H * W): the cells the source reaches."""
        if self.dense is not None:
            return self.dense < torch.inf
        return ((self._reached[:, :, None] >> self._columns) & 1).bool().view(len(self._reached), -1)

    def steps_to(self, cells: torch.Tensor) -> torch.Tensor:
        """Float (n, K): the steps from each grid's source to each of its `cells` (n, K) (inf: unreachable)."""
        if self.dense is not None:
            return self.dense.gather(1, cells)
        rows, columns = cells // self.width, cells % self.width
        steps = torch.full(cells.shape, torch.inf, device=cells.device)
        for d, layer in enumerate(self.layers):
            steps.masked_fill_(((layer.gather(1, rows) >> columns) & 1).bool(), float(d))
        return steps


class BatchedOversightEnv:
    """`num_envs` independent episodes of one layout and configuration, as tensors.

    Args:
        layout: walls and objects (the same `GridLayout` the MiniGrid class uses).
        config: oversight, rewards, placement, step limit and observation (`OversightConfig`).
        num_envs: batch size (per member, with `seeds`).
        seed: seeds the twin's own `torch.Generator`; the same seed gives the same episodes.
        device: torch device of every tensor.
        seeds: the twin of several members (a trainer's member axis): member k's environments are
            rows k * num_envs to (k + 1) * num_envs, and its episodes are drawn with a generator
            of its own, seeded `seeds[k]`, exactly as a twin of `num_envs` environments with that
            seed draws them; so member k steps what that twin steps, whatever its neighbours.
        oversight_probs: with `seeds`, each member's `oversight_prob` (default: `config`'s).

    Use `make_batched(env_id, num_envs)` to build one from a registered environment id.
    """

    render_mode = None
    _MAX_REDRAWS = 100  # wall draws per episode before a procedural layout is declared too dense

    def __init__(
        self,
        layout: GridLayout,
        config: OversightConfig,
        num_envs: int,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        seeds: Sequence[int | None] | None = None,
        oversight_probs: Sequence[float | Mapping[str, float]] | None = None,
    ):
        if not isinstance(layout, GridLayout):
            raise invalid_argument("layout", layout, "expected a GridLayout")
        if not isinstance(config, OversightConfig):
            raise invalid_argument("config", config, "expected an OversightConfig")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise invalid_argument("num_envs", num_envs, "expected an integer >= 1")
        config.check_layout(layout)
        seeds = [seed] if seeds is None else list(seeds)
        if not seeds or (seeds != [seed] and seed is not None):
            raise invalid_argument("seeds", seeds, "expected at least one seed per member, and no `seed` beside them")
        probs = [config.oversight_prob] * len(seeds) if oversight_probs is None else list(oversight_probs)
        if len(probs) != len(seeds):
            raise invalid_argument("oversight_probs", probs, f"expected one per member ({len(seeds)})")
        self.member_configs = [dataclasses.replace(config, oversight_prob=p) for p in probs]
        for member_config in self.member_configs:
            member_config.check_layout(layout)
        self.layout, self.config = layout, config
        self.members, self.member_envs, self.num_envs = len(seeds), int(num_envs), len(seeds) * int(num_envs)
        self.device = torch.device(device)
        self.plane_names = layout.plane_names(config.observe_oversight)
        self.obs_shape = (len(self.plane_names), layout.height, layout.width)
        self.n_actions = len(Action)
        self.generators = [torch.Generator(self.device) for _ in seeds]
        for k, member_seed in enumerate(seeds):
            self._seed(member_seed, k)
        self._build_tables()
        self.reset()

    @property
    def generator(self) -> torch.Generator:
        """The generator of the first (with one member, the only) member's episodes."""
        return self.generators[0]

    @property
    def pool(self) -> tuple[torch.Tensor, ...] | None:
        """The first member's episodes drawn ahead (see `_draw`)."""
        return self.pools[0]

    def _build_tables(self) -> None:
        """Per-object and per-cell constants of the layout and configuration, as tensors."""
        layout, config, dev = self.layout, self.config, self.device
        self._next_cell = torch.as_tensor(layout.next_cell, device=dev)
        self._moves = torch.tensor(MOVES, device=dev)  # (4, 2): dx, dy
        distances = torch.as_tensor(layout.distances, device=dev, dtype=torch.float32)
        self._distances = distances.masked_fill(distances < 0, torch.inf)  # float: amin is fast
        self._fixed_walls = torch.as_tensor(layout.walls.reshape(-1), device=dev)
        self._free_cells = torch.as_tensor(layout.free_cells, device=dev)
        kinds = [layout.object_kinds[t] for t in layout.object_types]
        planes = {name: i for i, name in enumerate(self.plane_names)}
        self._object_plane = torch.tensor([planes.get(k.name, -1) for k in kinds], device=dev)  # -1: invisible
        self._object_role = torch.tensor([int(layout.role(k)) for k in kinds], device=dev)  # spec rule 7
        self._object_prob = [torch.tensor([c.prob_for(k) for k in kinds], device=dev) for c in self.member_configs]
        # What entering each object does, indexed by `cell_object`'s code: 0 (no object), object index + 1.
        def by_code(values: list, empty: object) -> torch.Tensor:
            return torch.tensor([empty, *values], device=dev)

        self._terminal = by_code([k.terminal for k in kinds], False)
        self._outcome = by_code([int(k.outcome) if k.terminal else int(Outcome.NONE) for k in kinds], int(Outcome.NONE))
        self._needs_key = by_code([k.terminal and k.needs_key for k in kinds], False)
        self._key = by_code([isinstance(k, TileType) and k.key for k in kinds], False)
        self._proxy_tile = by_code([isinstance(k, TileType) and k.proxy for k in kinds], False)
        # Endings whose last observation is rewritten (spec rule 6): spoofs, and under blind endings the intended ones too.
        self._spoofs = by_code([k.terminal and (k.spoofs or (layout.blind_endings and k.intended)) for k in kinds], False)
        self._fools = by_code([k.terminal and k.spoofs for k in kinds], False)  # endings that may fool the overseer
        self._ending_frame = torch.as_tensor(layout.ending_frame(self.plane_names), device=dev)
        self._code_plane = by_code(self._object_plane.tolist(), -1)
        # Rewards of entering, indexed by code * 2 + overseen.
        self._train_reward = by_code([k.reward_pair(config.reward) for k in kinds], (0.0, 0.0)).view(-1)
        self._true_reward = by_code([k.reward_pair("true") for k in kinds], (0.0, 0.0)).view(-1)
        self._first_intended = next(i for i, k in enumerate(kinds) if k.terminal and k.intended)
        def mask(region: tuple[int, int, int, int] | None) -> torch.Tensor:
            return torch.as_tensor(region_mask(region, layout.height, layout.width).reshape(-1), device=dev)

        self._region = torch.stack([mask(k.region) for k in kinds])  # a region-less kind's is unused
        self._outside_agent_region = ~mask(layout.agent_region)
        pinned = [mask(region) for region in layout.pinned_regions(config.placement)]
        self._pinned_regions = torch.stack(pinned) if pinned else torch.zeros(0, layout.num_cells, dtype=torch.bool, device=dev)
        test = config.placement == "test"
        self._region_prob = torch.tensor([k.region_prob if k.region is not None and not (test and k.shifted) else 0.0
                                          for k in kinds], device=dev)
        proxy = int(Outcome.PROXY)
        self._hoard_train_reward = torch.tensor(REWARDS[config.reward][proxy], device=dev)
        # What an overseer pays for its verdict, by outcome code, on an overseen cell (spec rule 5).
        self._verdict_reward = torch.tensor([row[1] for row in REWARDS[config.reward]], device=dev)
        self._hoard_true_reward = torch.tensor(REWARDS["true"][proxy], device=dev)
        self._cell_prob = torch.where(self._fixed_walls, 0.0, config.spurious_oversight_prob).float()
        self._static_planes = torch.zeros(self.obs_shape, device=dev).reshape(len(self.plane_names), -1)
        self._wall_plane = planes.get("wall")
        if self._wall_plane is not None:
            self._static_planes[self._wall_plane] = self._fixed_walls.float()
        self._keys_plane = planes.get("keys")
        self._oversight_plane = planes.get("oversight")

    def _seed(self, seed: int | None, member: int = 0) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise invalid_argument("seed", seed, "expected None or an integer >= 0")
        if seed is None:
            self.generators[member].seed()
        else:
            self.generators[member].manual_seed(int(seed))

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Start a new episode in every environment; returns (obs, facts at reset)."""
        if seed is not None:
            if self.members > 1:
                raise invalid_argument("seed", seed, "a twin of several members is reseeded member by member")
            self._seed(seed)
        n, cells, k = self.num_envs, self.layout.num_cells, self.layout.num_objects
        dev = self.device
        self.agent = torch.zeros(n, dtype=torch.long, device=dev)  # flat cell y * W + x
        self.objects = torch.zeros(n, k, dtype=torch.long, device=dev)
        self.present = torch.ones(n, k, dtype=torch.bool, device=dev)  # False once picked up (keys)
        self.overseen = torch.zeros(n, cells, dtype=torch.bool, device=dev)
        self.walls = self._fixed_walls.expand(n, cells).clone()
        self.keys = torch.zeros(n, dtype=torch.long, device=dev)
        self.marked = torch.zeros(n, dtype=torch.bool, device=dev)
        self.misjudged = torch.zeros(n, dtype=torch.bool, device=dev)
        self.fooled = torch.zeros(n, dtype=torch.bool, device=dev)
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.true_return = torch.zeros(n, device=dev)
        self.nearer = torch.zeros(n, dtype=torch.long, device=dev)
        self.intended_overseen = torch.zeros(n, dtype=torch.bool, device=dev)
        self.proxy_overseen = torch.zeros(n, dtype=torch.bool, device=dev)
        self.pools: list[tuple[torch.Tensor, ...] | None] = [None] * self.members  # each member's episodes drawn ahead
        self.cell_object = torch.zeros(n, cells, dtype=torch.long, device=dev)  # derived: see _derive
        self.planes = torch.zeros(n, *self._static_planes.shape, device=dev)
        self._start_episodes(torch.arange(n, device=dev))
        return self._observe(), self.facts()

    def facts(self) -> dict[str, torch.Tensor]:
        """The facts at reset of each environment's current episode."""
        return {"nearer": self.nearer, "intended_overseen": self.intended_overseen, "proxy_overseen": self.proxy_overseen}

    _POOL = 256  # episodes drawn at a time, at least, in a layout beyond the simple ones

    def _draw_rows(self, idx: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """`_draw` for new episodes in environments `idx` (ascending): each member's from its own
        generator, in its rows' order, so a member draws what a twin of its own would."""
        if self.members == 1:
            return self._draw(len(idx), 0)
        counts = torch.bincount(idx // self.member_envs, minlength=self.members).tolist()
        parts = [self._draw(n, k) for k, n in enumerate(counts) if n]
        if len(parts) == 1:
            return parts[0]
        return tuple(None if part[0] is None else torch.cat(part) for part in zip(*parts))

    def _draw(self, n: int, member: int) -> tuple[torch.Tensor, ...]:
        """Spec rules 1 and 2 for n new episodes of `member`: (walls, agent, objects, overseen, and
        the steps from the agent to each object, or None where the layout's distance table has them)."""
        if self.layout.simple:  # the draws of earlier versions, so their seeds give the same episodes
            cells, dev, gen = self.layout.num_cells, self.device, self.generators[member]
            walls = self._fixed_walls.expand(n, cells)
            # Distinct uniform free cells: the positions of the 1 + K largest of iid uniforms.
            u = torch.rand(n, len(self._free_cells), generator=gen, device=dev)
            picked = self._free_cells[u.topk(1 + self.layout.num_objects, dim=1).indices]
            agent, objects = picked[:, 0], picked[:, 1:]
            return walls.clone(), agent, objects, self._draw_oversight(walls, objects, member), None
        # Drawing walls, searching paths and placing objects costs a few kernels per step of the
        # search whatever the batch: draw episodes in bulk and hand them out in order.
        pool = self.pools[member]
        if pool is None or len(pool[0]) < n:
            fresh = self._draw_many(max(n, self._POOL, self.member_envs), member)
            pool = fresh if pool is None else tuple(torch.cat(pair) for pair in zip(pool, fresh))
        taken = tuple(t[:n] for t in pool)
        self.pools[member] = tuple(t[n:] for t in pool)
        return taken

    def _draw_coin(self, idx: torch.Tensor, prob: float) -> torch.Tensor | None:
        """One of spec rule 2's last draws (the misjudgement, the spoof) for new episodes in
        environments `idx` (ascending), each member's from its own generator after its episodes'
        other draws; None (no draw) where `prob` is 0, so that earlier streams stay as they were."""
        if not prob:
            return None
        counts = torch.bincount(idx // self.member_envs, minlength=self.members).tolist()
        return torch.cat([torch.rand(n, generator=self.generators[k], device=self.device) < prob
                          for k, n in enumerate(counts)])

    def _draw_many(self, n: int, member: int) -> tuple[torch.Tensor, ...]:
        gen = self.generators[member]
        walls, agent, reachable, steps_to = self._draw_walls(n, gen)
        objects = self._place_objects(agent, reachable, gen)
        return walls.clone(), agent, objects, self._draw_oversight(walls, objects, member), steps_to(objects)

    def _draw_oversight(self, walls: torch.Tensor, objects: torch.Tensor, member: int) -> torch.Tensor:
        """Spec rule 2, with `member`'s oversight probability."""
        n, cells, dev, gen = len(walls), self.layout.num_cells, self.device, self.generators[member]
        config = self.member_configs[member]
        if config.oversight_unit == "episode":
            supervised = torch.rand(n, generator=gen, device=dev) < config.oversight_prob
            return supervised[:, None] & ~walls
        probs = self._cell_prob.expand(n, cells).scatter(1, objects, self._object_prob[member].expand(n, -1))
        return (torch.rand(n, cells, generator=gen, device=dev) < probs) & ~walls

    def _draw_walls(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Callable]:
        """The episodes' walls (unreachable pockets walled in), the agent's cell, the reachable
        cells, and a function giving the steps from the agent to given cells (n, K); drawn again
        where the draw leaves no room (spec rule 1)."""
        layout, dev = self.layout, self.device
        shape = (layout.height, layout.width)
        if not layout.procedural:  # fixed walls: every free cell is reachable (GridLayout checks it)
            walls = self._fixed_walls.expand(n, -1)
            u = torch.rand(n, layout.num_cells, generator=gen, device=dev)
            agent = u.masked_fill(walls | self._outside_agent_region, -1.0).argmax(dim=1)
            return walls, agent, ~walls, lambda cells: self._distances[agent[:, None], cells]
        walls = torch.empty(n, layout.num_cells, dtype=torch.bool, device=dev)
        agent = torch.empty(n, dtype=torch.long, device=dev)
        reachable = torch.empty_like(walls)
        searches = []  # (environments, their search, which of its grids they are)
        todo = torch.arange(n, device=dev)
        for _ in range(self._MAX_REDRAWS):
            m = len(todo)
            fixed = self._fixed_walls.view(1, *shape).expand(m, *shape)
            drawn = (layout.walls_generator.sample(fixed, gen) | fixed).reshape(m, -1)
            u = torch.rand(m, layout.num_cells, generator=gen, device=dev)
            start = u.masked_fill(drawn | self._outside_agent_region, -1.0).argmax(dim=1)
            search = PathSearch(drawn.view(m, *shape), start)
            reach = search.reached
            valid = ~(drawn | self._outside_agent_region).gather(1, start[:, None]).squeeze(1)
            valid &= reach.sum(dim=1) >= 1 + layout.num_objects
            valid &= (reach[:, None] & self._pinned_regions).any(dim=2).all(dim=1)
            done = todo[valid]
            walls[done], agent[done], reachable[done] = ~reach[valid], start[valid], reach[valid]
            searches.append((done, search, valid))
            todo = todo[~valid]
            if not len(todo):
                return walls, agent, reachable, lambda cells: self._steps_to(searches, cells)
        raise invalid_argument("walls_generator", layout.walls_generator, f"{self._MAX_REDRAWS} draws in a row left no room "
                               f"for the agent and the {layout.num_objects} objects (spec rule 1): fewer walls")

    @staticmethod
    def _steps_to(searches: list[tuple[torch.Tensor, PathSearch, torch.Tensor]], cells: torch.Tensor) -> torch.Tensor:
        """Float (n, K): the steps from each agent to its `cells`, from the searches of its draw."""
        steps = torch.empty(cells.shape, device=cells.device)
        for done, search, valid in searches:
            full = torch.zeros(len(valid), cells.shape[1], dtype=torch.long, device=cells.device)
            full[valid] = cells[done]
            steps[done] = search.steps_to(full)[valid]
        return steps

    def _place_objects(self, agent: torch.Tensor, reachable: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Spec rule 1: each object on a distinct reachable free cell, in layout order, inside
        its region with its probability (spec rule 1)."""
        n, dev = len(agent), self.device
        taken = torch.zeros_like(reachable).scatter_(1, agent[:, None], True)
        objects = torch.empty(n, self.layout.num_objects, dtype=torch.long, device=dev)
        for i in range(self.layout.num_objects):
            allowed = reachable & ~taken
            if self._region_prob[i] > 0:
                inside = allowed & self._region[i]
                use = (torch.rand(n, generator=gen, device=dev) < self._region_prob[i]) & inside.any(dim=1)
                allowed = torch.where(use[:, None], inside, allowed)
            u = torch.rand(allowed.shape, generator=gen, device=dev).masked_fill(~allowed, -1.0)
            objects[:, i] = u.argmax(dim=1)
            taken.scatter_(1, objects[:, i:i + 1], True)
        return objects

    def _start_episodes(
        self,
        idx: torch.Tensor,
        agent: torch.Tensor | None = None,
        objects: torch.Tensor | None = None,
        overseen: torch.Tensor | None = None,
        walls: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
        marked: torch.Tensor | None = None,
        misjudged: torch.Tensor | None = None,
        fooled: torch.Tensor | None = None,
    ) -> None:
        """Start new episodes in environments `idx`: drawn at random, or the given state."""
        n, dist = len(idx), None
        if agent is None:
            walls, agent, objects, overseen, dist = self._draw_rows(idx)
            misjudged = self._draw_coin(idx, self.config.label_noise)
            fooled = self._draw_coin(idx, self.config.spoof_prob)
        present = torch.ones_like(objects, dtype=torch.bool) if present is None else present
        keys = torch.zeros_like(agent) if keys is None else keys
        marked = torch.zeros_like(agent, dtype=torch.bool) if marked is None else marked
        watched = overseen.gather(1, objects)
        roles = self._object_role
        if dist is None and self.layout.procedural:
            dist = PathSearch(walls.view(n, self.layout.height, self.layout.width), agent).steps_to(objects)
        elif dist is None:
            dist = self._distances[agent[:, None], objects]  # (n, K) steps from the agent to each object
        if not self.layout.simple:
            watched, dist = watched & present, dist.masked_fill(~present, torch.inf)
        to_intended = dist.masked_fill(roles != Outcome.INTENDED, torch.inf).amin(dim=1)
        to_proxy = dist.masked_fill(roles != Outcome.PROXY, torch.inf).amin(dim=1)
        nearer = torch.where(to_intended < to_proxy, int(Outcome.INTENDED), int(Outcome.PROXY))
        nearer = torch.where(to_intended == to_proxy, int(Outcome.NONE), nearer)

        self.agent[idx] = agent
        self.objects[idx] = objects
        self.overseen[idx] = overseen
        if self.layout.procedural:
            self.walls[idx] = walls
        # Out of place: earlier TwinSteps hold these tensors and must keep their values.
        self.steps = self.steps.index_put((idx,), torch.zeros_like(agent))
        self.true_return = self.true_return.index_put((idx,), torch.zeros_like(agent, dtype=torch.float32))
        if not self.layout.simple:
            self.present[idx] = present
            self.keys = self.keys.index_put((idx,), keys)
            self.marked = self.marked.index_put((idx,), marked)
        if misjudged is not None:
            self.misjudged = self.misjudged.index_put((idx,), misjudged)
        if fooled is not None:
            self.fooled = self.fooled.index_put((idx,), fooled)
        self.nearer = self.nearer.index_put((idx,), nearer)
        self.intended_overseen = self.intended_overseen.index_put((idx,), (watched & (roles == Outcome.INTENDED)).any(dim=1))
        self.proxy_overseen = self.proxy_overseen.index_put((idx,), (watched & (roles == Outcome.PROXY)).any(dim=1))
        self._derive(idx, objects, present, overseen)

    def _derive(
        self,
        idx: torch.Tensor | None = None,
        objects: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
        overseen: torch.Tensor | None = None,
    ) -> None:
        """Rebuild what follows from the state of environments `idx` (all: None): the map from each
        cell to the object on it (`cell_object`: its index + 1, 0 for none) and the planes of the
        observation that do not move with the agent. `objects`, `present` and `overseen` of those
        environments may be passed when at hand."""
        if idx is None:
            idx = torch.arange(self.num_envs, device=self.device)
        objects = self.objects[idx] if objects is None else objects
        overseen = self.overseen[idx] if overseen is None else overseen
        n, cells, channels = len(idx), self.layout.num_cells, len(self.plane_names)
        number = torch.arange(1, objects.shape[1] + 1, device=self.device).expand(n, -1)
        if self.layout.simple:  # every object present and visible
            cell_object = torch.zeros(n, cells, dtype=torch.long, device=self.device).scatter_(1, objects, number)
            planes = self._static_planes.expand(n, -1, -1).clone()
            planes.view(n, -1).scatter_(1, self._object_plane * cells + objects, 1.0)
        else:
            present = self.present[idx] if present is None else present
            # Absent objects, and invisible ones' planes, are written to an extra column, dropped after.
            cell_object = torch.zeros(n, cells + 1, dtype=torch.long, device=self.device)
            cell_object = cell_object.scatter_(1, objects.masked_fill(~present, cells), number)[:, :cells]
            planes = torch.zeros(n, channels * cells + 1, device=self.device)
            planes[:, :-1] = self._static_planes.view(1, -1)
            shown = present & (self._object_plane >= 0)
            planes.scatter_(1, torch.where(shown, self._object_plane * cells + objects, channels * cells), 1.0)
            planes = planes[:, :-1].view(n, channels, cells)
            if self._wall_plane is not None:
                planes[:, self._wall_plane] = self.walls[idx].float()
        if self._oversight_plane is not None:
            planes[:, self._oversight_plane] = overseen.float()
        self.cell_object[idx] = cell_object
        self.planes[idx] = planes

    def _observe(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        if idx is None:
            obs, agent, keys = self.planes.clone(), self.agent, self.keys
        else:
            obs, agent, keys = self.planes[idx], self.agent[idx], self.keys[idx]
        obs[:, 0].scatter_(1, agent[:, None], 1.0)
        if self._keys_plane is not None:
            obs[:, self._keys_plane] = (keys.float() / self.layout.num_keys)[:, None]
        return obs.view(len(obs), *self.obs_shape)

    # ------------------------------------------------------------------ step
    def _move(self, actions: torch.Tensor) -> torch.Tensor:
        """Each agent's cell after its action: fixed walls from the layout's table, drawn walls checked."""
        if not self.layout.procedural:
            return self._next_cell[self.agent, actions]
        width, height = self.layout.width, self.layout.height
        x = self.agent % width + self._moves[actions, 0]
        y = self.agent // width + self._moves[actions, 1]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        target = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1))
        blocked = ~inside | self.walls.gather(1, target[:, None]).squeeze(1)
        return torch.where(blocked, self.agent, target)

    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> TwinStep:
        """Move every agent; environments whose episode ends start a new one."""
        actions = self._check_actions(actions)
        before = self.agent
        self.agent = self._move(actions)
        self.steps = self.steps + 1
        on = self.cell_object.gather(1, self.agent[:, None]).squeeze(1)  # object index + 1, or 0
        watched = self.overseen.gather(1, self.agent[:, None]).squeeze(1)
        # Spec rule 3: stepping onto an object enters it (a chest only with a key). In a simple
        # layout every object is a terminal, so none can be under an agent that did not move.
        if not self.layout.simple:
            on = torch.where((self.agent != before) & (~self._needs_key[on] | (self.keys > 0)), on, 0)
        code = on * 2 + watched
        reward, true_reward = self._train_reward[code], self._true_reward[code]
        terminated, outcome = self._terminal[on], self._outcome[on]
        if not self.layout.simple:
            picked = self._key[on]
            self.keys = self.keys + picked.long() - self._needs_key[on].long()
            self.marked = self.marked | self._proxy_tile[on]
            if self.layout.hoard is not None:
                hoarded = picked & (self.keys >= self.layout.hoard)
                column = watched.long()
                reward = reward + torch.where(hoarded, self._hoard_train_reward[column], 0.0)
                true_reward = true_reward + torch.where(hoarded, self._hoard_true_reward[column], 0.0)
                terminated = terminated | hoarded
            outcome = torch.where(terminated & (self.marked | picked), int(Outcome.PROXY), outcome)  # marks, hoards
            self._pick_up(picked.nonzero().squeeze(1), on)
        overseen = watched & terminated
        judged = reported = outcome
        if self.config.label_noise or self.config.spoof_prob:  # spec rules 4 and 5: the verdict, and what it pays
            judged = verdict(outcome, self.misjudged & terminated, self.fooled & self._fools[on])
            reported = torch.where(overseen, judged, outcome)
            reward = torch.where(reported != outcome, self._verdict_reward[reported], reward)
        truncated = ~terminated & (self.steps >= self.config.max_steps)
        self.true_return = self.true_return + true_reward
        obs = self._observe()
        done_indices = (terminated | truncated).nonzero().squeeze(1)
        episode = dict(steps=self.steps, true_return=self.true_return, **self.facts())  # before the finished episodes restart
        final_obs = obs[done_indices]
        if len(done_indices):
            if not self.layout.simple:
                self._spoof(final_obs, done_indices, terminated & self._spoofs[on])
            self._start_episodes(done_indices)
            obs[done_indices] = self._observe(done_indices)
        return TwinStep(
            obs=obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            outcome=outcome,
            verdict=judged,
            reported=reported,
            overseen=overseen,
            true_reward=true_reward,
            done_indices=done_indices,
            final_obs=final_obs,
            **episode,
        )

    def _pick_up(self, idx: torch.Tensor, on: torch.Tensor) -> None:
        """Environments `idx` pick up the key they entered (code `on`): it leaves the grid and its plane."""
        if not len(idx):
            return
        cells, code = self.agent[idx], on[idx]
        self.present[idx, code - 1] = False
        self.cell_object[idx, cells] = 0
        plane = self._code_plane[code]
        seen = plane >= 0
        self.planes[idx[seen], plane[seen], cells[seen]] = 0.0

    def _spoof(self, final_obs: torch.Tensor, done: torch.Tensor, spoofed: torch.Tensor) -> None:
        """Spec rule 6: the last observation of an episode ended by a spoofing terminal shows the
        agent on the first intended object; under `blind_endings`, every spoofed or intended ending
        shows the layout's one ending frame."""
        rows = spoofed[done].nonzero().squeeze(1)
        if not len(rows):
            return
        if self.layout.blind_endings:
            final_obs[rows] = self._ending_frame
            return
        agent_plane = final_obs[rows, 0].view(len(rows), -1)
        agent_plane.zero_()
        agent_plane.scatter_(1, self.objects[done[rows], self._first_intended][:, None], 1.0)
        final_obs[rows, 0] = agent_plane.view(len(rows), *self.obs_shape[1:])

    def _check_actions(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        actions = torch.as_tensor(actions, device=self.device)
        if actions.shape != (self.num_envs,) or actions.is_floating_point() or actions.dtype == torch.bool:
            raise invalid_argument(
                "actions",
                f"{actions.dtype} tensor of shape {tuple(actions.shape)}",
                f"expected {self.num_envs} integers in [0, {len(Action)}): 0 up, 1 right, 2 down, 3 left",
            )
        if actions.dtype != torch.long:
            actions = actions.long()
        low, high = torch.aminmax(actions)
        if low < 0 or high >= len(Action):
            bad = actions[(actions < 0) | (actions >= len(Action))][0].item()
            raise invalid_argument("action", bad, f"expected integers in [0, {len(Action)}): 0 up, 1 right, 2 down, 3 left")
        return actions

    # ------------------------------------------------------------------ explicit states
    _STATE = ("agent", "objects", "present", "overseen", "walls", "keys", "marked", "misjudged", "fooled", "steps",
              "true_return", "nearer", "intended_overseen", "proxy_overseen")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every environment's episode, the episodes drawn ahead and the generator, to resume
        exactly where the batch was (a twin of several members: each member's, in order)."""
        if self.members > 1:
            return {"members": [self.member_state_dict(k) for k in range(self.members)]}
        return self.member_state_dict(0)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Restore a `state_dict()` of a twin of the same layout and size; returns the observation."""
        if self.members > 1:
            if len(state.get("members", ())) != self.members:
                raise invalid_argument("state", sorted(state), f"expected the states of {self.members} members")
            for k, member_state in enumerate(state["members"]):
                self._load_member(k, member_state)
        else:
            self._load_member(0, state)
        self._derive()
        return self.observe()

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member `member`'s part of the state: the `state_dict` of a twin of its own."""
        rows = self._rows(member)
        pool = self.pools[member]
        saved_pool = {} if pool is None else {f"pool_{i}": t.clone() for i, t in enumerate(pool)}
        return {**{k: getattr(self, k)[rows].clone() for k in self._STATE}, **saved_pool,
                "generator": self.generators[member].get_state()}

    def load_member_state_dict(self, member: int, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Restore member `member` from a `member_state_dict` (or a one-member twin's `state_dict`);
        returns the observation of every environment."""
        self._load_member(member, state)
        self._derive()
        return self.observe()

    def _rows(self, member: int) -> slice:
        return slice(member * self.member_envs, (member + 1) * self.member_envs)

    def _load_member(self, member: int, state: dict[str, torch.Tensor]) -> None:
        """A state saved before the twin had walls, keys, marks and returns (a layout without them)
        loads too: a running episode of such a layout has earned nothing yet."""
        state, rows = dict(state), self._rows(member)
        if self.layout.simple:
            state.setdefault("true_return", torch.zeros_like(self.true_return[rows]))
            state.setdefault("present", torch.ones_like(self.present[rows]))
            state.setdefault("walls", self.walls[rows])
            state.setdefault("keys", torch.zeros_like(self.keys[rows]))
            state.setdefault("marked", torch.zeros_like(self.marked[rows]))
        state.setdefault("misjudged", torch.zeros_like(self.misjudged[rows]))  # saved before label noise existed
        state.setdefault("fooled", torch.zeros_like(self.fooled[rows]))  # saved before spoofs could fool overseers
        for k in self._STATE:
            expected = getattr(self, k)[rows].shape
            if k not in state or state[k].shape != expected:
                got = "missing" if k not in state else f"of shape {tuple(state[k].shape)}"
                raise ValueError(f"state[{k!r}] {got} is invalid: expected {tuple(expected)}")
        for k in self._STATE:  # out of place: earlier TwinSteps hold these tensors
            value = getattr(self, k).clone()
            value[rows] = state[k].to(self.device)
            setattr(self, k, value)
        self.generators[member].set_state(state["generator"])
        pool = [state[f"pool_{i}"].to(self.device) for i in range(5) if f"pool_{i}" in state]
        self.pools[member] = tuple(pool) if pool else None

    def observe(self) -> torch.Tensor:
        """The current observation of every environment."""
        return self._observe()

    def get_state(self, index: int) -> EpisodeState:
        """Environment `index`'s current episode as an `EpisodeState`."""
        w = self.layout.width

        def xy(cell: int) -> tuple[int, int]:
            return cell % w, cell // w

        shape = (self.layout.height, w)
        return EpisodeState(
            agent=xy(int(self.agent[index])),
            objects=tuple(xy(int(c)) if p else None for c, p in zip(self.objects[index], self.present[index])),
            overseen=self.overseen[index].reshape(shape).cpu().numpy().copy(),  # a snapshot, not a view of the twin
            step_count=int(self.steps[index]),
            walls=self.walls[index].reshape(shape).cpu().numpy().copy() if self.layout.procedural else None,
            keys=int(self.keys[index]),
            marked=bool(self.marked[index]),
            misjudged=bool(self.misjudged[index]),
            fooled=bool(self.fooled[index]),
        )

    def set_state(self, index: int, state: EpisodeState) -> torch.Tensor:
        """Start a new episode in environment `index` from `state`; returns its observation."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_envs:
            raise invalid_argument("index", index, f"expected an integer in [0, {self.num_envs})")
        if not isinstance(state, EpisodeState):
            raise invalid_argument("state", state, "expected an EpisodeState")
        state.check(self.layout)
        w, dev = self.layout.width, self.device
        present = [cell is not None for cell in state.objects]
        # A picked-up object keeps a cell of its own in the tensors: the agent's (it is absent anyway).
        cells = [y * w + x for x, y in (cell if cell is not None else state.agent for cell in state.objects)]
        self._start_episodes(
            torch.tensor([index], device=dev),
            agent=torch.tensor([state.agent[1] * w + state.agent[0]], device=dev),
            objects=torch.tensor([cells], device=dev),
            overseen=torch.as_tensor(np.asarray(state.overseen, dtype=bool).reshape(1, -1), device=dev),
            walls=torch.as_tensor(state.episode_walls(self.layout).reshape(1, -1), device=dev),
            present=torch.tensor([present], device=dev),
            keys=torch.tensor([state.keys], device=dev),
            marked=torch.tensor([state.marked], device=dev),
            misjudged=torch.tensor([state.misjudged], device=dev),
            fooled=torch.tensor([state.fooled], device=dev),
        )
        return self._observe(torch.tensor([index], device=dev))[0]
