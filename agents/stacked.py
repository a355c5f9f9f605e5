"""K networks of one architecture run as one: the member axis of `agents.lean_trainer`.

`StackedNetworks` stacks K `ActorCritic`s' parameters, (K, ...) each, and runs one forward for
all K (`torch.vmap` over `torch.func.functional_call` on CUDA, member by member on a CPU, so the
network has one definition). `agents.member_update` trains the stacks; the evaluator plays them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch.func import functional_call, stack_module_state

from agents.networks import ActorCritic, ActorCriticOutput


class StackedNetworks:
    """K networks of one architecture as one: their parameters stacked, (K, ...) each, and one
    forward for all K. The stacked parameters are what trains; `sync` copies them into the K
    networks (which evaluations, checkpoints and the methods' hooks read).

    `batched` (default: on CUDA) runs the K forwards as one (`torch.vmap`: batched matrix
    products, what a GPU wants); otherwise they run one after another on each member's slice of
    the stacks (`unbind`), the kernels of a lone network, which on a CPU is faster than vmap's
    (measured: 4 members under vmap took 2.1x the time of 4 lone runs one after another)."""

    def __init__(self, nets: Sequence[ActorCritic], batched: bool | None = None):
        self.nets = list(nets)
        params, buffers = stack_module_state(self.nets)
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self._base = copy.deepcopy(self.nets[0]).to("meta")  # the architecture, without weights
        device = next(iter(self.params.values())).device
        self.batched = device.type == "cuda" if batched is None else batched

    def __len__(self) -> int:
        return len(self.nets)

    def __call__(self, obs: torch.Tensor, labels: torch.Tensor | None = None) -> ActorCriticOutput:
        """Each network's output on its own inputs: `obs` (K, B, C, H, W), `labels` (K, B) or None."""

        def forward(weights: dict[str, torch.Tensor], obs: torch.Tensor, labels: torch.Tensor | None) -> tuple:
            out = functional_call(self._base, weights, (obs, labels))
            return tuple(x for x in out if x is not None)  # vmap returns tensors only: one expert has no gate logit

        weights = {**self.params, **self.buffers}
        if self.batched and len(self) > 1:
            outs = torch.vmap(forward, in_dims=(0, 0, None if labels is None else 0))(weights, obs, labels)
        else:
            members = self._members(weights)
            outs = tuple(torch.stack(parts) for parts in zip(*(
                forward(w, obs[k], None if labels is None else labels[k]) for k, w in enumerate(members))))
        return ActorCriticOutput(*outs, *[None] * (len(ActorCriticOutput._fields) - len(outs)))

    @property
    def architecture(self) -> ActorCritic:
        """The networks' architecture, without weights: its mode (`eval`) and ablations are what
        every forward of the stacks runs."""
        return self._base

    def member_outputs(self, obs: torch.Tensor, rows: Sequence[torch.Tensor]) -> list[ActorCriticOutput]:
        """Member k's output on rows `rows[k]` of `obs` (K x B rows, member k's in rows k * B to
        (k + 1) * B): batched, one forward of every row; otherwise member by member on its rows only."""
        weights = {**self.params, **self.buffers}
        if self.batched and len(self) > 1:
            full = self(obs.view(len(self), -1, *obs.shape[1:]))
            flat = ActorCriticOutput(*(None if x is None else x.reshape(-1, *x.shape[2:]) for x in full))
            return [ActorCriticOutput(*(None if x is None else x[r] for x in flat)) for r in rows]
        return [functional_call(self._base, w, (obs[r],)) for w, r in zip(self._members(weights), rows)]

    def _members(self, weights: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Each member's weights, views of the stacks (one `unbind` each: one backward op)."""
        slices = {name: w.unbind(0) for name, w in weights.items()}
        return [{name: parts[k] for name, parts in slices.items()} for k in range(len(self))]

    def critic(self, obs: torch.Tensor) -> torch.Tensor:
        """Each network's value of its own observations, (K, B, C, H, W) -> (K, B) float32."""
        return self._each("critic", obs).float().squeeze(-1)

    def gate_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Each routed network's gate logit on its own observations, (K, B, C, H, W) -> (K, B)."""
        return self._each("actor.gate", obs).squeeze(-1)

    def _each(self, path: str, obs: torch.Tensor) -> torch.Tensor:
        """Each network's submodule `path` on its own inputs (K, B, ...)."""
        module, weights = self._base.get_submodule(path), self._weights_of(path + ".")
        if self.batched and len(self) > 1:
            return torch.vmap(lambda w, x: functional_call(module, w, (x,)))(weights, obs)
        return torch.stack([functional_call(module, w, (obs[k],)) for k, w in enumerate(self._members(weights))])

    def critic_of_rows(self, obs: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
        """The value of each row of `obs` (D, C, H, W), the final observations of rows `rows` (D,)
        of a K x `width` batch (member k's in rows k * width to (k + 1) * width), by its member's
        network: batched, one forward of a full batch holding them; otherwise member by member."""
        members = rows // width
        if self.batched and len(self) > 1:
            full = obs.new_zeros(len(self), width, *obs.shape[1:])
            full[members, rows % width] = obs
            return self.critic(full)[members, rows % width]
        values = torch.empty(len(obs), device=obs.device)
        weights = self._weights_of("critic.")
        for k in members.unique().tolist():
            chosen = members == k
            member_weights = {name: w[k] for name, w in weights.items()}
            values[chosen] = functional_call(self._base.critic, member_weights, (obs[chosen],)).float().squeeze(-1)
        return values

    def _weights_of(self, prefix: str) -> dict[str, torch.Tensor]:
        weights = {**self.params, **self.buffers}
        return {name.removeprefix(prefix): w for name, w in weights.items() if name.startswith(prefix)}

    def sync(self) -> None:
        """Copy each member's slice of the stacked weights into its network."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for k, net in enumerate(self.nets):
                for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
                    tensor.copy_(stacked[name][k])


def member_output(out: ActorCriticOutput, k: int, count: int | None = None) -> ActorCriticOutput:
    """Member `k`'s slice of a batched output (its first `count` rows)."""
    return ActorCriticOutput(*(None if x is None else x[k, :count] for x in out))


