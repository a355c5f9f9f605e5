"""Gradient-routed PPO in stable-baselines3: `RoutedActorCriticPolicy` and `RoutedPPO`, a thin SB3
adapter over the update the lean trainer runs.

Written against stable-baselines3 2.9, which pyproject.toml pins: it overrides `PPO.train` and
`RolloutBuffer.compute_returns_and_advantage`, and relies on `collect_rollouts` calling
`_update_info_buffer` between `env.step` and `rollout_buffer.add`.

SB3 does what it does well: rollout collection (with its bootstrap of truncated episodes from the
value of their final observation), the logger, callbacks, save/load and predict. Everything that
decides the numbers is this project's, shared with the lean trainer:
- the network (`agents.networks.ActorCritic`) and how actions are drawn (`sample_actions`, with
  a generator of the policy's own);
- seeds: `seed` splits into independent streams for the environments, the initialisation and
  the actions (`agents.seeding.independent_seeds`), as in the lean trainer;
- labels, weights, returns and advantages (`agents.batch.build_batch`, PPO's GAE);
- the update (`agents.losses.update`: Adam's epsilon, gradient clipping, minibatches, advantage
  normalization), with the learning rate and entropy bonus of the rollout's start.
So `oversight train --trainer sb3` and `--trainer lean --algorithm ppo` train the same network
from the same seed to the same weights (tested). SB3 arguments whose meaning this update does not
implement (`target_kl`, `clip_range_vf`, `use_sde`, ...) raise instead of being ignored.

Works with any SB3 vector environment of a partial-oversight env: `DummyVecEnv` of MiniGrid
environments or the batched twin's `TwinVecEnv`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.batch import ReturnRule, Rollout, build_batch
from agents.config import TrainConfig, crossed
from agents.evaluator import training_evaluation
from agents.files import atomic_write, damage, load_checkpoint
from agents.legacy_names import modern_keys, modern_name
from agents.logger import METRICS, MetricsFile
from agents.losses import Samples, UpdateSettings, update
from agents.methods import ROUTES, get_method
from agents.networks import ActorCritic, sample_actions
from agents.run_dir import SB3_CHECKPOINT
from agents.sb3_env import TwinVecEnv, make_twin_vec_env
from agents.seeding import evaluation_seed, independent_seeds
from oversight_env.spec import OUTCOME_CODES, invalid_argument


class RoutedActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy whose network is `ActorCritic` (routed or single expert)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        experts: tuple[str, ...] = ("intended", "proxy"),
        hidden: int = TrainConfig.hidden,
        zero_biases: bool = TrainConfig.zero_biases,
        bf16: bool = False,
        **kwargs: Any,
    ):
        # a model saved before the generic vocabulary names its experts diamond and ghost
        self.experts = tuple(modern_name(e) for e in experts)
        self.hidden, self.zero_biases, self.bf16 = hidden, zero_biases, bf16
        kwargs.setdefault("ortho_init", False)  # the network initialises itself (agents.networks)
        kwargs.setdefault("optimizer_kwargs", {"eps": TrainConfig.adam_eps})
        self.action_generator = torch.Generator()
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule) -> None:
        self.net = ActorCritic(self.observation_space.shape, int(self.action_space.n), self.experts, self.hidden,
                               self.zero_biases)
        self.optimizer = self.optimizer_class(self.net.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "experts": self.experts, "hidden": self.hidden,
                "zero_biases": self.zero_biases, "bf16": self.bf16}

    def autocast(self) -> torch.autocast:
        """bfloat16 autocast for the network's forward passes when `bf16`, else nothing."""
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def _logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            out = self.net(obs)
        return out.logits.float(), out.value.float()[:, None]

    def forward(self, obs: torch.Tensor, deterministic: bool = False):
        logits, value = self._logits_and_value(obs)
        if deterministic:
            actions = logits.argmax(dim=-1)
            return actions, value, torch.log_softmax(logits, dim=-1).gather(1, actions[:, None]).squeeze(1)
        actions, log_prob = sample_actions(logits, self.action_generator)
        return actions, value, log_prob

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
        return self.forward(observation, deterministic)[0]


