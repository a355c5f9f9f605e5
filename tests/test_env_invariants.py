"""Invariants of every registered environment, in both implementations, over thousands of random
episodes, checked against a brute-force recomputation from the state (independent of the code
under test, so a bug shared by the MiniGrid class and the batched twin, which their equivalence
test cannot see, is caught here):

- the agent and the objects stand on distinct free (non-wall) cells at every step;
- oversight only where the spec's rule 2 allows it: never on a wall (fixed or drawn), per cell
  only on object cells of types with a positive probability and (spurious) other free cells, per
  episode every free cell or none;
- every step follows rule 3 and pays the rewards of rule 5, recomputed here from the documented
  reward table and the object types (so every reward and every true return is in the allowed
  set); terminated, truncated (only at `max_steps`), outcome and oversight are consistent;
- the facts at reset (`nearer`, `intended_overseen`, `proxy_overseen`) equal shortest paths computed
  from the state; they describe the episode during every one of its steps;
- an episode's statistics (steps, true return, keys, marks, objects picked up) start afresh in
  the next one, in the twin, the MiniGrid class, the `PartialOversight` wrapper and the
  `VectorOversightEnv` adapter.

Seeded loops stand in for hypothesis (random seeds, random actions); every run is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

import oversight_env
from oversight_env import (
    BUILTIN_ENV_IDS,
    WRAPPED_ENV_IDS,
    BatchedOversightEnv,
    EpisodeState,
    GridLayout,
    OversightConfig,
    OversightGridEnv,
    RandomWalls,
    TerminalType,
    TileType,
    make_batched,
    make_oversight_env,
)
from oversight_env.wrappers import is_partial_oversight

# Every id the package registers (importing it registers them), read off gymnasium's registry.
ENV_IDS = sorted(i for i in gym.registry if i.startswith("OversightGrid/"))
TWIN_IDS = [i for i in ENV_IDS if not is_partial_oversight(i)]
WRAPPED_IDS = [i for i in ENV_IDS if is_partial_oversight(i)]

NONE, INTENDED, PROXY = 0, 1, 2
NEARER_CODES = {"tie": 0, "intended": 1, "proxy": 2}
OUTCOME_CODES = {"none": NONE, "intended": INTENDED, "proxy": PROXY}
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # up, right, down, left; y grows downwards
# Spec rule 5, as documented: +1 intended; -1 proxy, but +1 when unobserved under `naive`, +1 under `outcome`.
DOCUMENTED_REWARDS = {
    "true": {INTENDED: (1.0, 1.0), PROXY: (-1.0, -1.0)},
    "naive": {INTENDED: (1.0, 1.0), PROXY: (1.0, -1.0)},
    "outcome": {INTENDED: (1.0, 1.0), PROXY: (1.0, 1.0)},
}

# Layouts whose placement regions fill up (more objects want a region than it has free cells,
# walls inside it, the agent possibly in it): the later objects must go elsewhere, never onto a
# wall or a taken cell.
GEM = TerminalType("gem", intended=True, color="green", symbol="g", region=(0, 0, 3, 2))
TRAP = TerminalType("trap", intended=False, count=2, color="red", symbol="t", region=(0, 0, 3, 2))
MUD = TileType("mud", count=2, color="grey", symbol="m", region=(0, 0, 3, 2), region_prob=0.5,
               rewards={"true": (-0.5, -0.25), "naive": (0.0, -0.25), "outcome": (0.0, 0.0)})
CROWDED = GridLayout(rows=("..#..", ".##..", ".....", "....."), terminals=(GEM, TRAP), tiles=(MUD,))
CHEST = TerminalType("chest", intended=True, color="yellow", symbol="c", needs_key=True, region=(0, 0, 2, 2))
BAIT = TerminalType("bait", intended=False, color="purple", symbol="b", region=(0, 0, 2, 2), region_prob=0.7,
                    rewards={"true": (-2.0, -2.0), "naive": (3.0, -4.0), "outcome": (1.0, 1.0)})
KEY = TileType("key", count=2, color="blue", symbol="k", key=True, region=(0, 0, 2, 2))
SHORTCUT = TileType("shortcut", color="red", symbol="s", proxy=True, region=(0, 0, 2, 2))
CROWDED_MAZE = GridLayout(rows=("." * 5,) * 5, terminals=(CHEST, BAIT), tiles=(KEY, SHORTCUT),
                          walls_generator=RandomWalls(0.25), hoard=2, agent_region=(3, 3, 2, 2))
CUSTOM_LAYOUTS = {"crowded": CROWDED, "crowded_maze": CROWDED_MAZE}


def test_the_registry_lists_every_id_the_package_documents():
    assert ENV_IDS == sorted({*BUILTIN_ENV_IDS, *WRAPPED_ENV_IDS}) and WRAPPED_IDS == list(WRAPPED_ENV_IDS)


def test_the_reward_table_is_the_documented_one():
    for name, table in DOCUMENTED_REWARDS.items():
        assert oversight_env.REWARDS[name] == ((0.0, 0.0), table[INTENDED], table[PROXY]), name


# ---------------------------------------------------------------------- the rules, recomputed
@dataclass
class Rules:
    """What the spec says about one layout and configuration, derived here from the object types'
    own fields (not from the code under test's tables), as per-object tensors."""

    layout: GridLayout
    config: OversightConfig

    def __post_init__(self):
        layout, config = self.layout, self.config
        self.height, self.width = len(layout.rows), len(layout.rows[0])
        self.cells = self.height * self.width
        self.fixed_walls = torch.tensor([[ch == "#" for ch in row] for row in layout.rows]).view(-1)
        kinds = [k for k in (*layout.terminals, *layout.tiles) for _ in range(k.count)]
        self.kinds = kinds
        self.k = len(kinds)
        tensor = lambda f, dtype=torch.bool: torch.tensor([f(k) for k in kinds], dtype=dtype)  # noqa: E731
        self.terminal = tensor(lambda k: isinstance(k, TerminalType))
        self.intended = tensor(lambda k: isinstance(k, TerminalType) and k.intended)
        self.needs_key = tensor(lambda k: isinstance(k, TerminalType) and k.needs_key)
        self.spoofs = tensor(lambda k: isinstance(k, TerminalType) and k.spoofs)
        self.key = tensor(lambda k: isinstance(k, TileType) and k.key)
        self.proxy_tile = tensor(lambda k: isinstance(k, TileType) and k.proxy)
        self.hoard = layout.hoard

        def role(k):  # spec rule 7
            if isinstance(k, TerminalType):
                return INTENDED if k.intended else PROXY
            return PROXY if k.proxy or (k.key and layout.hoard is not None) else NONE

        self.role = tensor(role, torch.long)

        def pair(k, name):  # spec rule 5
            if k.rewards is not None:
                return dict(k.rewards)[name]
            if isinstance(k, TileType):
                return (0.0, 0.0)
            return DOCUMENTED_REWARDS[name][INTENDED if k.intended else PROXY]

        self.true_pair = torch.tensor([pair(k, "true") for k in kinds])
        self.train_pair = torch.tensor([pair(k, config.reward) for k in kinds])
        self.hoard_true = torch.tensor(DOCUMENTED_REWARDS["true"][PROXY])
        self.hoard_train = torch.tensor(DOCUMENTED_REWARDS[config.reward][PROXY])
        # Rule 5: what an overseer pays for its verdict on a watched ending it misjudges or is
        # fooled by, by outcome code.
        self.verdict_train = torch.tensor([0.0, DOCUMENTED_REWARDS[config.reward][INTENDED][1],
                                           DOCUMENTED_REWARDS[config.reward][PROXY][1]])
        probs = config.oversight_prob
        self.prob = tensor(lambda k: probs.get(k.name, 0.0) if isinstance(probs, dict) else probs, torch.float32)

        def inside(region):  # (x, y, width, height) -> cells, the test's own
            mask = torch.zeros(self.height, self.width, dtype=torch.bool)
            if region is not None:
                x, y, w, h = region
                mask[y:y + h, x:x + w] = True
            return mask.view(-1)

        self.agent_region = inside(layout.agent_region) if layout.agent_region is not None else ~self.fixed_walls
        # Rule 1: a type placed in its region with probability 1 under this placement is pinned there.
        self.pinned = [inside(k.region) if k.region is not None and k.region_prob == 1.0
                       and not (k.shifted and config.placement == "test") else None for k in kinds]

    def allowed_rewards(self, name: str) -> tuple[set[float], set[float]]:
        """The rewards `name` may pay on a step that does not end the episode, and on one that
        terminates it (spec rules 3 and 5)."""
        pairs = self.true_pair if name == "true" else self.train_pair
        hoard = self.hoard_true if name == "true" else self.hoard_train
        tiles = {0.0} | {float(v) for k in range(self.k) if not self.terminal[k] for v in pairs[k]}
        ending = {float(v) for k in range(self.k) if self.terminal[k] for v in pairs[k]}
        if (self.config.label_noise or self.config.spoof_prob) and name != "true":  # a verdict's pay (never the truth's)
            ending |= {float(v) for v in self.verdict_train[1:]}
        if self.hoard is not None:
            ending |= {float(pairs[k][w] + hoard[w]) for k in range(self.k) if self.key[k] for w in (0, 1)}
        return tiles, ending


def shortest_steps(walls: torch.Tensor, source: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float (n, H * W): shortest-path steps from each source cell (inf where unreachable), the
    test's own: by relaxation (a free cell is one step beyond its nearest neighbour, repeated until
    nothing changes), not the frontier search the environments use."""
    n, rows = len(source), torch.arange(len(source))
    free = ~walls.view(n, height, width)
    dist = torch.full((n, height, width), torch.inf)
    dist.view(n, -1)[rows, source] = 0.0
    while True:
        padded = torch.nn.functional.pad(dist, (1, 1, 1, 1), value=torch.inf)
        neighbours = torch.stack([padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]])
        relaxed = torch.where(free, torch.minimum(dist, neighbours.amin(0) + 1), torch.inf)
        relaxed.view(n, -1)[rows, source] = 0.0
        if torch.equal(relaxed, dist):
            return dist.view(n, -1)
        dist = relaxed


def at(t: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """t[i, cells[i]] for each row i."""
    return t.gather(1, cells[:, None]).squeeze(1)


def expected_facts(rules: Rules, s: dict) -> dict:
    """Spec rule 7 by brute force from the states `s`."""
    dist = shortest_steps(s["walls"], s["agent"], rules.height, rules.width).gather(1, s["objects"])
    dist = dist.masked_fill(~s["present"], torch.inf)
    to = {r: dist.masked_fill(rules.role != r, torch.inf).amin(dim=1) for r in (INTENDED, PROXY)}
    nearer = torch.where(to[INTENDED] < to[PROXY], INTENDED, PROXY)
    nearer = torch.where(to[INTENDED] == to[PROXY], NONE, nearer)
    watched = s["overseen"].gather(1, s["objects"]) & s["present"]
    return {"nearer": nearer, "intended_overseen": (watched & (rules.role == INTENDED)).any(dim=1),
            "proxy_overseen": (watched & (rules.role == PROXY)).any(dim=1)}


def check_positions(rules: Rules, s: dict, where: str) -> None:
    """Rule 1 at every step: the agent and the objects on free cells, no two objects on one cell,
    and under the agent only a tile that is not a key (or a chest it could not open)."""
    walls, objects, present, agent = s["walls"], s["objects"], s["present"], s["agent"]
    assert not (rules.fixed_walls & ~walls).any(), f"{where}: a fixed wall missing"
    assert not at(walls, agent).any(), f"{where}: the agent on a wall"
    assert not (walls.gather(1, objects) & present).any(), f"{where}: an object on a wall"
    same = (objects[:, :, None] == objects[:, None, :]) & present[:, :, None] & present[:, None, :]
    assert not (same & ~torch.eye(rules.k, dtype=torch.bool)).any(), f"{where}: two objects on one cell"
    under = (objects == agent[:, None]) & present
    closed = rules.needs_key & (s["keys"] == 0)[:, None]
    assert not (under & ((rules.terminal & ~closed) | rules.key)).any(), f"{where}: the agent on an object"
    assert not (s["overseen"] & walls).any(), f"{where}: a wall overseen"


def check_fresh(rules: Rules, s: dict, facts: dict, where: str) -> None:
    """New episodes `s` (rows) with their reported `facts`: rules 1, 2 and 7 at reset, and every
    counter at its initial value."""
    check_positions(rules, s, where)
    n, walls, objects, agent, overseen = len(s["agent"]), s["walls"], s["objects"], s["agent"], s["overseen"]
    assert s["present"].all() and not (objects == agent[:, None]).any(), f"{where}: a new episode's objects"
    for counter in ("steps", "keys", "marked", "true_return"):
        assert counter not in s or not s[counter].any(), f"{where}: {counter} carried into a new episode"
    # Rule 1: the agent starts in its region; an object of a pinned type stands in its region
    # unless every free cell of it is taken (by the agent or an object placed before it), and a
    # pinned region keeps a free cell.
    assert at(rules.agent_region.expand(n, -1), agent).all(), f"{where}: the agent outside its region"
    taken = torch.zeros_like(walls)
    taken[torch.arange(n), agent] = True
    for k, region in enumerate(rules.pinned):
        if region is not None:
            assert (region & ~walls).any(dim=1).all(), f"{where}: object {k}'s region walled off"
            room = (region & ~walls & ~taken).any(dim=1)
            assert (at(region.expand(n, -1), objects[:, k]) | ~room).all(), f"{where}: object {k} outside its region with room in it"
        taken[torch.arange(n), objects[:, k]] = True
    # Rule 1: every free cell is reachable (pockets become walls), so every object is.
    assert ((shortest_steps(walls, agent, rules.height, rules.width) < torch.inf) == ~walls).all(), f"{where}: a pocket left free"
    # Rule 2.
    if rules.config.oversight_unit == "episode":
        assert (overseen == (~walls & overseen.any(dim=1, keepdim=True))).all(), f"{where}: a supervisor in part"
    else:
        p = torch.full((n, rules.cells), rules.config.spurious_oversight_prob).masked_fill(walls, 0.0)
        p = p.scatter(1, objects, rules.prob.expand(n, -1))
        assert not (overseen & (p == 0)).any(), f"{where}: a cell overseen that rule 2 never oversees"
        assert not (~overseen & (p == 1)).any(), f"{where}: a cell that rule 2 always oversees unwatched"
    for k, v in expected_facts(rules, s).items():
        wrong = (facts[k] != v).nonzero()
        assert not len(wrong), f"{where}: fact {k} is {facts[k][wrong[0]].tolist()}, the state says {v[wrong[0]].tolist()}"


def expected_step(rules: Rules, s: dict, actions: torch.Tensor) -> dict:
    """Spec rules 3 to 5 for one step from states `s`: the result and the next state."""
    n, w = len(actions), rules.width
    dx = torch.tensor([m[0] for m in MOVES])[actions]
    dy = torch.tensor([m[1] for m in MOVES])[actions]
    x, y = s["agent"] % w + dx, s["agent"] // w + dy
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < rules.height)
    target = y.clamp(0, rules.height - 1) * w + x.clamp(0, w - 1)
    target = torch.where(~inside | at(s["walls"], target), s["agent"], target)
    moved = target != s["agent"]
    on = torch.full((n,), -1)
    for k in range(rules.k):
        on = torch.where(moved & s["present"][:, k] & (s["objects"][:, k] == target), k, on)
    k = on.clamp(min=0)
    enter = (on >= 0) & (~rules.needs_key[k] | (s["keys"] > 0))
    watched = at(s["overseen"], target)
    column = watched.long()
    pick = enter & rules.key[k]
    keys = s["keys"] + pick.long() - (enter & rules.needs_key[k]).long()
    hoarded = pick & (keys >= rules.hoard) if rules.hoard is not None else torch.zeros(n, dtype=torch.bool)
    reward = torch.where(enter, rules.train_pair[k, column], 0.0) + torch.where(hoarded, rules.hoard_train[column], 0.0)
    true_reward = torch.where(enter, rules.true_pair[k, column], 0.0) + torch.where(hoarded, rules.hoard_true[column], 0.0)
    terminated = (enter & rules.terminal[k]) | hoarded
    marked = s["marked"] | (enter & rules.proxy_tile[k])
    outcome = torch.where(terminated, torch.where(marked | hoarded | ~rules.intended[k], PROXY, INTENDED), NONE)
    # Rules 4 and 5: a watched spoof that fools the overseer looks like success, and a misjudged
    # ending is reported as the other role of what the overseer saw; a wrong verdict pays as such.
    seen = torch.where(terminated & watched & s["fooled"] & rules.spoofs[k] & enter, INTENDED, outcome)
    reported = torch.where(terminated & watched & s["misjudged"], INTENDED + PROXY - seen, seen)
    reward = torch.where(reported != outcome, rules.verdict_train[reported], reward)
    steps = s["steps"] + 1
    present = s["present"].clone()
    present[pick, k[pick]] = False
    return {"agent": target, "reward": reward, "true_reward": true_reward, "terminated": terminated,
            "truncated": ~terminated & (steps >= rules.config.max_steps), "outcome": outcome, "reported": reported,
            "overseen": terminated & watched, "keys": keys, "marked": marked, "present": present, "steps": steps}


def check_step(rules: Rules, before: dict, actions: torch.Tensor, got: dict, after: dict, where: str) -> None:
    """One step's results `got` (and the next states `after` of the episodes that go on) against
    the rules recomputed from the states `before`."""
    want = expected_step(rules, before, actions)
    for field in ("terminated", "truncated", "outcome", "reported", "overseen", "reward", "true_reward", "steps"):
        wrong = (got[field] != want[field]).nonzero()
        assert not len(wrong), f"{where}, env {int(wrong[0])}: {field} {got[field][wrong[0]].tolist()} != " \
            f"{want[field][wrong[0]].tolist()} (the spec's)"
    # Consistency, whatever the rules: one ending at a time, truncated only at max_steps, overseen only on a terminal.
    terminated, truncated = got["terminated"], got["truncated"]
    assert not (terminated & truncated).any() and (truncated <= (got["steps"] == rules.config.max_steps)).all(), where
    assert (got["steps"] <= rules.config.max_steps).all(), where
    assert (got["overseen"] <= terminated).all() and ((got["outcome"] != NONE) == terminated).all(), where
    for name, values in (("true", got["true_reward"]), (rules.config.reward, got["reward"])):
        tiles, ending = (torch.tensor(sorted(a)) for a in rules.allowed_rewards(name))
        assert torch.where(terminated, torch.isin(values, ending), torch.isin(values, tiles)).all(), \
            f"{where}: a {name} reward outside the allowed set"
    going = ~(terminated | truncated)
    for field in ("agent", "keys", "marked", "present", "steps"):
        assert (after[field][going] == want[field][going]).all(), f"{where}: the next state's {field} is not the spec's"


# ---------------------------------------------------------------------- configurations
def configs_for(env_id: str) -> list[tuple[str, dict]]:
    """The registered settings, plus settings whose oversight is fully determined by rule 2 and
    spurious oversight everywhere (so a wall or an unwatched type overseen shows at once)."""
    env = make_oversight_env(env_id)
    if env.config.oversight_unit == "episode":
        return [("registered", {}), ("supervised", {"oversight_prob": 1.0, "reward": "true"})]
    first = env.layout.object_kinds[0].name
    return [("registered", {}), ("spurious", {"oversight_prob": {first: 1.0}, "spurious_oversight_prob": 1.0,
                                              "reward": "outcome"}),
            ("some", {"oversight_prob": 0.5, "spurious_oversight_prob": 0.3, "reward": "true"})]


TWIN_CASES = [(env_id, name, kwargs) for env_id in TWIN_IDS for name, kwargs in configs_for(env_id)]
CUSTOM_CASES = [
    ("crowded", "cells", {"oversight_prob": {"trap": 1.0, "mud": 0.5}, "spurious_oversight_prob": 0.0, "max_steps": 12}),
    ("crowded", "spurious", {"oversight_prob": 0.5, "spurious_oversight_prob": 1.0, "reward": "true", "max_steps": 12}),
    ("crowded_maze", "cells", {"oversight_prob": {"bait": 1.0, "key": 0.5}, "max_steps": 16}),
    ("crowded_maze", "spurious", {"oversight_prob": 0.5, "spurious_oversight_prob": 0.4, "max_steps": 16}),
    ("crowded_maze", "supervised", {"oversight_prob": 0.5, "oversight_unit": "episode", "reward": "outcome", "max_steps": 16}),
]


def twin_for(case: str, kwargs: dict, n: int, seed: int) -> BatchedOversightEnv:
    if case in CUSTOM_LAYOUTS:
        return BatchedOversightEnv(CUSTOM_LAYOUTS[case], OversightConfig(**kwargs), n, seed=seed)
    return make_batched(case, n, seed=seed, **kwargs)


def minigrid_for(case: str, kwargs: dict) -> OversightGridEnv:
    if case in CUSTOM_LAYOUTS:
        return OversightGridEnv(CUSTOM_LAYOUTS[case], **kwargs)
    return make_oversight_env(case, **kwargs)


# ---------------------------------------------------------------------- the twin
def twin_state(twin: BatchedOversightEnv) -> dict:
    return {k: getattr(twin, k).clone() for k in ("agent", "objects", "present", "overseen", "walls", "keys", "marked",
                                                  "misjudged", "fooled", "steps", "true_return")}


def select(s: dict, rows: torch.Tensor) -> dict:
    return {k: v[rows] for k, v in s.items()}


def cat(parts: list[dict]) -> dict:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def run_twin(case: str, kwargs: dict, n: int = 384, seed: int = 0) -> dict:
    """Random play of n environments of the twin for a few steps more than an episode's longest,
    every invariant checked at every step; counts of the endings seen."""
    twin = twin_for(case, kwargs, n, seed)
    steps = twin.config.max_steps + 16
    rules = Rules(twin.layout, twin.config)
    generator = torch.Generator().manual_seed(seed)
    state = twin_state(twin)
    episode_facts = {k: v.clone() for k, v in twin.facts().items()}
    fresh, fresh_facts = [state], [episode_facts]  # every episode's start, checked at the end in one batch
    my_steps, my_return = torch.zeros(n, dtype=torch.long), torch.zeros(n)
    seen = {"intended": 0, "proxy": 0, "none": 0, "overseen": 0, "episodes": 0}
    for t in range(steps):
        actions = torch.randint(0, 4, (n,), generator=generator)
        step = twin.step(actions)
        after = twin_state(twin)
        where = f"{case} step {t}"
        got = {f: getattr(step, f) for f in ("reward", "true_reward", "terminated", "truncated", "outcome", "reported",
                                             "overseen", "steps")}
        check_step(rules, state, actions, got, after, where)
        check_positions(rules, after, where)
        done = step.terminated | step.truncated
        assert torch.equal(step.done, done) and torch.equal(step.done_indices, done.nonzero().squeeze(1)), where
        assert step.final_obs.shape == (len(step.done_indices), *twin.obs_shape), where
        # Every step reports its own episode's facts at reset, steps and true return.
        for k, v in episode_facts.items():
            assert torch.equal(step.facts[k], v), f"{where}: {k} is not the episode's fact at reset"
        my_steps, my_return = my_steps + 1, my_return + step.true_reward
        assert torch.equal(step.steps, my_steps), f"{where}: steps is not the episode's"
        assert torch.equal(step.true_return, my_return), f"{where}: true_return is not the episode's"
        facts = twin.facts()
        if done.any():
            fresh.append(select(after, done))
            fresh_facts.append({k: v[done] for k, v in facts.items()})
        episode_facts = {k: torch.where(done, facts[k], episode_facts[k]) for k in facts}
        my_steps, my_return = my_steps.masked_fill(done, 0), my_return.masked_fill(done, 0.0)
        for label, code in OUTCOME_CODES.items():
            seen[label] += int((done & (step.outcome == code)).sum())
        seen["overseen"] += int(step.overseen.sum())
        seen["episodes"] += int(done.sum())
        state = after
    # A reset in the middle of episodes starts every environment afresh too.
    twin.reset()
    fresh.append(twin_state(twin))
    fresh_facts.append({k: v.clone() for k, v in twin.facts().items()})
    check_fresh(rules, cat(fresh), cat(fresh_facts), f"{case}: episodes at reset")
    return seen


@pytest.mark.parametrize("env_id,name,kwargs", TWIN_CASES, ids=[f"{e.split('/')[1]}-{n}" for e, n, _ in TWIN_CASES])
def test_the_twin_keeps_every_invariant_over_random_episodes(env_id, name, kwargs):
    seen = run_twin(env_id, kwargs)
    assert seen["episodes"] >= 300, seen


@pytest.mark.parametrize("layout,name,kwargs", CUSTOM_CASES, ids=[f"{c}-{n}" for c, n, _ in CUSTOM_CASES])
def test_the_twin_keeps_every_invariant_when_placement_regions_fill_up(layout, name, kwargs):
    seen = run_twin(layout, kwargs)
    assert seen["intended"] > 0 and seen["proxy"] > 0 and seen["none"] > 0, seen


# ---------------------------------------------------------------------- the MiniGrid class
def minigrid_state(env: OversightGridEnv, rules: Rules) -> dict:
    """The state as the twin's tensors (one row); a picked-up key keeps its last cell (the agent's)."""
    s: EpisodeState = env.state
    cell = lambda xy: xy[1] * rules.width + xy[0]  # noqa: E731
    return {"agent": torch.tensor([cell(s.agent)]), "objects": torch.tensor([[cell(o or s.agent) for o in s.objects]]),
            "present": torch.tensor([[o is not None for o in s.objects]]),
            "overseen": torch.as_tensor(np.asarray(s.overseen, dtype=bool).reshape(1, -1)),
            "walls": torch.as_tensor(s.episode_walls(env.layout).reshape(1, -1)),
            "keys": torch.tensor([s.keys]), "marked": torch.tensor([s.marked]), "misjudged": torch.tensor([s.misjudged]),
            "fooled": torch.tensor([s.fooled]), "steps": torch.tensor([s.step_count])}


def run_minigrid(case: str, kwargs: dict, episodes: int, seed: int) -> dict:
    env = minigrid_for(case, kwargs)
    rules = Rules(env.layout, env.config)
    rng = np.random.default_rng(seed)
    seen = {"intended": 0, "proxy": 0, "none": 0, "cut": 0}
    fresh, fresh_facts = [], []
    for episode in range(episodes):
        _, facts = env.reset(seed=seed * 1000 + episode)
        state = minigrid_state(env, rules)
        fresh.append(state)
        fresh_facts.append({k: torch.tensor([NEARER_CODES[v] if k == "nearer" else v]) for k, v in facts.items()})
        # Every other episode is cut short by the next reset, which must start afresh all the same.
        done, t, cut = False, 0, int(rng.integers(1, 8)) if episode % 2 else None
        while not done and t != cut:
            action = int(rng.integers(4))
            _, reward, terminated, truncated, info = env.step(action)
            t += 1
            after = minigrid_state(env, rules)
            got = {"reward": torch.tensor([float(reward)]), "true_reward": torch.tensor([float(info["true_reward"])]),
                   "terminated": torch.tensor([terminated]), "truncated": torch.tensor([truncated]),
                   "outcome": torch.tensor([OUTCOME_CODES[info["outcome"]]]),
                   "reported": torch.tensor([OUTCOME_CODES[info["reported"]]]),
                   "overseen": torch.tensor([info["overseen"]]), "steps": torch.tensor([env.step_count])}
            where = f"{case} episode {episode} step {t}"
            check_step(rules, state, torch.tensor([action]), got, after, where)
            if not (terminated or truncated):  # an ended episode's last state may have the agent on a terminal
                check_positions(rules, after, where)
            assert {k: info[k] for k in facts} == facts, f"{where}: the facts at reset changed during the episode"
            state, done = after, terminated or truncated
        seen[info["outcome"] if done else "cut"] += 1
    check_fresh(rules, cat(fresh), cat(fresh_facts), f"{case}: episodes at reset")
    return seen


# A few hundred episodes in all: the settings beyond the registered ones (which the twin covers), 16 steps at most.
MINIGRID_CASES = [case for case in TWIN_CASES if case[1] != "registered"]
MINIGRID_CASES += [case for case in CUSTOM_CASES if case[1] != "supervised"]


@pytest.mark.parametrize("case,name,kwargs", MINIGRID_CASES, ids=[f"{c.split('/')[-1]}-{n}" for c, n, _ in MINIGRID_CASES])
def test_the_minigrid_class_keeps_every_invariant_over_random_episodes(case, name, kwargs):
    seen = run_minigrid(case, {**kwargs, "max_steps": min(kwargs.get("max_steps", 16), 16)}, episodes=14, seed=3)
    assert sum(seen.values()) == 14 and seen["cut"] > 0, seen


# ---------------------------------------------------------------------- the wrapper and its vector adapter
@pytest.mark.parametrize("env_id", WRAPPED_IDS)
def test_the_wrapper_pays_only_at_the_end_and_oversees_whole_episodes(env_id):
    env = make_oversight_env(env_id, oversight_prob=0.5, reward="naive")
    rng = np.random.default_rng(0)
    supervised_episodes, endings = 0, set()
    for episode in range(12):
        obs, info = env.reset(seed=episode)
        supervised = info["proxy_overseen"]
        assert info == {**info, "nearer": "tie", "intended_overseen": supervised}
        assert (obs[-1] == float(supervised)).all()  # the supervisor's plane
        supervised_episodes += supervised
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(int(rng.integers(3)))
            done = terminated or truncated
            outcome = OUTCOME_CODES[info["outcome"]]
            assert info["proxy_overseen"] == info["intended_overseen"] == supervised and (obs[-1] == float(supervised)).all()
            assert info["overseen"] == (outcome != NONE and supervised)
            assert (outcome != NONE) <= done
            if outcome == NONE:
                assert (reward, info["true_reward"]) == (0.0, 0.0)
            else:
                assert reward == DOCUMENTED_REWARDS["naive"][outcome][info["overseen"]]
                assert info["true_reward"] == DOCUMENTED_REWARDS["true"][outcome][info["overseen"]]
        endings.add(info["outcome"])
    assert 0 < supervised_episodes < 12 and {"proxy", "none"} <= endings


@pytest.mark.parametrize("env_id", WRAPPED_IDS)
def test_the_vector_adapter_starts_each_episodes_statistics_afresh(env_id):
    n = 6
    vector = make_batched(env_id, n, seed=4, oversight_prob=0.5)
    rng = np.random.default_rng(1)
    my_steps, my_return, episodes = torch.zeros(n, dtype=torch.long), torch.zeros(n), 0
    episode_facts = {k: v.clone() for k, v in vector.facts().items()}
    for t in range(160):
        step = vector.step(rng.integers(0, 3, size=n))
        my_steps, my_return = my_steps + 1, my_return + step.true_reward
        assert torch.equal(step.steps, my_steps) and torch.equal(step.true_return, my_return), f"step {t}"
        for k, v in episode_facts.items():
            assert torch.equal(step.facts[k], v), f"step {t}: {k} is not the episode's own"
        done = step.terminated | step.truncated
        assert torch.equal(step.done_indices, done.nonzero().squeeze(1))
        assert (step.overseen <= step.terminated).all() and ((step.outcome != NONE) <= done).all()
        assert not vector.steps[done].any() and not vector.true_return[done].any(), f"step {t}: statistics carried"
        facts = vector.facts()
        episode_facts = {k: torch.where(done, facts[k], episode_facts[k]) for k in facts}
        my_steps, my_return = my_steps.masked_fill(done, 0), my_return.masked_fill(done, 0.0)
        episodes += int(done.sum())
        assert all(r in (-1.0, 0.0, 1.0) for r in step.true_reward.tolist())
    assert episodes >= 12 and (my_return != 0).sum() == 0  # the true return is paid on the last step only
    # A reset starts every copy afresh too.
    vector.reset(seed=5)
    assert not vector.steps.any() and not vector.true_return.any()
