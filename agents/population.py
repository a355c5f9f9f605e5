"""Population training: K seeds of one training cell in one process, with their networks' weights
stacked, so that one batched forward serves every seed (on a GPU, K small networks cost about
what one does).

`train_population(configs, out_dirs)` trains configs that differ only in `seed`, each in its own
run directory, and gives each seed what `agents.lean_trainer.train_lean` would have: the same
twin, initialisation, action generator, method state, tensorboard events, evaluations and
checkpoints (in the lean trainer's format, so either trainer continues the other's run
directory). The numbers agree with K separate runs within float rounding:

- the networks' parameters are stacked (`torch.func.stack_module_state`) and their forward is
  `torch.vmap` of `torch.func.functional_call`: one forward for all K seeds, in the rollout and
  in the update;
- each seed samples its actions with its own generator from its slice of the logits, and steps
  its own twin (a loop over K);
- each seed's loss is `agents.losses.output_loss` on its slice of the batched output, the same
  function `train_lean` uses; the K losses are summed and differentiated once: a seed's loss
  depends on its parameters only, so its gradient lands in its slice, unscaled;
- one Adam over the stacked parameters is K Adams (it is elementwise); gradient clipping scales
  each seed's gradient by that seed's own norm; PPO draws each seed's minibatches with its own
  generator.

Everything around an update (logging, the evaluation and checkpoint schedule, the method's
hooks, the checkpoint's payload) is `agents.lean_trainer.LeanRun`'s, one per seed; evaluations
and the method's hooks see a per-seed `ActorCritic` holding that seed's slice of the weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, stack_module_state
from tqdm import tqdm

from agents.config import TrainConfig
from agents.lean_trainer import (
    LeanRun,
    bf16_autocast,
    record_step,
    return_rule,
    rollout_buffers,
)
from agents.losses import (
    Samples,
    UpdateSettings,
    minibatches,
    output_loss,
    routing_labels,
)
from agents.methods import Method, get_method
from agents.networks import ActorCritic, ActorCriticOutput, sample_actions
from oversight_env.spec import invalid_argument


class StackedNetworks:
    """K networks of one architecture as one: their parameters stacked, (K, ...) each, and one
    forward for all K (`torch.vmap` over the stacked parameters and the K seeds' inputs). The
    stacked parameters are what trains; `sync` copies them into the K networks."""

    def __init__(self, nets: Sequence[ActorCritic]):
        self.nets = list(nets)
        params, buffers = stack_module_state(self.nets)
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self._base = copy.deepcopy(self.nets[0]).to("meta")  # the architecture, without weights

    def __call__(self, obs: torch.Tensor, labels: torch.Tensor | None = None) -> ActorCriticOutput:
        """Each network's output on its own inputs: `obs` (K, B, C, H, W), `labels` (K, B) or None."""

        def forward(weights: dict[str, torch.Tensor], obs: torch.Tensor, labels: torch.Tensor | None) -> tuple:
            out = functional_call(self._base, weights, (obs, labels))
            return tuple(x for x in out if x is not None)  # vmap returns tensors only: one expert has no gate logit

        weights = {**self.params, **self.buffers}
        outs = torch.vmap(forward, in_dims=(0, 0, None if labels is None else 0))(weights, obs, labels)
        return ActorCriticOutput(*outs, *[None] * (len(ActorCriticOutput._fields) - len(outs)))

    def critic(self, obs: torch.Tensor) -> torch.Tensor:
        """Each network's value of its own observations, (K, B, C, H, W) -> (K, B) float32."""

        def value(weights: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
            return functional_call(self._base.critic, weights, (obs,))

        return torch.vmap(value)(self._critic_weights(), obs).float().squeeze(-1)

    def critic_of(self, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Network `k`'s critic alone (for the few final observations of its timed-out episodes)."""
        weights = {name: w[k] for name, w in self._critic_weights().items()}
        return lambda obs: functional_call(self._base.critic, weights, (obs,))

    def _critic_weights(self) -> dict[str, torch.Tensor]:
        weights = {**self.params, **self.buffers}
        return {name.removeprefix("critic."): w for name, w in weights.items() if name.startswith("critic.")}

    def sync(self) -> None:
        """Copy each seed's slice of the stacked weights into its network."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for k, net in enumerate(self.nets):
                for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
                    tensor.copy_(stacked[name][k])


def seed_output(out: ActorCriticOutput, k: int) -> ActorCriticOutput:
    """Seed `k`'s slice of a batched output."""
    return ActorCriticOutput(*(None if x is None else x[k] for x in out))


def seed_samples(samples: Samples, k: int) -> Samples:
    return Samples(*(x[k] for x in samples))


def seed_optimizer_state(stacked: dict[str, Any], k: int) -> dict[str, Any]:
    """Seed `k`'s part of the state of an elementwise optimizer (Adam) over stacked parameters:
    the state of the same optimizer over seed `k`'s network alone, which is what `train_lean`
    saves. Shared scalars (Adam's step count) are copied; the copies keep checkpoints small (a
    slice saved as it is would carry the whole stacked tensor)."""
    def part(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[k].clone() if value.dim() else value.clone()
        return copy.deepcopy(value)

    return {"state": {i: {key: part(v) for key, v in entry.items()} for i, entry in stacked["state"].items()},
            "param_groups": copy.deepcopy(stacked["param_groups"])}


def stacked_optimizer_state(states: Sequence[dict[str, Any]], out_dirs: Sequence[Path]) -> dict[str, Any]:
    """The state of an optimizer over stacked parameters from each seed's own (`seed_optimizer_state`
    undone). Shared scalars must agree: seeds at one step took the same number of optimizer steps."""
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


def clip_grad_norm_per_seed(parameters: Iterable[torch.Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_` for each seed alone: the gradients of stacked parameters
    (K, ...), each seed's scaled by the norm of that seed's gradient over every parameter."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)  # (K, parameters)
    total = torch.linalg.vector_norm(norms, dim=1)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def update_population(
    nets: StackedNetworks,
    optimizer: torch.optim.Optimizer,
    method: Method,
    settings: UpdateSettings,
    samples: Samples,
    generators: Sequence[torch.Generator],
    autocast: AbstractContextManager,
) -> list[dict[str, float]]:
    """`agents.losses.update` for K seeds at once: `samples` stacked (K, N, ...), seed k's PPO
    minibatches drawn with `generators[k]`; each seed's last step's stats."""
    for group in optimizer.param_groups:
        group["lr"] = settings.learning_rate
    if settings.algorithm != "ppo":
        return _gradient_step(nets, optimizer, method, settings, samples, autocast, normalize=False)
    count = samples.obs.shape[1]
    seeds = torch.arange(len(generators), device=samples.obs.device)[:, None]
    stats: list[dict[str, float]] = []
    for idx in zip(*(minibatches(count, settings, g) for g in generators)):
        rows = torch.stack(idx)  # (K, minibatch): seed k's samples in its own order
        stats = _gradient_step(nets, optimizer, method, settings, Samples(*(x[seeds, rows] for x in samples)), autocast,
                               normalize=rows.shape[1] > 1)
    return stats


def _gradient_step(nets: StackedNetworks, optimizer: torch.optim.Optimizer, method: Method, settings: UpdateSettings,
                   samples: Samples, autocast: AbstractContextManager, normalize: bool) -> list[dict[str, float]]:
    with autocast:
        out = nets(samples.obs, routing_labels(method, samples))
        losses, stats = zip(*(output_loss(seed_output(out, k), method, settings, seed_samples(samples, k), normalize)
                              for k in range(len(nets.nets))))
    optimizer.zero_grad()
    torch.stack(losses).sum().backward()  # summed, not averaged: each seed's gradient as if trained alone
    if settings.max_grad_norm is not None:
        clip_grad_norm_per_seed(nets.params.values(), settings.max_grad_norm)
    optimizer.step()
    return list(stats)


def population_supports(trainer: str, method: str) -> bool:
    """Whether seeds of cells with this `trainer` and `method` can train as one population: the
    lean trainer, and a method whose update is one backward pass over one window per seed
    (parameter-level routing needs one per route; carrying running episodes trains a different
    number of samples per seed; a gate replay is not batched)."""
    chosen = get_method(method)
    return trainer == "lean" and not chosen.route_parameters and not chosen.lean_only


def check_population(configs: Sequence[TrainConfig], out_dirs: Sequence[Path]) -> None:
    """Refuse, in one line, what cannot train as one population: configs that differ in anything
    but `seed`, another trainer than the lean one, or not one distinct directory per config."""
    if not configs:
        raise invalid_argument("configs", [], "expected at least one config")
    if len(out_dirs) != len(configs):
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs], f"expected one directory per config ({len(configs)})")
    if len({Path(d).resolve() for d in out_dirs}) != len(out_dirs):
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs], "expected a distinct directory per seed")
    settings = [{k: v for k, v in c.to_json().items() if k != "seed"} for c in configs]
    differ = sorted(k for k in settings[0] if any(s[k] != settings[0][k] for s in settings))
    if differ:
        others = f" (they differ in {differ})" if len(differ) > 1 else ""
        raise invalid_argument(differ[0], [s[differ[0]] for s in settings],
                               f"a population's configs may differ only in seed{others}")
    if configs[0].trainer != "lean":
        raise invalid_argument("trainer", configs[0].trainer, "a population trains with the lean trainer")
    if not population_supports(configs[0].trainer, configs[0].method):
        raise invalid_argument("method", configs[0].method,
                               "a population does not train this method (parameter-level routing, carried "
                               "episodes or a gate replay): train its seeds one by one")


def train_population(configs: Sequence[TrainConfig], out_dirs: Sequence[Path],
                     progress: bool = True) -> list[tuple[ActorCritic, int]]:
    """Train `configs` (identical but for `seed`) as one population, each in its prepared run
    directory, resuming from their checkpoints (which must be at one step); return each seed's
    trained network (the method's chosen weights) and the environment steps it trained."""
    out_dirs = [Path(d) for d in out_dirs]
    check_population(configs, out_dirs)
    runs = [LeanRun(config, out_dir) for config, out_dir in zip(configs, out_dirs)]
    at = sorted({run.env_steps for run in runs})
    if len(at) > 1:
        for run in runs:
            run.writer.close()
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs],
                               f"their checkpoints are at different steps {at}; a population trains its seeds in step")
    config, lead, device = configs[0], runs[0], runs[0].device
    nets = StackedNetworks([run.net for run in runs])
    optimizer = torch.optim.Adam(nets.params.values(), lr=config.learning_rate, eps=config.adam_eps)
    if lead.saved_optimizer is not None:
        optimizer.load_state_dict(stacked_optimizer_state([run.saved_optimizer for run in runs], out_dirs))
    critics = [nets.critic_of(k) for k in range(len(runs))] if return_rule(config).bootstraps else [None] * len(runs)
    autocast = bf16_autocast(config)
    bar = tqdm(total=lead.total_steps * len(runs), initial=lead.env_steps * len(runs), unit="step", unit_scale=True,
               disable=not progress, desc=f"{config.method} p={config.oversight_prob} x{len(runs)} seeds")

    while not lead.finished:
        started = time.perf_counter()
        samples_wanted = lead.window()
        T, B = math.ceil(samples_wanted / config.num_envs), config.num_envs

        # ---- rollout: T steps of B environments per seed, one forward for all seeds, no gradient
        stacked = rollout_buffers((len(runs), T, B), lead.twin.obs_shape, device, lead.method.sees_endings)
        bufs = [{name: x[k] for name, x in stacked.items()} for k in range(len(runs))]
        true_rewards: list[list[torch.Tensor]] = [[] for _ in runs]
        with torch.no_grad(), autocast:
            for t in range(T):
                out = nets(torch.stack([run.obs for run in runs]))
                for k, run in enumerate(runs):
                    actions, log_prob = sample_actions(out.logits[k], run.generator)
                    step = run.twin.step(actions)
                    true_rewards[k].append(record_step(bufs[k], t, run.obs, actions, log_prob, out.value[k], step, critics[k]))
                    run.obs = step.obs
            last_values = nets.critic(torch.stack([run.obs for run in runs]))

        # ---- each seed's labels, weights, returns, advantages; one update of the stacked weights
        per_seed = [run.samples(bufs[k], last_values[k], samples_wanted) for k, run in enumerate(runs)]
        samples = Samples(*(torch.stack(x) for x in zip(*per_seed)))
        settings = lead.update_settings()
        stats = update_population(nets, optimizer, lead.method, settings, samples, [run.generator for run in runs], autocast)
        bar.update(samples_wanted * len(runs))
        seconds = time.perf_counter() - started
        due = [run.after_update(samples_wanted, bufs[k], true_rewards[k], per_seed[k], stats[k], settings, seconds)
               for k, run in enumerate(runs)]
        for run in runs:
            run.log("speed/population_steps_per_second", samples_wanted * len(runs) / seconds)

        # ---- each seed's periodic evaluation (and its method's), checkpoints
        if any(evaluate or checkpoint for evaluate, checkpoint in due):
            nets.sync()
        optimizer_state, returns = optimizer.state_dict(), []
        for k, (run, (evaluate, checkpoint)) in enumerate(zip(runs, due)):
            if evaluate:
                returns.append(run.evaluate()["eval/discounted_return_per_step"])
            if checkpoint:
                run.save_checkpoint(seed_optimizer_state(optimizer_state, k))
        if returns:
            bar.set_postfix(mean_return_per_step=f"{sum(returns) / len(returns):.3f}")
    bar.close()
    return [(run.finish(), run.env_steps) for run in runs]
