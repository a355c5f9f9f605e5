"""`MemberTwins`: the twins of several members behind one twin's interface, stepped one by one.

A trainer's member axis wants one twin of K x N rows, member k's in rows k * N to (k + 1) * N,
each member's episodes drawn from its own random streams. `BatchedOversightEnv` does this itself
(`seeds=`); environments made partial-oversight by a wrapper (`VectorOversightEnv`, a Python
loop over gymnasium environments anyway) get it from this concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from oversight_env.batched import TwinStep
from oversight_env.spec import invalid_argument


class MemberTwins:
    """K twins of N environments each as one twin of K x N rows (see the module docstring)."""

    render_mode = None

    def __init__(self, twins: Sequence[Any]):
        if not twins or len({t.num_envs for t in twins}) != 1:
            raise invalid_argument("twins", len(twins), "expected at least one twin, all of one size")
        self.twins = list(twins)
        first = self.twins[0]
        self.members, self.member_envs = len(self.twins), first.num_envs
        self.num_envs, self.device = self.members * self.member_envs, first.device
        self.plane_names, self.obs_shape, self.n_actions = first.plane_names, first.obs_shape, first.n_actions

    def observe(self) -> torch.Tensor:
        return torch.cat([t.observe() for t in self.twins])

    def reset(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A new episode in every environment of every member; (obs, facts at reset)."""
        parts = [t.reset() for t in self.twins]
        return torch.cat([obs for obs, _ in parts]), {key: torch.cat([f[key] for _, f in parts]) for key in parts[0][1]}

    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> TwinStep:
        actions = torch.as_tensor(actions)
        if actions.shape != (self.num_envs,):
            raise invalid_argument("actions", f"a tensor of shape {tuple(actions.shape)}", f"expected {self.num_envs} actions")
        steps = [t.step(a) for t, a in zip(self.twins, actions.split(self.member_envs))]
        joined = {f.name: torch.cat([getattr(s, f.name) for s in steps]) for f in fields(TwinStep)}
        joined["done_indices"] = torch.cat([s.done_indices + k * self.member_envs for k, s in enumerate(steps)])
        return TwinStep(**joined)

    def state_dict(self) -> dict[str, Any]:
        return {"members": [t.state_dict() for t in self.twins]}

    def load_state_dict(self, state: dict[str, Any]) -> torch.Tensor:
        for twin, member_state in zip(self.twins, state["members"], strict=True):
            twin.load_state_dict(member_state)
        return self.observe()

    def member_state_dict(self, member: int) -> dict[str, Any]:
        return self.twins[member].state_dict()

    def load_member_state_dict(self, member: int, state: dict[str, Any]) -> torch.Tensor:
        self.twins[member].load_state_dict(state)
        return self.observe()