class RoutedRolloutBuffer(RolloutBuffer):
    """A `RolloutBuffer` that also records how each step's episode ended, and computes labels,
    weights, returns and advantages with `agents.batch.build_batch`."""

    method = get_method("naive")  # set by RoutedPPO

    def reset(self) -> None:
        super().reset()
        shape = (self.buffer_size, self.n_envs)
        self.done = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.outcome = np.zeros(shape, dtype=np.int64)
        self.overseen = np.zeros(shape, dtype=bool)
        self.labels = np.zeros(shape, dtype=np.int64)
        self.weights = np.ones(shape, dtype=np.float32)

    def record_episode_ends(self, dones: np.ndarray, infos: list[dict]) -> None:
        """Note which episodes end at the step about to be added, and how."""
        for i in np.flatnonzero(dones):
            self.outcome[self.pos, i] = OUTCOME_CODES[infos[i]["outcome"]]
            self.overseen[self.pos, i] = infos[i]["overseen"]
            self.truncated[self.pos, i] = infos[i].get("TimeLimit.truncated", False)
        self.done[self.pos] = dones

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        # SB3 already added gamma * V(final observation) to the rewards of truncated steps.
        rollout = Rollout(*map(torch.from_numpy, (self.rewards, self.values, self.done, self.truncated, self.outcome,
                                                 self.overseen)), last_value=last_values.detach().cpu().flatten())
        batch = build_batch(rollout, self.method, ReturnRule("ppo", self.gamma, self.gae_lambda))
        self.labels, self.weights = batch.labels.numpy(), batch.weights.numpy()
        self.returns, self.advantages = batch.returns.numpy(), batch.advantages.numpy()

    def samples(self) -> Samples:
        """The rollout's samples, flat and time-major, as the lean trainer orders them."""
        def flat(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x).reshape(self.buffer_size * self.n_envs, *x.shape[2:])

        return Samples(flat(self.observations), flat(self.actions[..., 0]).long(), flat(self.log_probs),
                       flat(self.advantages), flat(self.returns), flat(self.labels), flat(self.weights))


# PPO arguments the shared update does not implement, with the only value RoutedPPO accepts.
_UNSUPPORTED = {"target_kl": None, "clip_range_vf": None, "use_sde": False, "sde_sample_freq": -1,
                "normalize_advantage": True, "rollout_buffer_class": None, "rollout_buffer_kwargs": None}

Schedule = Callable[[float], float]


class RoutedPPO(PPO):
    """PPO that trains any method of `agents.methods` with SB3. `env` must give the method's
    training reward (`method.reward`). Defaults are `TrainConfig`'s; `ent_coef` may be a schedule
    of the remaining progress, like `learning_rate`. `update_hooks` are called after every update.

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
        learning_rate: float | Schedule = TrainConfig.learning_rate,
        n_steps: int = TrainConfig.rollout_steps,
        batch_size: int = 4096,
        n_epochs: int = TrainConfig.ppo_epochs,
        gamma: float = TrainConfig.gamma,
        gae_lambda: float = TrainConfig.gae_lambda,
        clip_range: float | Schedule = TrainConfig.clip_range,
        ent_coef: float | Schedule = TrainConfig.ent_coef,
        vf_coef: float = TrainConfig.vf_coef,
        gate_coef: float = TrainConfig.gate_coef,
        max_grad_norm: float | None = TrainConfig.max_grad_norm,
        policy: type[RoutedActorCriticPolicy] = RoutedActorCriticPolicy,
        device: torch.device | str = "cpu",
        _init_setup_model: bool = True,
        **kwargs: Any,
    ):
        # SB3's "auto" picks a GPU where there is one; RoutedPPO's is the CPU.
        device = "cpu" if str(device) == "auto" else device
        if torch.device(device).type != "cpu":
            raise invalid_argument("device", device, "RoutedPPO trains on the CPU (its action generator is a CPU "
                                   "one); for a GPU use the lean trainer (`--trainer lean --device cuda`)")
        for name, accepted in _UNSUPPORTED.items():
            if kwargs.get(name, accepted) != accepted:
                raise invalid_argument(name, kwargs[name], f"RoutedPPO does not support it (only {accepted!r})")
            kwargs.pop(name, None)
        self.method = get_method(method)  # `load` restores the saved method after construction
        if env is not None and _init_setup_model:
            reward = env.get_attr("config")[0].reward
            if reward != self.method.reward:
                raise invalid_argument("env reward", reward, f"method {method!r} trains on reward={self.method.reward!r}")
        self.gate_coef = gate_coef
        self.method_state = self.method.initial_state()
        self.update_hooks: list[Callable[[RoutedPPO], None]] = []
        self._action_seed: int | None = None
        policy_kwargs = {**kwargs.pop("policy_kwargs", {}), "experts": self.method.experts}
        super().__init__(
            policy, env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
            gamma=gamma, gae_lambda=gae_lambda, clip_range=clip_range, ent_coef=ent_coef, vf_coef=vf_coef,
            max_grad_norm=max_grad_norm, rollout_buffer_class=RoutedRolloutBuffer, policy_kwargs=policy_kwargs,
            device=device, _init_setup_model=_init_setup_model, **kwargs,
        )

    @classmethod
    def load(cls, path: Any, env: VecEnv | None = None, device: torch.device | str = "cpu", **kwargs: Any) -> RoutedPPO:
        """SB3's `load`, onto the CPU by default (RoutedPPO trains only there)."""
        return super().load(path, env=env, device=device, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "update_hooks"]

    def set_random_seed(self, seed: int | None = None) -> None:
        """Independent streams for the environments, the initialisation and the actions."""
        if seed is None:
            return
        env_seed, init_seed, self._action_seed = independent_seeds(seed, 3)
        super().set_random_seed(init_seed)  # python, numpy, torch (the network's initialisation)
        if self.env is not None:
            self.env.seed(env_seed)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.rollout_buffer.method = self.method
        if self._action_seed is not None:
            self.policy.action_generator.manual_seed(self._action_seed)
        self.update_hooks = []

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        # SB3 calls this once per environment step, between `env.step` and `rollout_buffer.add`:
        # the moment the step's end-of-episode infos are at hand and the buffer's row is the step's.
        super()._update_info_buffer(infos, dones)
        if dones is not None and isinstance(self.rollout_buffer, RoutedRolloutBuffer) and not self.rollout_buffer.full:
            self.rollout_buffer.record_episode_ends(dones, infos)

    def train(self) -> None:
        self.policy.set_training_mode(True)
        buffer = self.rollout_buffer
        samples = buffer.samples()
        # The schedules at the rollout's start, as the lean trainer (and CleanRL) evaluate them.
        remaining = 1.0 - (self.num_timesteps - len(samples.obs)) / self._total_timesteps
        settings = UpdateSettings(
            "ppo", self.lr_schedule(remaining), _at(self.ent_coef, remaining), self.vf_coef, self.gate_coef,
            self.max_grad_norm, self.clip_range(remaining), self.n_epochs, max(1, round(len(samples.obs) / self.batch_size)),
        )
        stats = update(self.policy.net, self.policy.optimizer, self.method, settings, samples, self.policy.action_generator,
                       self.policy.autocast())
        self._n_updates += self.n_epochs
        done = buffer.done
        self.method.after_rollout(self.method_state, torch.from_numpy(buffer.outcome[done]),
                                  torch.from_numpy(buffer.overseen[done]))
        for key, value in stats.items():
            self.logger.record(key, value)
        for code, name in ROUTES:
            self.logger.record(f"route/fraction_{name}", float((buffer.labels == code).mean()))
        self.logger.record("route/fraction_kept", float(buffer.weights.mean()))
        self.logger.record("loss/entropy_coef", settings.ent_coef)
        self.logger.record("train/learning_rate", settings.learning_rate)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for hook in self.update_hooks:
            hook(self)


