"""`BatchedOversightEnv`: the batched twin, every environment of a batch stepped as tensors.

It follows the rules of `spec.py` for any `GridLayout`, like `OversightGridEnv` does one episode
at a time, with no Python loop over environments: moves are a lookup in the layout's
`next_cell` table, and finished environments reset automatically within the same `step`.
Per-episode results (outcome, oversight, true reward, facts at reset) come back as tensors in
`TwinStep`, so a trainer never builds a dict per environment. `agents.sb3_env.TwinVecEnv` adapts
it to stable-baselines3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oversight_env.spec import (
    REWARDS,
    Action,
    EpisodeState,
    GridLayout,
    Outcome,
    OversightConfig,
    invalid_argument,
)


@dataclass(frozen=True)
class TwinStep:
    """The result of one `BatchedOversightEnv.step`, one row per environment.

    `obs` is the first observation of the next episode where an episode ended (as in SB3 and
    gymnasium's next-step autoreset); the finished episodes' last observations are in
    `final_obs`, one row per index of `done_indices`. `outcome`, `overseen`, `true_reward`,
    `steps` and the facts at reset (`nearer`, `diamond_overseen`, `ghost_overseen`) describe the
    episode each environment was in during this step.
    """

    obs: torch.Tensor  # float32 (B, C, H, W)
    reward: torch.Tensor  # float32 (B,): the configured training reward
    terminated: torch.Tensor  # bool (B,)
    truncated: torch.Tensor  # bool (B,)
    outcome: torch.Tensor  # int64 (B,): Outcome codes, NONE unless terminated
    overseen: torch.Tensor  # bool (B,): ended on an overseen terminal
    true_reward: torch.Tensor  # float32 (B,)
    steps: torch.Tensor  # int64 (B,): steps taken in the episode so far, this one included
    nearer: torch.Tensor  # int64 (B,): index into spec.NEARER_LABELS
    diamond_overseen: torch.Tensor  # bool (B,)
    ghost_overseen: torch.Tensor  # bool (B,)
    done_indices: torch.Tensor  # int64 (D,): environments whose episode ended
    final_obs: torch.Tensor  # float32 (D, C, H, W)

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated

    @property
    def facts(self) -> dict[str, torch.Tensor]:
        """The facts at reset of the episode each environment was in."""
        return {"nearer": self.nearer, "diamond_overseen": self.diamond_overseen, "ghost_overseen": self.ghost_overseen}


class BatchedOversightEnv:
    """`num_envs` independent episodes of one layout and configuration, as tensors.

    Args:
        layout: walls and terminal objects (the same `GridLayout` the MiniGrid class uses).
        config: oversight, rewards, step limit and observation (`OversightConfig`).
        num_envs: batch size.
        seed: seeds the twin's own `torch.Generator`; the same seed gives the same episodes.
        device: torch device of every tensor.

    Use `make_batched(env_id, num_envs)` to build one from a registered environment id.
    """

    render_mode = None

    def __init__(
        self,
        layout: GridLayout,
        config: OversightConfig,
        num_envs: int,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(layout, GridLayout):
            raise invalid_argument("layout", layout, "expected a GridLayout")
        if not isinstance(config, OversightConfig):
            raise invalid_argument("config", config, "expected an OversightConfig")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise invalid_argument("num_envs", num_envs, "expected an integer >= 1")
        config.check_layout(layout)
        self.layout, self.config, self.num_envs = layout, config, int(num_envs)
        self.device = torch.device(device)
        self.plane_names = layout.plane_names(config.observe_oversight)
        self.obs_shape = (len(self.plane_names), layout.height, layout.width)
        self.generator = torch.Generator(self.device)
        self._seed(seed)

        dev = self.device
        self._next_cell = torch.as_tensor(layout.next_cell, device=dev)
        distances = torch.as_tensor(layout.distances, device=dev, dtype=torch.float32)
        self._distances = distances.masked_fill(distances < 0, torch.inf)  # float: amin is fast
        self._free_cells = torch.as_tensor(layout.free_cells, device=dev)
        types = layout.object_types
        self._object_plane = torch.tensor([1 + t for t in types], device=dev)  # plane of each object
        self._object_role = torch.tensor([int(layout.terminals[t].outcome) for t in types], device=dev)
        self._object_prob = torch.tensor([config.prob_for(layout.terminals[t]) for t in types], device=dev)
        self._cell_prob = torch.where(
            torch.as_tensor(layout.walls.reshape(-1), device=dev), 0.0, config.spurious_oversight_prob
        ).float()
        # Rewards indexed by outcome * 2 + overseen.
        self._train_reward = torch.tensor(REWARDS[config.reward], device=dev).reshape(-1)
        self._true_reward = torch.tensor(REWARDS["true"], device=dev).reshape(-1)
        self._static_planes = torch.zeros(self.obs_shape, device=dev).reshape(len(self.plane_names), -1)
        if layout.has_walls:
            self._static_planes[self.plane_names.index("wall")] = torch.as_tensor(layout.walls.reshape(-1))
        self._oversight_plane = self.plane_names.index("oversight") if config.observe_oversight else None
        self.reset()

    def _seed(self, seed: int | None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise invalid_argument("seed", seed, "expected None or an integer >= 0")
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Start a new episode in every environment; returns (obs, facts at reset)."""
        if seed is not None:
            self._seed(seed)
        n, cells = self.num_envs, self.layout.num_cells
        dev = self.device
        self.agent = torch.zeros(n, dtype=torch.long, device=dev)  # flat cell y * W + x
        self.objects = torch.zeros(n, self.layout.num_objects, dtype=torch.long, device=dev)
        self.overseen = torch.zeros(n, cells, dtype=torch.bool, device=dev)
        self.cell_role = torch.zeros(n, cells, dtype=torch.long, device=dev)  # Outcome code per cell
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.planes = torch.zeros(n, *self._static_planes.shape, device=dev)  # all but the agent
        self.nearer = torch.zeros(n, dtype=torch.long, device=dev)
        self.diamond_overseen = torch.zeros(n, dtype=torch.bool, device=dev)
        self.ghost_overseen = torch.zeros(n, dtype=torch.bool, device=dev)
        self._start_episodes(torch.arange(n, device=dev))
        return self._observe(), self.facts()

    def facts(self) -> dict[str, torch.Tensor]:
        """The facts at reset of each environment's current episode."""
        return {"nearer": self.nearer, "diamond_overseen": self.diamond_overseen, "ghost_overseen": self.ghost_overseen}

    def _start_episodes(
        self,
        idx: torch.Tensor,
        agent: torch.Tensor | None = None,
        objects: torch.Tensor | None = None,
        overseen: torch.Tensor | None = None,
    ) -> None:
        """Start new episodes in environments `idx`: drawn at random, or the given cells and map."""
        n, cells = len(idx), self.layout.num_cells
        if agent is None:
            # Distinct uniform free cells: the positions of the 1 + K largest of iid uniforms.
            u = torch.rand(n, len(self._free_cells), generator=self.generator, device=self.device)
            picked = self._free_cells[u.topk(1 + self.layout.num_objects, dim=1).indices]
            agent, objects = picked[:, 0], picked[:, 1:]
            probs = self._cell_prob.expand(n, cells).scatter(1, objects, self._object_prob.expand(n, -1))
            overseen = torch.rand(n, cells, generator=self.generator, device=self.device) < probs
        roles = torch.zeros(n, cells, dtype=torch.long, device=self.device).scatter_(
            1, objects, self._object_role.expand(n, -1)
        )
        planes = self._static_planes.expand(n, -1, -1).clone()
        planes.view(n, -1).scatter_(1, self._object_plane * cells + objects, 1.0)
        if self._oversight_plane is not None:
            planes[:, self._oversight_plane] = overseen.float()

        dist = self._distances[agent[:, None], objects]  # (n, K) steps from the agent to each object
        to_diamond = dist.masked_fill(self._object_role != Outcome.DIAMOND, torch.inf).amin(dim=1)
        to_ghost = dist.masked_fill(self._object_role != Outcome.GHOST, torch.inf).amin(dim=1)
        nearer = torch.where(to_diamond < to_ghost, int(Outcome.DIAMOND), int(Outcome.GHOST))
        nearer = torch.where(to_diamond == to_ghost, int(Outcome.NONE), nearer)
        watched = overseen.gather(1, objects)

        self.agent[idx] = agent
        self.objects[idx] = objects
        self.overseen[idx] = overseen
        self.cell_role[idx] = roles
        self.planes[idx] = planes
        # Out of place: earlier TwinSteps hold these tensors and must keep their values.
        self.steps = self.steps.index_put((idx,), torch.zeros_like(agent))
        self.nearer = self.nearer.index_put((idx,), nearer)
        self.diamond_overseen = self.diamond_overseen.index_put(
            (idx,), (watched & (self._object_role == Outcome.DIAMOND)).any(dim=1)
        )
        self.ghost_overseen = self.ghost_overseen.index_put(
            (idx,), (watched & (self._object_role == Outcome.GHOST)).any(dim=1)
        )

    def _observe(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        obs, agent = (self.planes.clone(), self.agent) if idx is None else (self.planes[idx], self.agent[idx])
        obs[:, 0].scatter_(1, agent[:, None], 1.0)
        return obs.view(len(obs), *self.obs_shape)

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> TwinStep:
        """Move every agent; environments whose episode ends start a new one."""
        actions = self._check_actions(actions)
        self.agent = self._next_cell[self.agent, actions]
        self.steps = self.steps + 1
        outcome = self.cell_role.gather(1, self.agent[:, None]).squeeze(1)
        terminated = outcome != Outcome.NONE
        overseen = self.overseen.gather(1, self.agent[:, None]).squeeze(1) & terminated
        truncated = ~terminated & (self.steps >= self.config.max_steps)
        reward_index = outcome * 2 + overseen
        obs = self._observe()
        done_indices = (terminated | truncated).nonzero().squeeze(1)
        episode = dict(steps=self.steps, **self.facts())  # before the finished episodes restart
        final_obs = obs[done_indices]
        if len(done_indices):
            self._start_episodes(done_indices)
            obs[done_indices] = self._observe(done_indices)
        return TwinStep(
            obs=obs,
            reward=self._train_reward[reward_index],
            terminated=terminated,
            truncated=truncated,
            outcome=outcome,
            overseen=overseen,
            true_reward=self._true_reward[reward_index],
            done_indices=done_indices,
            final_obs=final_obs,
            **episode,
        )

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
    _STATE = ("agent", "objects", "overseen", "cell_role", "planes", "steps", "nearer", "diamond_overseen", "ghost_overseen")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every environment's episode and the generator, to resume exactly where the batch was."""
        return {**{k: getattr(self, k).clone() for k in self._STATE}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Restore a `state_dict()` of a twin of the same layout and size; returns the observation."""
        for k in self._STATE:
            if state[k].shape != getattr(self, k).shape:
                raise ValueError(f"state[{k!r}] of shape {tuple(state[k].shape)} is invalid: expected {tuple(getattr(self, k).shape)}")
            setattr(self, k, state[k].clone().to(self.device))
        self.generator.set_state(state["generator"])
        return self.observe()

    def observe(self) -> torch.Tensor:
        """The current observation of every environment."""
        return self._observe()

    def get_state(self, index: int) -> EpisodeState:
        """Environment `index`'s current episode as an `EpisodeState`."""
        w = self.layout.width

        def xy(cell: int) -> tuple[int, int]:
            return cell % w, cell // w

        return EpisodeState(
            agent=xy(int(self.agent[index])),
            objects=tuple(xy(int(c)) for c in self.objects[index]),
            overseen=self.overseen[index].reshape(self.layout.height, w).cpu().numpy(),
            step_count=int(self.steps[index]),
        )

    def set_state(self, index: int, state: EpisodeState) -> torch.Tensor:
        """Start a new episode in environment `index` from `state`; returns its observation."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_envs:
            raise invalid_argument("index", index, f"expected an integer in [0, {self.num_envs})")
        if not isinstance(state, EpisodeState):
            raise invalid_argument("state", state, "expected an EpisodeState")
        state.check(self.layout)
        w, dev = self.layout.width, self.device
        self._start_episodes(
            torch.tensor([index], device=dev),
            agent=torch.tensor([state.agent[1] * w + state.agent[0]], device=dev),
            objects=torch.tensor([[y * w + x for x, y in state.objects]], device=dev),
            overseen=torch.as_tensor(np.asarray(state.overseen, dtype=bool).reshape(1, -1), device=dev),
        )
        return self._observe(torch.tensor([index], device=dev))[0]
