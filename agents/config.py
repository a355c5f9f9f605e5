"""`TrainConfig`: everything that defines a training run, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.methods import get_method
from oversight_env import make_oversight_env
from oversight_env.spec import check_probability, invalid_argument

TRAINERS = ("lean", "sb3")


def native_bf16() -> bool:
    """Whether torch reports oneDNN bfloat16 support on this CPU (x86 with AVX-512, ARM with BF16):
    there bf16 autocast roughly triples training throughput; elsewhere it is emulated and slow, so
    the default is fp32. The resolved value is what `config.json` records."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    The defaults are the "fast" settings, chosen by measurement (README, "Speed"): the paper's
    network, REINFORCE update, discount, batch shape (512 envs x 32 steps) and loss coefficients,
    with three changes. The learning rate is 1e-3 (the paper's 5e-5 needs ~300M steps); the
    entropy bonus starts at the paper's 0.1 and decays linearly to 0.03 (a constant 0.1 kept the
    policy near uniform; 0.05 -> 0.01 let routing's experts collapse before they separated);
    forward passes run in bfloat16 autocast where the CPU supports it (`native_bf16`: ~3x the
    throughput, same learning curves). The budget is 3M environment steps. `PRESETS["paper"]`
    holds the published settings.
    """

    env_id: str = "OversightGrid/DiamondGhost-5x5-v0"
    method: str = "routing"
    oversight_prob: float = 0.1
    steps: int = 3_000_000  # the comparison's budget of environment steps
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    trainer: str = "lean"  # "lean" (agents.lean_trainer) or "sb3" (agents.sb3.RoutedPPO, PPO only)
    algorithm: str = "reinforce"  # "reinforce" or "ppo"
    hidden: int = 256  # width of the experts' and the gate's hidden layers
    num_envs: int = 512
    rollout_steps: int = 32
    learning_rate: float = 1e-3
    anneal_lr: bool = False  # decay the learning rate linearly to 0 over the run (CleanRL's default)
    gamma: float = 0.97
    gae_lambda: float = 0.95  # PPO
    ent_coef: float = 0.1
    ent_coef_final: float | None = 0.03  # the entropy bonus moves linearly to it over the run (None: constant)
    vf_coef: float = 0.5
    gate_coef: float = 0.01
    clip_range: float = 0.2  # PPO
    ppo_epochs: int = 4
    ppo_minibatches: int = 4
    bootstrap: bool = False  # REINFORCE: bootstrap window returns from the value (the paper did not)
    bf16: bool = field(default_factory=native_bf16)  # bfloat16 autocast for forward passes
    eval_every_steps: int = 500_000
    eval_episodes: int = 2048
    final_eval_episodes: int = 8192
    checkpoint_every_steps: int = 1_000_000

    @classmethod
    def from_preset(cls, preset: str = "fast", **settings: Any) -> TrainConfig:
        """A config from a named preset (`PRESETS`), with `settings` overriding it."""
        if preset not in PRESETS:
            raise invalid_argument("preset", preset, f"expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **settings})

    def __post_init__(self) -> None:
        get_method(self.method)
        make_oversight_env(self.env_id, **self.env_kwargs).close()
        self.oversight_prob = check_probability("oversight_prob", self.oversight_prob)
        if self.algorithm not in ("reinforce", "ppo"):
            raise invalid_argument("algorithm", self.algorithm, "expected 'reinforce' or 'ppo'")
        if self.trainer not in TRAINERS:
            raise invalid_argument("trainer", self.trainer, f"expected one of {TRAINERS}")
        if self.trainer == "sb3" and self.algorithm != "ppo":
            raise invalid_argument("algorithm", self.algorithm, "the sb3 trainer runs PPO: use algorithm='ppo'")
        for name in ("steps", "hidden", "num_envs", "rollout_steps", "ppo_epochs", "ppo_minibatches", "eval_every_steps",
                     "eval_episodes", "final_eval_episodes", "checkpoint_every_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise invalid_argument(name, value, "expected an integer >= 1")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise invalid_argument("learning_rate", self.learning_rate, "expected a number > 0")
        for name in ("ent_coef", "ent_coef_final"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise invalid_argument(name, value, "expected a number >= 0")

    def learning_rate_at(self, progress: float) -> float:
        """The learning rate after `progress` (0 to 1) of the run."""
        return self.learning_rate * (1.0 - min(max(progress, 0.0), 1.0)) if self.anneal_lr else self.learning_rate

    def entropy_bonus(self, progress: float) -> float:
        """The entropy coefficient after `progress` (0 to 1) of the run."""
        if self.ent_coef_final is None:
            return self.ent_coef
        return self.ent_coef + (self.ent_coef_final - self.ent_coef) * min(max(progress, 0.0), 1.0)

    @property
    def batch_steps(self) -> int:
        return self.num_envs * self.rollout_steps

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Named starting points for a config. "fast": the defaults above. "paper": the published settings
# (Cloud et al. 2024, Sec 4.3: 512 envs x 32 steps, 20,000 REINFORCE updates, Adam lr 5e-5,
# constant entropy bonus 0.1, value 0.5, gate 0.01, discount 0.97, fp32) to reproduce it exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {},
    "paper": {
        "algorithm": "reinforce", "num_envs": 512, "rollout_steps": 32, "steps": 20_000 * 512 * 32,
        "learning_rate": 5e-5, "anneal_lr": False, "ent_coef": 0.1, "ent_coef_final": None, "vf_coef": 0.5,
        "gate_coef": 0.01, "gamma": 0.97, "bootstrap": False, "bf16": False, "eval_every_steps": 10_000_000,
        "checkpoint_every_steps": 10_000_000,
    },
}
