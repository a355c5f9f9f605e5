"""The lean trainer: rollout, batch and update on the batched twin, readable top to bottom.

One loop serves every method (`agents.methods`: the trainer calls the method's hooks and never
branches on its name) and both update rules (`agents.losses.update`: the paper's REINFORCE with
a learned value baseline, or PPO). Each rollout window becomes labels, weights, returns and
advantages in `agents.batch.build_batch`, the function `RoutedPPO` uses too.

A run lives in one directory (`agents.run_dir`): tensorboard events under `tb/` and
`checkpoint.pt`, everything needed to continue exactly where it stopped (network, optimizer,
environments, random generators, the method's state). Started again, a run continues from its
checkpoint, and its tensorboard events are those an uninterrupted run writes: events logged
after the checkpoint are purged.

The budget is exact: a method that trains N environment steps runs N // batch full updates and,
if N is not a multiple of the batch, one last update on the first N % batch samples of a
shortened window.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.batch import ReturnRule, Rollout, build_batch
from agents.config import TrainConfig
from agents.evaluator import training_evaluation
from agents.files import load_checkpoint, save_atomic
from agents.losses import Samples, UpdateSettings, flatten, update
from agents.methods import ROUTES, get_method
from agents.networks import ActorCritic, sample_actions
from agents.run_dir import CHECKPOINT
from agents.seeding import independent_seeds
from oversight_env import make_batched


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: the schedule of evaluations and
    checkpoints, in environment steps, shared by both trainers."""
    return after // every > before // every


class _Run:
    """What the method's hooks see of the run (`agents.methods.TrainingRun`)."""

    def __init__(self, net: ActorCritic, config: TrainConfig, out_dir: Path, writer: SummaryWriter):
        self.net, self.config, self.out_dir, self.writer, self.env_steps = net, config, out_dir, writer, 0

    def log(self, tag: str, value: float) -> None:
        self.writer.add_scalar(tag, value, self.env_steps)


