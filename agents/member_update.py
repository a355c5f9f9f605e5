"""The update of K stacked networks (`agents.stacked.StackedNetworks`) as one: the member axis of
`agents.lean_trainer`. One optimizer trains the stacks: Adam is elementwise, so member k's slice
moves as it would alone. `update` is `agents.losses.update` for K members at once: each member's loss is the lone loss
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
from agents.stacked import StackedNetworks, member_output
from oversight_env.spec import invalid_argument
from routing import routed_backward


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