def _at(value: float | Schedule, remaining: float) -> float:
    return float(value(remaining)) if callable(value) else float(value)


class _RunHooks:
    """Progress bar, periodic evaluation and the method's hooks (to tensorboard), and exactly
    resumable checkpoints, after every update of `train_sb3`'s model."""

    def __init__(self, config: TrainConfig, out_dir: Path, total: int, progress: bool, model: RoutedPPO):
        self.config, self.out_dir, self.model = config, out_dir, model
        self.before = model.num_timesteps
        self.bar = tqdm(total=total, initial=model.num_timesteps, unit="step", unit_scale=True, disable=not progress,
                        desc=f"{config.method} p={config.oversight_prob} (sb3)")
        self.net, self.env_steps = model.policy.net, model.num_timesteps

    def log(self, tag: str, value: float) -> None:
        self.model.logger.record(tag, value)

    def __call__(self, model: RoutedPPO) -> None:
        after, self.env_steps = model.num_timesteps, model.num_timesteps
        self.bar.update(after - self.bar.n)
        last = after >= self.bar.total
        if crossed(self.before, after, self.config.eval_every_steps) or last:
            seed = evaluation_seed(self.config.seed, "training_evaluation", after)
            for key, value in training_evaluation(model.policy.net, self.config, seed, model.method.evaluate_without).items():
                self.log(key, value)
            model.method.at_evaluation(model.method_state, self)
        model.logger.dump(after)  # this update's numbers, at the step it was trained on
        if crossed(self.before, after, self.config.checkpoint_every_steps) or last:
            save_resumable(model, self.out_dir / SB3_CHECKPOINT)
        self.before = after


class _MetricsRows(KVWriter):
    """`metrics.jsonl` (`agents.logger.MetricsFile`) as an SB3 output: each numeric value dumped
    is one row at the step it was dumped at; rows after `purge_step` of an earlier run dropped."""

    def __init__(self, path: Path, purge_step: int | None):
        self.rows = MetricsFile(path, purge_step)

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "tensorboard" in excluded or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue  # what tensorboard leaves out, and text, are no rows either
            self.rows.write(key, float(value), step)
        self.rows.flush()

    def close(self) -> None:
        self.rows.close()


