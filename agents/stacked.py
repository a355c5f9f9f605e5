"""K networks of one architecture trained as one: the member axis of `agents.lean_trainer`.

`StackedNetworks` stacks K `ActorCritic`s' parameters, (K, ...) each, and runs one forward for
all K (`torch.vmap` over `torch.func.functional_call`, so the network has one definition). One
optimizer trains the stacks: Adam is elementwise, so member k's slice moves as it would alone.
`update` is `agents.losses.update` for K members at once: each member's loss is the lone loss
(`agents.losses.output_loss_terms`) on its slice of the batched output, the losses are summed (so
each member's gradient is its own), clipped member by member, and PPO's minibatches are drawn
with each member's generator. Members may train different numbers of samples (carried episodes,
gate replays): their samples are padded to one shape and each loss reads its own rows only.

A checkpoint holds one member's state, as a lone run saves it (`member_optimizer_state`,
`stacked_optimizer_state`), so run directories do not depend on K.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, stack_module_state

from agents.losses import (
    LossTerms,
    Samples,
    UpdateSettings,
    minibatches,
    output_loss_terms,
    read_stats,
    routing_labels,
)
from agents.methods import ROUTES, Method
from agents.networks import ActorCritic, ActorCriticOutput
from oversight_env.spec import invalid_argument
from routing import routed_backward


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


def member_optimizer_state(stacked: dict[str, Any], k: int) -> dict[str, Any]:
    """Member `k`'s part of the state of an elementwise optimizer (Adam) over stacked parameters:
    the state of the same optimizer over member `k`'s network alone, which is what a lone run
    saves. Shared scalars (Adam's step count) are copied; the copies keep checkpoints small (a
    slice saved as it is would carry the whole stacked tensor)."""
    def part(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[k].clone() if value.dim() else value.clone()
        return copy.deepcopy(value)

    return {"state": {i: {key: part(v) for key, v in entry.items()} for i, entry in stacked["state"].items()},
            "param_groups": copy.deepcopy(stacked["param_groups"])}


def stacked_optimizer_state(states: Sequence[dict[str, Any]], out_dirs: Sequence[Path]) -> dict[str, Any]:
    """The state of an optimizer over stacked parameters from each member's own
    (`member_optimizer_state` undone). Shared scalars must agree: members at one step took the
    same number of optimizer steps."""
    first = states[0]
    stacked: dict[Any, dict[str, Any]] = {}
    for i, entry in first["state"].items():
        stacked[i] = {}
        for key, value in entry.items():
            values = [s["state"][i][key] for s in states]
            if isinstance(value, torch.Tensor) and value.dim():
                stacked[i][key] = torch.stack(values)
            elif any(not torch.equal(torch.as_tensor(v), torch.as_tensor(value)) for v in values):
                raise invalid_argument("out_dirs", [str(d) for d in out_dirs],
                                       f"their checkpoints' optimizers disagree on {key!r}; train them one by one")
            else:
                stacked[i][key] = value
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def clip_grad_norm_per_member(parameters: Iterable[torch.Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_` for each member alone: the gradients of stacked parameters
    (K, ...), each member's scaled by the norm of that member's gradient over every parameter."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)  # (K, parameters)
    total = torch.linalg.vector_norm(norms, dim=1)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Tensors (n_k, ...) as one (K, max n_k, ...), zeros after each one's rows."""
    longest = max(len(x) for x in tensors)
    if all(len(x) == longest for x in tensors):
        return torch.stack(list(tensors))
    out = tensors[0].new_zeros(len(tensors), longest, *tensors[0].shape[1:])
    for k, x in enumerate(tensors):
        out[k, :len(x)] = x
    return out


def update(
    nets: StackedNetworks,
    optimizer: torch.optim.Optimizer,
    method: Method,
    settings: UpdateSettings,
    samples: Sequence[Samples],
    generators: Sequence[torch.Generator],
    autocast: AbstractContextManager,
    gate_replays: Sequence[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
) -> list[dict[str, float]]:
    """`agents.losses.update` for K members at once: `samples[k]` (flat) and `gate_replays[k]` are
    member k's, its PPO minibatches drawn with `generators[k]`; each member's last step's stats."""
    for group in optimizer.param_groups:
        group["lr"] = settings.learning_rate
    if settings.algorithm != "ppo":
        return read_stats(_gradient_step(nets, optimizer, method, settings, samples, autocast, gate_replays, normalize=False))
    for rows in zip(*(minibatches(len(s.obs), settings, g) for s, g in zip(samples, generators))):
        chosen = [Samples(*(x[idx] for x in s)) for s, idx in zip(samples, rows)]
        stats = _gradient_step(nets, optimizer, method, settings, chosen, autocast, gate_replays,
                               normalize=[len(idx) > 1 for idx in rows])
    return read_stats(stats)


def _gradient_step(nets: StackedNetworks, optimizer: torch.optim.Optimizer, method: Method, settings: UpdateSettings,
                   samples: Sequence[Samples], autocast: AbstractContextManager,
                   gate_replays: Sequence[tuple[torch.Tensor, torch.Tensor] | None] | None,
                   normalize: bool | Sequence[bool]) -> list[dict[str, torch.Tensor]]:
    counts = [len(s.obs) for s in samples]
    normalize = [normalize] * len(samples) if isinstance(normalize, bool) else list(normalize)
    replays = list(gate_replays) if gate_replays is not None else [None] * len(samples)
    with autocast:
        stacked = Samples(*(padded(x) for x in zip(*samples)))
        out = nets(stacked.obs, routing_labels(method, stacked))
        replay_logits = None
        if any(r is not None for r in replays):
            empty = (stacked.obs.new_zeros(0, *stacked.obs.shape[2:]), None)
            replay_logits = nets.gate_logits(padded([(r or empty)[0] for r in replays]))
        terms, stats = [], []
        for k, (member_samples, count, replay) in enumerate(zip(samples, counts, replays)):
            replay = None if replay is None else (replay_logits[k, :len(replay[1])], replay[1])
            t, s = output_loss_terms(member_output(out, k, count), method, settings, member_samples, normalize[k], replay)
            terms.append(t)
            stats.append(s)
    optimizer.zero_grad()
    if method.route_parameters:
        parameter_routed_backward(nets, terms, [s.labels for s in samples])
    else:
        torch.stack([t.total() for t in terms]).sum().backward()  # summed: each member's gradient as if alone
    if settings.max_grad_norm is not None:
        clip_grad_norm_per_member(nets.params.values(), settings.max_grad_norm)
    optimizer.step()
    return stats


def parameter_routed_backward(nets: StackedNetworks, terms: Sequence[LossTerms], labels: Sequence[torch.Tensor]) -> None:
    """`agents.losses.parameter_routed_backward` over the member axis: each route's terms, summed
    over the members with samples of that route, update every stacked parameter but those the
    route freezes; the gate losses update what they reach."""
    names = {id(p): name for name, p in nets.nets[0].named_parameters()}
    losses, parameters = {}, {}
    for code, _ in ROUTES:
        parts = [t.per_sample[member_labels == code].sum() / len(member_labels)
                 for t, member_labels in zip(terms, labels) if bool((member_labels == code).any())]
        if parts:
            frozen = {names[id(p)] for p in nets.nets[0].actor.frozen_for(code)}
            losses[code] = torch.stack(parts).sum()
            parameters[code] = [p for name, p in nets.params.items() if name not in frozen]
    gates = [t.gate for t in terms if t.gate is not None]
    if gates:
        losses["gate"], parameters["gate"] = torch.stack(gates).sum(), list(nets.params.values())
    routed_backward(losses, parameters)