def train_lean(config: TrainConfig, out_dir: Path, progress: bool = True) -> tuple[ActorCritic, int]:
    """Train `config` in the prepared run directory `out_dir`, resuming from its checkpoint;
    return the trained network (the method's chosen weights) and the environment steps trained."""

    method = get_method(config.method)
    device = config.torch_device()
    env_seed, init_seed, action_seed = independent_seeds(config.seed, 3)
    twin = make_batched(
        config.env_id, config.num_envs, seed=env_seed, device=device,
        **{**config.env_kwargs, "oversight_prob": method.training_oversight(config.oversight_prob), "reward": method.reward},
    )
    torch.manual_seed(init_seed)  # initialised on the CPU whatever the device: the same weights everywhere
    net = ActorCritic(twin.obs_shape, experts=method.experts, hidden=config.hidden, zero_biases=config.zero_biases).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    generator = torch.Generator(device).manual_seed(action_seed)  # actions and PPO's minibatches
    total_steps = method.training_steps(config.steps, config.oversight_prob)
    state: dict[str, Any] = {"env_steps": 0, "method": method.initial_state()}

    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists():
        saved = load_checkpoint(checkpoint_path)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        obs = twin.load_state_dict(saved["twin"])
        state = saved["state"]
    else:
        obs = twin.observe()

    # Events after the checkpoint's step (after step 0 without one) were logged by a run that
    # died before its next checkpoint: this run logs them again, so tensorboard drops the old ones.
    writer = SummaryWriter(out_dir / "tb", purge_step=state["env_steps"] + 1)
    run = _Run(net, config, out_dir, writer)
    rule = ReturnRule(config.algorithm, config.gamma, config.gae_lambda, config.bootstrap)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    bar = tqdm(total=total_steps, initial=state["env_steps"], unit="step", unit_scale=True, disable=not progress,
               desc=f"{config.method} p={config.oversight_prob}")

    while state["env_steps"] < total_steps:
        started = time.perf_counter()
        samples_wanted = min(config.batch_steps, total_steps - state["env_steps"])
        T, B = math.ceil(samples_wanted / config.num_envs), config.num_envs

        # ---- rollout: T steps of B environments, no gradient
        buf = {name: torch.zeros(T, B, device=device) for name in ("rewards", "values", "log_prob", "timeout_values")}
        buf.update(obs=torch.empty(T, B, *twin.obs_shape, device=device),
                   actions=torch.empty(T, B, dtype=torch.long, device=device),
                   outcome=torch.empty(T, B, dtype=torch.long, device=device),
                   **{name: torch.empty(T, B, dtype=torch.bool, device=device) for name in ("done", "truncated", "overseen")})
        true_rewards = []
        with torch.no_grad(), autocast:
            for t in range(T):
                out = net(obs)
                actions, log_prob = sample_actions(out.logits, generator)
                step = twin.step(actions)
                buf["obs"][t], buf["actions"][t], buf["log_prob"][t], buf["values"][t] = obs, actions, log_prob, out.value.float()
                buf["rewards"][t], buf["done"][t], buf["truncated"][t] = step.reward, step.done, step.truncated
                buf["outcome"][t], buf["overseen"][t] = step.outcome, step.overseen
                if rule.bootstraps and bool(step.truncated.any()):
                    timed_out = step.truncated[step.done_indices]
                    buf["timeout_values"][t, step.done_indices[timed_out]] = net.critic(step.final_obs[timed_out]).float().squeeze(-1)
                true_rewards.append(step.true_reward[step.done_indices])
                obs = step.obs
            last_value = net.critic(obs).float().squeeze(-1)

        # ---- labels, weights, returns, advantages; then the update
        rollout = Rollout(buf["rewards"], buf["values"], buf["done"], buf["truncated"], buf["outcome"], buf["overseen"],
                          last_value, buf["timeout_values"])
        batch = build_batch(rollout, method, rule)
        samples = flatten(Samples(buf["obs"], buf["actions"], buf["log_prob"], batch.advantages, batch.returns,
                                  batch.labels, batch.weights), samples_wanted)
        settings = UpdateSettings.from_config(config, state["env_steps"] / total_steps)
        stats = update(net, optimizer, method, settings, samples, generator, autocast)
        before, state["env_steps"] = state["env_steps"], state["env_steps"] + samples_wanted
        run.env_steps = state["env_steps"]
        bar.update(samples_wanted)

        # ---- logging
        ended = buf["done"]
        outcome, overseen = buf["outcome"][ended], buf["overseen"][ended]
        method.after_rollout(state["method"], outcome, overseen)
        for key, value in stats.items():
            run.log(key, value)
        for code, name in ((1, "diamond"), (2, "ghost")):
            run.log(f"train/p_{name}_overseen", float((overseen & (outcome == code)).float().mean()))
            run.log(f"train/p_{name}_unobserved", float((~overseen & (outcome == code)).float().mean()))
        run.log("train/p_timeout", float((outcome == 0).float().mean()))
        run.log("train/true_return", float(torch.cat(true_rewards).mean()))
        for code, name in ROUTES:
            run.log(f"route/fraction_{name}", float((samples.labels == code).float().mean()))
        run.log("route/fraction_kept", float(samples.weights.mean()))
        run.log("loss/entropy_coef", settings.ent_coef)
        run.log("speed/steps_per_second", samples_wanted / (time.perf_counter() - started))

        # ---- periodic evaluation (and the method's own, e.g. early stopping), checkpoints
        last = state["env_steps"] == total_steps
        if crossed(before, state["env_steps"], config.eval_every_steps) or last:
            headline = training_evaluation(net, config, seed=10_000 + state["env_steps"])
            for key, value in headline.items():
                run.log(key, value)
            bar.set_postfix(return_per_step=f"{headline['eval/discounted_return_per_step']:.3f}",
                            p_ghost_unobs=f"{headline['eval/p_ghost_when_unobserved']:.2f}")
            method.at_evaluation(state["method"], run)
        if crossed(before, state["env_steps"], config.checkpoint_every_steps) or last:
            writer.flush()  # the events up to the checkpoint are on disk before it is
            save_atomic({"model": net.state_dict(), "network_config": net.config, "optimizer": optimizer.state_dict(),
                         "generator": generator.get_state(), "twin": twin.state_dict(), "state": state}, checkpoint_path)
    bar.close()
    writer.close()

    chosen = method.final_weights(state["method"], out_dir)
    if chosen is not None:
        net.load_state_dict(load_checkpoint(chosen)["model"])
    return net, state["env_steps"]