class _PurgingTensorBoard(TensorBoardOutputFormat):
    """SB3's tensorboard output, with a writer that drops events logged after `purge_step` by an
    earlier, killed run (the resumed run logs them again)."""

    def __init__(self, folder: str, purge_step: int | None):  # SB3's __init__ makes the writer itself
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def _twin_env(model: RoutedPPO) -> tuple[VecMonitor | None, TwinVecEnv | None]:
    env = model.get_env()
    monitor = env if isinstance(env, VecMonitor) else None
    inner = monitor.venv if monitor is not None else env
    return monitor, inner if isinstance(inner, TwinVecEnv) else None


def save_resumable(model: RoutedPPO, path: Path) -> None:
    """Save `model` atomically as SB3 does, plus (as `resume.pt` in the same zip, which SB3's
    `load` ignores) what an exact resume needs: the twin's state, the episode counters of its
    monitor and the policy's action generator."""
    monitor, twin_env = _twin_env(model)
    resume = {"action_generator": model.policy.action_generator.get_state(), "twin": None, "monitor": None}
    if twin_env is not None:
        resume["twin"] = twin_env.twin.state_dict()
    if monitor is not None:
        resume["monitor"] = {k: getattr(monitor, k) for k in ("episode_returns", "episode_lengths", "episode_count")}
    buffer = io.BytesIO()
    torch.save(resume, buffer)
    with atomic_write(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr("resume.pt", buffer.getvalue())


def load_resumable(path: Path, env: VecEnv) -> RoutedPPO:
    """A model saved by `save_resumable`, with its environments and generators restored."""
    try:
        model = RoutedPPO.load(path, env=env, device="cpu", force_reset=False)  # the saved observation continues
        with zipfile.ZipFile(path) as archive:
            resume = modern_keys(torch.load(io.BytesIO(archive.read("resume.pt")), weights_only=False))
    except Exception as error:  # a damaged zip fails in many ways inside zipfile, torch or SB3
        raise invalid_argument("checkpoint", str(path), f"cannot be loaded ({damage(error)}); delete it to start the run again") from None
    model.policy.action_generator.set_state(resume["action_generator"])
    monitor, twin_env = _twin_env(model)
    if twin_env is not None and resume["twin"] is not None:
        twin_env.twin.load_state_dict(resume["twin"])
    if monitor is not None and resume["monitor"] is not None:
        for key, value in resume["monitor"].items():
            setattr(monitor, key, value)
    return model


def train_sb3(config: TrainConfig, out_dir: Path, progress: bool = True) -> tuple[ActorCritic, int]:
    """Train `config` with `RoutedPPO` on the batched twin in the prepared run directory
    `out_dir`, resuming exactly from `checkpoint.zip`; return the network (the method's chosen
    weights) and the environment steps that ran (whole rollouts: at least the budget)."""
    method = get_method(config.method)
    venv = make_twin_vec_env(
        config.env_id, config.num_envs,
        **{**config.env_kwargs, "oversight_prob": method.training_oversight(config.oversight_prob), "reward": method.reward},
    )
    checkpoint = out_dir / SB3_CHECKPOINT
    if checkpoint.exists():
        model = load_resumable(checkpoint, venv)
    else:
        model = RoutedPPO(
            venv, method=config.method, gate_coef=config.gate_coef,
            ent_coef=lambda remaining: config.entropy_bonus(1.0 - remaining),
            learning_rate=lambda remaining: config.learning_rate_at(1.0 - remaining), n_steps=config.rollout_steps,
            batch_size=max(1, config.batch_steps // config.ppo_minibatches), n_epochs=config.ppo_epochs,
            gamma=config.gamma, gae_lambda=config.gae_lambda, clip_range=config.clip_range, vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm, seed=config.seed, device="cpu",
            policy_kwargs={"hidden": config.hidden, "bf16": config.bf16, "zero_biases": config.zero_biases,
                           "optimizer_kwargs": {"eps": config.adam_eps}},
        )
    total = method.training_steps(config.steps, config.oversight_prob)
    model.set_logger(Logger(str(out_dir / "tb"), [_PurgingTensorBoard(str(out_dir / "tb"), model.num_timesteps + 1),
                                                  _MetricsRows(out_dir / METRICS, model.num_timesteps + 1)]))
    if model.num_timesteps < total:
        hooks = _RunHooks(config, out_dir, total, progress, model)
        model.update_hooks.append(hooks)
        model.learn(total - model.num_timesteps, reset_num_timesteps=False)
        hooks.bar.close()
    model.logger.close()
    chosen = method.final_weights(model.method_state, out_dir)
    if chosen is not None:
        model.policy.net.load_state_dict(load_checkpoint(chosen)["model"])
    return model.policy.net, model.num_timesteps
