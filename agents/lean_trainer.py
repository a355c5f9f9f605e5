"""The lean trainer: rollout, batch and update on the batched twin, readable top to bottom.

One loop serves every method (`agents.methods`: the trainer calls the method's hooks and never
branches on its name) and both update rules (`agents.losses.update`: the paper's REINFORCE with
a learned value baseline, or PPO). Each rollout window becomes labels, weights, returns and
advantages in `agents.batch.build_batch`, the function `RoutedPPO` uses too.

`LeanRun` is one run's parts and what happens around each update (logging, evaluations,
checkpoints); `train_lean` is the loop of one run, and a population of seeds
(`agents.population`) trains K `LeanRun`s with one batched network.

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
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.batch import ReturnRule, Rollout, build_batch
from agents.carry import extend, split
from agents.config import TrainConfig
from agents.evaluator import training_evaluation
from agents.files import load_checkpoint, save_atomic
from agents.losses import Samples, UpdateSettings, flatten, update
from agents.methods import ROUTES, get_method
from agents.networks import ActorCritic, planes_shown, sample_actions
from agents.run_dir import CHECKPOINT
from agents.seeding import evaluation_seed, independent_seeds
from oversight_env import make_batched
from oversight_env.batched import TwinStep


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: the schedule of evaluations and
    checkpoints, in environment steps, shared by both trainers."""
    return after // every > before // every


def bf16_autocast(config: TrainConfig) -> AbstractContextManager:
    """The forward passes' autocast: bfloat16 when `config.bf16`, else a no-op."""
    return torch.autocast(config.torch_device().type, dtype=torch.bfloat16, enabled=config.bf16)


def return_rule(config: TrainConfig) -> ReturnRule:
    return ReturnRule(config.algorithm, config.gamma, config.gae_lambda, config.bootstrap)


def rollout_buffers(
    shape: tuple[int, ...], obs_shape: tuple[int, ...], device: torch.device, endings: bool = False
) -> dict[str, torch.Tensor]:
    """Empty buffers of a rollout window, each `shape` ((T, B): steps x environments) by item;
    with `endings`, also the last observation of each episode that ended (`Method.sees_endings`)."""
    buf = {name: torch.zeros(*shape, device=device) for name in ("rewards", "values", "log_prob", "timeout_values")}
    if endings:
        buf["final_obs"] = torch.zeros(*shape, *obs_shape, device=device)
    buf.update(obs=torch.empty(*shape, *obs_shape, device=device),
               actions=torch.empty(*shape, dtype=torch.long, device=device),
               outcome=torch.empty(*shape, dtype=torch.long, device=device),
               **{name: torch.empty(*shape, dtype=torch.bool, device=device) for name in ("done", "truncated", "overseen")})
    return buf


