"""Gradient-routed PPO in stable-baselines3: `RoutedActorCriticPolicy` and `RoutedPPO`.

Written against stable-baselines3 2.9, which pyproject.toml pins: it overrides `PPO.train` and
`RolloutBuffer.get`, and relies on `collect_rollouts` calling `_update_info_buffer` between
`env.step` and `rollout_buffer.add`.

- The policy wraps `agents.networks.ActorCritic`, the network every trainer shares.
- The rollout buffer also stores, per step, whether the episode ended there and the method's
  label of the ended episode (read from the environment's end-of-episode info: `outcome`,
  `overseen`), propagates labels back through each episode (`routing.propagate_episode_labels`),
  and hands labels and sample weights to the loss.
- `train` computes `agents.losses.policy_loss`, the loss the lean trainer uses, with PPO's clipped
  surrogate. Everything else (GAE, minibatches, epochs, gradient clipping, logging, save/load,
  predict) is SB3's own.

Works with any SB3 vector environment of a partial-oversight env: `DummyVecEnv` of MiniGrid
environments or the batched twin's `TwinVecEnv`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv
from tqdm import tqdm

from agents.config import TrainConfig
from agents.evaluator import training_evaluation
from agents.losses import LossSettings, policy_loss
from agents.methods import ROUTES, Method, get_method
from agents.networks import ActorCritic
from agents.sb3_env import make_twin_vec_env
from oversight_env.spec import OUTCOME_CODES, invalid_argument
from routing import propagate_episode_labels


class RoutedActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy whose network is `ActorCritic` (routed or single expert)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        experts: tuple[str, ...] = ("diamond", "ghost"),
        hidden: int = 256,
        bf16: bool = False,
        **kwargs: Any,
    ):
        self.experts, self.hidden, self.bf16 = tuple(experts), hidden, bf16
        kwargs.setdefault("ortho_init", False)  # keep PyTorch's default initialization, as published
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule) -> None:
        self.net = ActorCritic(self.observation_space.shape, int(self.action_space.n), self.experts, self.hidden)
        self.optimizer = self.optimizer_class(self.net.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "experts": self.experts, "hidden": self.hidden,
                "bf16": self.bf16}

    def autocast(self) -> torch.autocast:
        """bfloat16 autocast for the network's forward passes when `bf16`, else nothing."""
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def _logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            out = self.net(obs)
        return out.logits.float(), out.value.float()[:, None]

    def forward(self, obs: torch.Tensor, deterministic: bool = False):
        logits, value = self._logits_and_value(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, value, dist.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):
        logits, value = self._logits_and_value(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        return value, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: torch.Tensor):
        return self.action_dist.proba_distribution(action_logits=self._logits_and_value(obs)[0])

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.net.critic(obs).float()

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