def record_step(
    buf: dict[str, torch.Tensor],
    t: int,
    obs: torch.Tensor,
    actions: torch.Tensor,
    log_prob: torch.Tensor,
    value: torch.Tensor,
    step: TwinStep,
    critic: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    """Write step `t` of a rollout window into `buf`: the observation acted on, the action, its log
    probability and the value, and what the environments did. With a `critic`, the values of the
    final observations of episodes cut off by the step limit too. Returns the true returns of the
    episodes that ended."""
    buf["obs"][t], buf["actions"][t], buf["log_prob"][t], buf["values"][t] = obs, actions, log_prob, value.float()
    buf["rewards"][t], buf["done"][t], buf["truncated"][t] = step.reward, step.done, step.truncated
    buf["outcome"][t], buf["overseen"][t] = step.outcome, step.overseen
    if "final_obs" in buf:
        buf["final_obs"][t, step.done_indices] = step.final_obs
    if critic is not None and bool(step.truncated.any()):
        timed_out = step.truncated[step.done_indices]
        buf["timeout_values"][t, step.done_indices[timed_out]] = critic(step.final_obs[timed_out]).float().squeeze(-1)
    return step.true_return[step.done_indices]


class LeanRun:
    """One run of the lean trainer in its run directory: what `train_lean` builds for a config
    (the twin, the initialised network, the action generator, the method's state, the tensorboard
    writer), resumed from the directory's checkpoint if it has one; and what happens around each
    update (logging, evaluations, checkpoints). A population (`agents.population`) builds one per
    seed. It is also what the method's hooks see of the run (`agents.methods.TrainingRun`).

    The optimizer belongs to the caller: a resumed run's saved optimizer state is
    `saved_optimizer` (None for a new run), and `save_checkpoint` takes the state to save.
    """

    def __init__(self, config: TrainConfig, out_dir: Path):
        self.config, self.out_dir = config, out_dir
        self.method = method = get_method(config.method)
        self.device = device = config.torch_device()
        env_seed, init_seed, action_seed = independent_seeds(config.seed, 3)
        self.twin = make_batched(
            config.env_id, config.num_envs, seed=env_seed, device=device,
            **{**config.env_kwargs, "oversight_prob": method.training_oversight(config.oversight_prob), "reward": method.reward},
        )
        torch.manual_seed(init_seed)  # initialised on the CPU whatever the device: the same weights everywhere
        self.net = ActorCritic(self.twin.obs_shape, self.twin.n_actions, experts=method.experts, hidden=config.hidden,
                               zero_biases=config.zero_biases,
                               gate_planes=planes_shown(self.twin.plane_names, method.gate_hides),
                               gate_from_policy=method.gate_from_policy).to(device)
        self.generator = torch.Generator(device).manual_seed(action_seed)  # actions and PPO's minibatches
        self.total_steps = method.training_steps(config.steps, config.oversight_prob)
        self.state: dict[str, Any] = {"env_steps": 0, "method": method.initial_state(self.twin.plane_names)}
        self.saved_optimizer: dict[str, Any] | None = None
        self.carry: dict[str, torch.Tensor] | None = None  # steps waiting for their episode's end (agents.carry)

        checkpoint_path = out_dir / CHECKPOINT
        if checkpoint_path.exists():
            saved = load_checkpoint(checkpoint_path)
            self.net.load_state_dict(saved["model"])
            self.saved_optimizer = saved["optimizer"]
            self.generator.set_state(saved["generator"])
            self.obs = self.twin.load_state_dict(saved["twin"])
            self.state = saved["state"]
            self.carry = saved.get("carry")
            if self.carry is not None:
                self.carry = {key: value.to(device) for key, value in self.carry.items()}
        else:
            self.obs = self.twin.observe()
        self.env_steps = self.state["env_steps"]

        # Events after the checkpoint's step (after step 0 without one) were logged by a run that
        # died before its next checkpoint: this run logs them again, so tensorboard drops the old ones.
        self.writer = SummaryWriter(out_dir / "tb", purge_step=self.state["env_steps"] + 1)

    @property
    def finished(self) -> bool:
        return self.state["env_steps"] >= self.total_steps

    def window(self) -> int:
        """The number of samples the next update trains on: a batch, or what is left of the budget."""
        return min(self.config.batch_steps, self.total_steps - self.state["env_steps"])

    def update_settings(self) -> UpdateSettings:
        return UpdateSettings.from_config(self.config, self.state["env_steps"] / self.total_steps)

    def samples(self, buf: dict[str, torch.Tensor], last_value: torch.Tensor, samples_wanted: int) -> Samples:
        """A rollout window's samples: labels, weights, returns and advantages (`build_batch`),
        flat, the first `samples_wanted` of them. A method that carries running episodes
        (`agents.carry`) gets the carried steps before the window, and trains only the steps whose
        episode has ended; the others wait in `carry` for the next window."""
        buf = self.method.prepare_window(self.state["method"], buf)
        if not self.method.carry_running_episodes:
            batch = build_batch(self._rollout(buf, last_value), self.method, return_rule(self.config))
            return flatten(Samples(buf["obs"], buf["actions"], buf["log_prob"], batch.advantages, batch.returns,
                                   batch.labels, batch.weights), samples_wanted)
        steps, envs = buf["done"].shape
        valid = torch.arange(steps * envs, device=self.device).view(steps, envs) < samples_wanted
        window, valid = extend(self.carry, buf, valid)
        batch = build_batch(self._rollout(window, last_value), self.method, return_rule(self.config))
        trained, self.carry = split(window, valid)
        return Samples(*(x[trained] for x in (window["obs"], window["actions"], window["log_prob"], batch.advantages,
                                              batch.returns, batch.labels, batch.weights)))

    @staticmethod
    def _rollout(buf: dict[str, torch.Tensor], last_value: torch.Tensor) -> Rollout:
        return Rollout(buf["rewards"], buf["values"], buf["done"], buf["truncated"], buf["outcome"], buf["overseen"],
                       last_value, buf["timeout_values"])

    def log(self, tag: str, value: float) -> None:
        self.writer.add_scalar(tag, value, self.env_steps)

    def after_update(
        self,
        samples_wanted: int,
        buf: dict[str, torch.Tensor],
        true_rewards: list[torch.Tensor],
        samples: Samples,
        stats: dict[str, float],
        settings: UpdateSettings,
        seconds: float,
    ) -> tuple[bool, bool]:
        """Count the `samples_wanted` steps trained, tell the method the rollout's episode ends and
        the samples trained on, and log the update; return whether an evaluation and whether a
        checkpoint are due now."""
        before = self.state["env_steps"]
        self.state["env_steps"] = self.env_steps = before + samples_wanted
        ended = buf["done"]
        outcome, overseen = buf["outcome"][ended], buf["overseen"][ended]
        self.method.after_rollout(self.state["method"], outcome, overseen)
        self.method.after_update(self.state["method"], samples.obs, samples.labels)
        for key, value in stats.items():
            self.log(key, value)
        for code, name in ((1, "diamond"), (2, "ghost")):
            self.log(f"train/p_{name}_overseen", float((overseen & (outcome == code)).float().mean()))
            self.log(f"train/p_{name}_unobserved", float((~overseen & (outcome == code)).float().mean()))
        self.log("train/p_timeout", float((outcome == 0).float().mean()))
        self.log("train/true_return", float(torch.cat(true_rewards).mean()))
        for code, name in ROUTES:
            self.log(f"route/fraction_{name}", float((samples.labels == code).float().mean()))
        self.log("route/fraction_kept", float(samples.weights.mean()))
        self.log("route/samples_trained", len(samples.labels))
        self.log("loss/entropy_coef", settings.ent_coef)
        self.log("speed/steps_per_second", samples_wanted / seconds)
        after, config = self.state["env_steps"], self.config
        return (crossed(before, after, config.eval_every_steps) or self.finished,
                crossed(before, after, config.checkpoint_every_steps) or self.finished)

    def evaluate(self) -> dict[str, float]:
        """The periodic evaluation of `net` (logged), then the method's own (e.g. early stopping's)."""
        seed = evaluation_seed(self.config.seed, "training_evaluation", self.state["env_steps"])
        headline = training_evaluation(self.net, self.config, seed=seed)
        for key, value in headline.items():
            self.log(key, value)
        self.method.at_evaluation(self.state["method"], self)
        return headline

    def save_checkpoint(self, optimizer_state: dict[str, Any]) -> None:
        """Save everything needed to continue exactly from here, with the optimizer's `optimizer_state`."""
        self.writer.flush()  # the events up to the checkpoint are on disk before it is
        save_atomic({"model": self.net.state_dict(), "network_config": self.net.config, "optimizer": optimizer_state,
                     "generator": self.generator.get_state(), "twin": self.twin.state_dict(), "state": self.state,
                     "carry": self.carry},
                    self.out_dir / CHECKPOINT)

    def finish(self) -> ActorCritic:
        """Close the run; `net` holding the method's chosen weights (by default the last ones)."""
        self.writer.close()
        chosen = self.method.final_weights(self.state["method"], self.out_dir)
        if chosen is not None:
            self.net.load_state_dict(load_checkpoint(chosen)["model"])
        return self.net


def train_lean(config: TrainConfig, out_dir: Path, progress: bool = True) -> tuple[ActorCritic, int]:
    """Train `config` in the prepared run directory `out_dir`, resuming from its checkpoint;
    return the trained network (the method's chosen weights) and the environment steps trained."""

    run = LeanRun(config, out_dir)
    net, twin, generator, device = run.net, run.twin, run.generator, run.device
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    if run.saved_optimizer is not None:
        optimizer.load_state_dict(run.saved_optimizer)
    critic = net.critic if return_rule(config).bootstraps else None
    autocast = bf16_autocast(config)
    bar = tqdm(total=run.total_steps, initial=run.env_steps, unit="step", unit_scale=True, disable=not progress,
               desc=f"{config.method} p={config.oversight_prob}")

    while not run.finished:
        started = time.perf_counter()
        samples_wanted = run.window()
        T, B = math.ceil(samples_wanted / config.num_envs), config.num_envs

        # ---- rollout: T steps of B environments, no gradient
        buf = rollout_buffers((T, B), twin.obs_shape, device, run.method.sees_endings)
        true_rewards = []
        with torch.no_grad(), autocast:
            for t in range(T):
                out = net(run.obs)
                actions, log_prob = sample_actions(out.logits, generator)
                step = twin.step(actions)
                true_rewards.append(record_step(buf, t, run.obs, actions, log_prob, out.value, step, critic))
                run.obs = step.obs
            last_value = net.critic(run.obs).float().squeeze(-1)

        # ---- labels, weights, returns, advantages; then the update; logging
        samples = run.samples(buf, last_value, samples_wanted)
        settings = run.update_settings()
        replay = run.method.gate_replay(run.state["method"], generator)
        stats = update(net, optimizer, run.method, settings, samples, generator, autocast, replay)
        bar.update(samples_wanted)
        evaluate, checkpoint = run.after_update(samples_wanted, buf, true_rewards, samples, stats, settings,
                                                time.perf_counter() - started)

        # ---- periodic evaluation (and the method's own, e.g. early stopping), checkpoints
        if evaluate:
            headline = run.evaluate()
            bar.set_postfix(return_per_step=f"{headline['eval/discounted_return_per_step']:.3f}",
                            p_ghost_unobs=f"{headline['eval/p_ghost_when_unobserved']:.2f}")
        if checkpoint:
            run.save_checkpoint(optimizer.state_dict())
    bar.close()
    return run.finish(), run.env_steps