class RoutedRolloutBufferSamples(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


class RoutedRolloutBuffer(RolloutBuffer):
    """A `RolloutBuffer` that also carries each step's routing label and sample weight."""

    def reset(self) -> None:
        super().reset()
        shape = (self.buffer_size, self.n_envs)
        self.dones = np.zeros(shape, dtype=bool)
        self.final_labels = np.zeros(shape, dtype=np.int64)
        self.final_kept = np.zeros(shape, dtype=np.int64)
        self.labels = np.zeros(shape, dtype=np.int64)
        self.weights = np.ones(shape, dtype=np.float32)

    def record_episode_ends(self, method: Method, dones: np.ndarray, infos: list[dict]) -> None:
        """Note which episodes end at the step about to be added, and their label and filter code."""
        outcome = np.zeros(self.n_envs, dtype=np.int64)
        overseen = np.zeros(self.n_envs, dtype=bool)
        for i in np.flatnonzero(dones):
            outcome[i] = OUTCOME_CODES[infos[i]["outcome"]]
            overseen[i] = infos[i]["overseen"]
        outcome_t, overseen_t = torch.from_numpy(outcome), torch.from_numpy(overseen)
        self.dones[self.pos] = dones
        self.final_labels[self.pos] = method.episode_labels(outcome_t, overseen_t).numpy()
        self.final_kept[self.pos] = method.episode_kept(outcome_t, overseen_t).numpy()

    def finish_episode_labels(self, method: Method) -> None:
        """Propagate episode-end labels back to every step (see `routing.labels` for episodes
        still running at the end of the rollout) and derive the filtering weights."""
        done = torch.from_numpy(self.dones)
        if method.uses_labels:
            self.labels = propagate_episode_labels(done, torch.from_numpy(self.final_labels)).numpy()
        if method.filter_unobserved:
            kept = propagate_episode_labels(done, torch.from_numpy(self.final_kept)).numpy()
            self.weights = (kept == 1).astype(np.float32)

    def get(self, batch_size: int | None = None) -> Generator[RoutedRolloutBufferSamples, None, None]:
        if not self.generator_ready:
            self.labels = self.swap_and_flatten(self.labels)
            self.weights = self.swap_and_flatten(self.weights)
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> RoutedRolloutBufferSamples:
        base = super()._get_samples(batch_inds, env)
        extra = (self.labels[batch_inds].flatten(), self.weights[batch_inds].flatten())
        return RoutedRolloutBufferSamples(*base, *map(self.to_torch, extra))


class RoutedPPO(PPO):
    """PPO that trains any method of `agents.methods` (but early stopping, which the lean trainer
    does) with SB3. `env` must give the method's training reward (`method.reward`).

    Example::

        env = make_twin_vec_env("OversightGrid/DiamondGhost-5x5-v0", 64, oversight_prob=0.1, reward="outcome")
        model = RoutedPPO(env, method="routing", n_steps=32, batch_size=512)
        model.learn(100_000)
        model.save("routing.zip"); model = RoutedPPO.load("routing.zip")
    """

    def __init__(
        self,
        env: VecEnv | None,
        method: str = "routing",
        gate_coef: float = TrainConfig.gate_coef,
        ent_coef: float = TrainConfig.ent_coef,
        policy: type[RoutedActorCriticPolicy] = RoutedActorCriticPolicy,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ):
        self.method = get_method(method)  # `load` restores the saved method after construction
        if self.method.early_stopping:
            raise invalid_argument("method", method, "early stopping runs in the lean trainer (oversight train --trainer lean)")
        if env is not None and _init_setup_model:
            reward = env.get_attr("config")[0].reward
            if reward != self.method.reward:
                raise invalid_argument("env reward", reward, f"method {method!r} trains on reward={self.method.reward!r}")
        self.gate_coef = gate_coef
        policy_kwargs = {**kwargs.pop("policy_kwargs", {}), "experts": self.method.experts}
        super().__init__(
            policy, env, ent_coef=ent_coef, rollout_buffer_class=RoutedRolloutBuffer,
            policy_kwargs=policy_kwargs, _init_setup_model=_init_setup_model, **kwargs,
        )

    def collect_rollouts(self, env, callback, rollout_buffer: RoutedRolloutBuffer, n_rollout_steps: int) -> bool:
        self._recording = True
        try:
            result = super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        finally:
            self._recording = False
        rollout_buffer.finish_episode_labels(self.method)
        return result

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        # SB3 calls this once per environment step, between `env.step` and `rollout_buffer.add`:
        # the moment the step's end-of-episode infos are at hand and the buffer's row is the step's.
        super()._update_info_buffer(infos, dones)
        if getattr(self, "_recording", False):
            self.rollout_buffer.record_episode_ends(self.method, dones, infos)

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        settings = LossSettings("ppo", self.ent_coef, self.vf_coef, self.gate_coef, float(self.clip_range(self._current_progress_remaining)))
        stats: dict[str, float] = {}
        for _ in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                with self.policy.autocast():
                    loss, stats = policy_loss(
                        self.policy.net, self.method, settings, batch.observations, batch.actions.long().flatten(),
                        advantages, batch.returns, batch.labels, batch.weights, batch.old_log_prob,
                    )
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
        self._n_updates += self.n_epochs
        labels = self.rollout_buffer.labels
        for key, value in stats.items():
            self.logger.record(key.replace("loss/", "train/"), value)
        for code, name in ROUTES:
            self.logger.record(f"route/fraction_{name}", float((labels == code).mean()))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")


class _RunCallback(BaseCallback):
    """Progress bar, periodic evaluation (to tensorboard) and atomic checkpoints for `train_sb3`."""

    def __init__(self, config: TrainConfig, out_dir: Path, total: int, progress: bool):
        super().__init__()
        self.config, self.out_dir, self.total, self.progress = config, out_dir, total, progress
        self.next_eval = self.next_checkpoint = 0

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, initial=self.num_timesteps, unit="step", unit_scale=True,
                        disable=not self.progress, desc=f"{self.config.method} p={self.config.oversight_prob} (sb3)")
        self.next_eval = self.num_timesteps + self.config.eval_every_steps
        self.next_checkpoint = self.num_timesteps + self.config.checkpoint_every_steps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.num_timesteps - self.bar.n)
        self.model.ent_coef = self.config.entropy_bonus(self.num_timesteps / self.total)
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.config.eval_every_steps
            for key, value in training_evaluation(self.model.policy.net, self.config, seed=10_000 + self.num_timesteps).items():
                self.logger.record(key, value)
        if self.num_timesteps >= self.next_checkpoint:
            self.next_checkpoint += self.config.checkpoint_every_steps
            save_model_atomic(self.model, self.out_dir / "checkpoint.zip")

    def _on_training_end(self) -> None:
        self.bar.close()


def save_model_atomic(model: RoutedPPO, path: Path) -> None:
    tmp = path.with_name("tmp-" + path.name)
    model.save(tmp)
    os.replace(tmp, path)


def train_sb3(config: TrainConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` with `RoutedPPO` on the batched twin in the prepared run directory
    `out_dir`, resuming from `checkpoint.zip` (the weights, optimizer and step count; the
    environments restart their episodes)."""
    method = get_method(config.method)
    venv = make_twin_vec_env(
        config.env_id, config.num_envs, seed=config.seed,
        **{**config.env_kwargs, "oversight_prob": config.oversight_prob, "reward": method.reward},
    )
    checkpoint = out_dir / "checkpoint.zip"
    if checkpoint.exists():
        model = RoutedPPO.load(checkpoint, env=venv, device="cpu")
    else:
        model = RoutedPPO(
            venv, method=config.method, gate_coef=config.gate_coef, ent_coef=config.ent_coef,
            learning_rate=lambda remaining: config.learning_rate_at(1.0 - remaining), n_steps=config.rollout_steps,
            batch_size=max(1, config.batch_steps // config.ppo_minibatches), n_epochs=config.ppo_epochs,
            gamma=config.gamma, gae_lambda=config.gae_lambda, clip_range=config.clip_range, vf_coef=config.vf_coef,
            seed=config.seed, device="cpu", tensorboard_log=str(out_dir / "tb"),
            policy_kwargs={"hidden": config.hidden, "bf16": config.bf16},
        )
    total = method.training_steps(config.steps, config.oversight_prob)
    if model.num_timesteps < total:
        model.learn(total - model.num_timesteps, callback=_RunCallback(config, out_dir, total, progress),
                    reset_num_timesteps=False, tb_log_name="sb3")
    save_model_atomic(model, checkpoint)
    return model.policy.net, model.num_timesteps
