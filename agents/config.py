"""`TrainConfig`: everything that defines a training run, validated on construction.

Every field carries its help text (`field(metadata={"help": ...})`): the `oversight train` flags
and the settings a spec may set are generated from these fields, so there is one list of settings.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.methods import get_method
from oversight_env import import_env_module, make_oversight_env
from oversight_env.spec import check_probability, invalid_argument
from oversight_env.wrappers import is_partial_oversight

TRAINERS = ("lean", "sb3")
DEVICES = ("auto", "cpu", "cuda")
ALGORITHMS = ("reinforce", "ppo")


def native_bf16() -> bool:
    """Whether torch reports oneDNN bfloat16 support on this CPU (x86 with AVX-512, ARM with BF16):
    there bf16 autocast roughly triples training throughput; elsewhere it is emulated and slow, so
    the default is fp32. The resolved value is what `config.json` records."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(device: str) -> torch.device:
    """`device` ("auto": CUDA when present, "cpu" or "cuda") as a torch device; asking for CUDA
    where there is none is a one-line error."""
    if device not in DEVICES:
        raise invalid_argument("device", device, f"expected one of {DEVICES}")
    if device == "cuda" and not torch.cuda.is_available():
        raise invalid_argument("device", device, "no CUDA device is available here (torch.cuda.is_available() is False)")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: the schedule of evaluations and
    checkpoints, in environment steps, shared by both trainers."""
    return after // every > before // every


# Settings added after runs were recorded, with the value a config written before them had (the
# behaviour they reproduce): resuming and pooling such a run reads its config with these.
SETTINGS_ADDED_LATER: dict[str, Any] = {"imports": []}

# Evaluation episodes when unset: (with a batched twin, stepped in Python). 8192 episodes give a
# rate's 95% interval a half-width of ~1 point and take seconds on a twin; 256 give ~6 points at a
# cost that does not grow with the budget. Measured on MiniGrid's DistShift1 wrapped, routing at 50k
# steps, one core: the final evaluation took 79 s at 256 episodes a variant (training 27 s), 224 s
# at 1024, and 466 s at 8192 before episodes were sized (issue 30).
EVALUATION_EPISODES = {"eval_episodes": (2048, 64), "final_eval_episodes": (8192, 256)}


def evaluation_episodes(env_id: str) -> dict[str, int]:
    """The evaluation episodes a run on `env_id` takes where they are unset: a batched twin's, or
    those of an environment stepped in Python (one registered with `register_partial_oversight`)."""
    stepped = is_partial_oversight(env_id)
    return {name: counts[1] if stepped else counts[0] for name, counts in EVALUATION_EPISODES.items()}


def memory_bytes(device: str = "auto") -> float:
    """The memory a run on `device` can use: the GPU's when it resolves to CUDA, else the machine's."""
    if device in DEVICES and device != "cpu" and torch.cuda.is_available():
        try:
            return float(torch.cuda.mem_get_info()[1])
        except (RuntimeError, AssertionError):  # CUDA reported but unusable: the resolve step says so
            pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return math.inf


def setting(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A `TrainConfig` field with its help text."""
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    The defaults are the "fast" settings, chosen by measurement (docs/study.md): the paper's
    network, REINFORCE update, discount, batch shape (512 envs x 32 steps) and loss coefficients,
    with three changes. The learning rate is 1e-3 (the paper's 5e-5 needs ~300M steps); the
    entropy bonus starts at the paper's 0.1 and decays linearly to 0.03 (a constant 0.1 kept the
    policy near uniform; 0.05 -> 0.01 let routing's experts collapse before they separated);
    forward passes run in bfloat16 autocast where the CPU supports it (`native_bf16`: ~3x the
    throughput, same learning curves). The budget is 3M environment steps. `PRESETS["paper"]`
    holds the published settings.
    """

    env_id: str = setting("OversightGrid/DiamondGhost-5x5-v0", "a registered partial-oversight environment id, "
                          "or module:id to import the module that registers it (gymnasium's form)")
    method: str = setting("routing", "the method trained (agents.methods.METHODS)")
    oversight_prob: float = setting(0.1, "probability that each terminal's cell is overseen")
    steps: int = setting(3_000_000, "the comparison's budget of environment steps (the oracle trains oversight_prob x steps)")
    seed: int = setting(0, "seed of the run (environments, initialisation and actions draw independent streams from it)")
    env_kwargs: dict[str, Any] = setting(help="other keyword arguments of the environment (gym.make)", default_factory=dict)
    imports: list[str] = setting(help="modules to import before the environment is made (they register it), "
                                 "recorded so that eval, render, report and resume import them again", default_factory=list)
    trainer: str = setting("lean", "lean (agents.lean_trainer) or sb3 (agents.sb3.RoutedPPO, PPO only)")
    algorithm: str = setting("reinforce", "the update rule: reinforce (the paper's) or ppo")
    hidden: int = setting(256, "width of the experts' and the gate's hidden layers")
    zero_biases: bool = setting(False, "initialise every bias to zero, as the published code does (default: PyTorch's initialisation)")
    num_envs: int = setting(512, "parallel environments")
    rollout_steps: int = setting(32, "steps per environment in each rollout window")
    learning_rate: float = setting(1e-3, "Adam's learning rate")
    anneal_lr: bool = setting(False, "decay the learning rate linearly to 0 over the run")
    adam_eps: float = setting(1e-8, "Adam's epsilon")
    max_grad_norm: float | None = setting(None, "clip the gradient's global norm to this before each step (none: no clipping, as published)")
    gamma: float = setting(0.97, "discount factor")
    gae_lambda: float = setting(0.95, "PPO: the GAE lambda")
    ent_coef: float = setting(0.1, "entropy bonus at the start of the run")
    ent_coef_final: float | None = setting(0.03, "entropy bonus at the end, reached linearly (none: constant)")
    vf_coef: float = setting(0.5, "value-loss coefficient")
    gate_coef: float = setting(0.01, "gate-loss coefficient (routed methods)")
    clip_range: float = setting(0.2, "PPO: the clip range of the probability ratio")
    ppo_epochs: int = setting(4, "PPO: passes over each rollout")
    ppo_minibatches: int = setting(4, "PPO: minibatches per pass")
    bootstrap: bool = setting(False, "REINFORCE: bootstrap returns cut off by the window (and timeouts) from the value, as PPO always does")
    device: str = setting("auto", "where the lean trainer's environments, network and evaluations run: auto (CUDA when present), cpu or cuda")
    bf16: bool = setting(help="bfloat16 autocast for forward passes (default: where the CPU supports it)", default_factory=native_bf16)
    eval_every_steps: int = setting(500_000, "environment steps between training-time evaluations")
    eval_episodes: int | None = setting(None, "episodes of each training-time evaluation (none: 2048 with a batched "
                                        "twin, 64 for an environment stepped in Python)")
    final_eval_episodes: int | None = setting(None, "episodes of the final evaluation, per policy variant (none: 8192 "
                                              "with a batched twin, 256 for an environment stepped in Python)")
    checkpoint_every_steps: int = setting(1_000_000, "environment steps between checkpoints")

    @classmethod
    def from_preset(cls, preset: str = "fast", **settings: Any) -> TrainConfig:
        """A config from a named preset (`PRESETS`), with `settings` overriding it."""
        if preset not in PRESETS:
            raise invalid_argument("preset", preset, f"expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **settings})

    def __post_init__(self) -> None:
        for name, rule in NUMBER_RULES.items():
            _check_number(name, getattr(self, name), rule)
        self.oversight_prob = check_probability("oversight_prob", self.oversight_prob)
        for name in ("zero_biases", "anneal_lr", "bootstrap", "bf16"):
            if not isinstance(getattr(self, name), bool):
                raise invalid_argument(name, getattr(self, name), "expected true or false")
        for name in ("env_id", "method", "trainer", "algorithm", "device"):
            if not isinstance(getattr(self, name), str):
                raise invalid_argument(name, getattr(self, name), "expected a string")
        if get_method(self.method).lean_only and self.trainer != "lean":
            raise invalid_argument("method", self.method, "only the lean trainer trains this method")
        if self.algorithm not in ALGORITHMS:
            raise invalid_argument("algorithm", self.algorithm, f"expected one of {ALGORITHMS}")
        if self.trainer not in TRAINERS:
            raise invalid_argument("trainer", self.trainer, f"expected one of {TRAINERS}")
        if self.device not in DEVICES:
            raise invalid_argument("device", self.device, f"expected one of {DEVICES}")
        if self.trainer == "sb3" and self.device == "cuda":
            raise invalid_argument("device", self.device, "the sb3 trainer runs on the CPU: use the lean trainer on a GPU")
        if self.trainer == "sb3" and self.algorithm != "ppo":
            raise invalid_argument("algorithm", self.algorithm, "the sb3 trainer runs PPO: use algorithm='ppo'")
        if not isinstance(self.env_kwargs, dict) or not all(isinstance(k, str) for k in self.env_kwargs):
            raise invalid_argument("env_kwargs", self.env_kwargs, "expected a mapping of keyword arguments of the environment")
        if not isinstance(self.imports, (list, tuple)):
            raise invalid_argument("imports", self.imports, "expected a list of module names, e.g. ['mylab.envs']")
        self.imports = list(self.imports)
        for module in self.imports:
            import_env_module(module, "imports")
        for name in _SET_BY_THE_RUN:
            if name in self.env_kwargs:
                raise invalid_argument(f"env_kwargs[{name!r}]", self.env_kwargs[name], _SET_BY_THE_RUN[name])
        if self.algorithm == "ppo" and self.ppo_minibatches > self.batch_steps:
            raise invalid_argument("ppo_minibatches", self.ppo_minibatches, f"expected at most num_envs x rollout_steps "
                                   f"({self.batch_steps}): each minibatch needs at least one sample")
        env = make_oversight_env(self.env_id, **self.env_kwargs)  # last: it makes the environment
        env.close()
        if self.trainer == "sb3" and not hasattr(env, "layout"):
            raise invalid_argument("env_id", self.env_id, "an environment without a batched twin (register_partial_oversight) "
                                   "trains with the lean trainer only")
        for name, episodes in evaluation_episodes(self.env_id).items():
            if getattr(self, name) is None:
                setattr(self, name, episodes)
        self._check_memory(math.prod(env.observation_space.shape))

    def _check_memory(self, obs_size: int) -> None:
        """Refuse a rollout or an evaluation whose observations alone would not fit in half this
        machine's memory (they would be allocated after the run directory is written, then swap or hang)."""
        limit = memory_bytes(self.device) / 2
        needs = {"num_envs": 2 * 4 * obs_size * self.batch_steps,  # float32 observations, and finished episodes' last ones
                 "final_eval_episodes": 4 * 4 * obs_size * self.final_eval_episodes,
                 "eval_episodes": 4 * 4 * obs_size * self.eval_episodes}
        for name, needed in needs.items():
            if needed > limit:
                raise invalid_argument(name, getattr(self, name), f"its observations alone need ~{needed / 2**30:.3g} GiB, "
                                       f"more than half of this machine's memory ({2 * limit / 2**30:.3g} GiB)")

    def learning_rate_at(self, progress: float) -> float:
        """The learning rate after `progress` (0 to 1) of the run."""
        return self.learning_rate * (1.0 - min(max(progress, 0.0), 1.0)) if self.anneal_lr else self.learning_rate

    def entropy_bonus(self, progress: float) -> float:
        """The entropy coefficient after `progress` (0 to 1) of the run."""
        if self.ent_coef_final is None:
            return self.ent_coef
        return self.ent_coef + (self.ent_coef_final - self.ent_coef) * min(max(progress, 0.0), 1.0)

    def torch_device(self) -> torch.device:
        """The device the run trains on: `device` resolved (the sb3 trainer always runs on the CPU)."""
        return resolve_device("cpu" if self.trainer == "sb3" and self.device == "auto" else self.device)

    @property
    def batch_steps(self) -> int:
        return self.num_envs * self.rollout_steps

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NumberRule:
    """What a numeric `TrainConfig` field accepts: an integer or any finite number, in a range."""

    integer: bool
    low: float
    low_inclusive: bool = True
    high: float = math.inf
    optional: bool = False  # None allowed

    def allows(self, value: float) -> bool:
        above = value >= self.low if self.low_inclusive else value > self.low
        return above and value <= self.high

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.high < math.inf:
            high = f"{int(self.high):_}" if self.integer else f"{self.high:g}"
            text = f"{kind} in {'[' if self.low_inclusive else '('}{self.low:g}, {high}]"
        else:
            text = f"{kind} {'>=' if self.low_inclusive else '>'} {self.low:g}"
        return f"expected {text}" + (" or none" if self.optional else "")


_COUNT, _POSITIVE = NumberRule(integer=True, low=1), NumberRule(integer=False, low=0, low_inclusive=False)
_COEFFICIENT, _DISCOUNT = NumberRule(integer=False, low=0), NumberRule(integer=False, low=0, low_inclusive=False, high=1)

# Environment arguments a run sets itself (the trainer and the evaluator would override them).
_SET_BY_THE_RUN = {
    "oversight_prob": "the run sets the environment's oversight_prob: use the oversight_prob setting",
    "reward": "the method chooses the training reward (and evaluation uses the true one)",
}

#: The range of every numeric TrainConfig field (oversight_prob: `check_probability`).
# Upper bounds far beyond any run this testbed can do (a trillion steps is 11 hours at 25M
# steps/s), so that a typo such as 1e30 is refused rather than started.
_STEPS = dataclasses.replace(_COUNT, high=10**12)
_EPISODES = dataclasses.replace(_COUNT, high=10**7, optional=True)
NUMBER_RULES: dict[str, NumberRule] = {
    "steps": _STEPS, "seed": NumberRule(integer=True, low=0, high=2**63 - 1),
    "hidden": dataclasses.replace(_COUNT, high=16384), "num_envs": dataclasses.replace(_COUNT, high=2**24),
    "rollout_steps": dataclasses.replace(_COUNT, high=10**6), "learning_rate": _POSITIVE, "adam_eps": _POSITIVE,
    "max_grad_norm": dataclasses.replace(_POSITIVE, optional=True), "gamma": _DISCOUNT, "gae_lambda": _DISCOUNT,
    "ent_coef": _COEFFICIENT, "ent_coef_final": dataclasses.replace(_COEFFICIENT, optional=True),
    "vf_coef": _COEFFICIENT, "gate_coef": _COEFFICIENT, "clip_range": _POSITIVE,
    "ppo_epochs": dataclasses.replace(_COUNT, high=1000), "ppo_minibatches": _COUNT, "eval_every_steps": _STEPS,
    "eval_episodes": _EPISODES, "final_eval_episodes": _EPISODES, "checkpoint_every_steps": _STEPS,
}


def _check_number(name: str, value: Any, rule: NumberRule) -> None:
    """Raise a one-line ValueError naming `name` unless `value` satisfies `rule`."""
    if value is None and rule.optional:
        return
    numeric = (int,) if rule.integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value) or not rule.allows(value):
        raise invalid_argument(name, value, rule.describe())


# Named starting points for a config. "fast": the defaults above. "paper": the published settings
# (Cloud et al. 2024, Sec 4.3: 512 envs x 32 steps, 20,000 REINFORCE updates, Adam lr 5e-5,
# constant entropy bonus 0.1, value 0.5, gate 0.01, discount 0.97, fp32, zero biases at
# initialisation, no gradient clipping) to reproduce it exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {},
    "paper": {
        "algorithm": "reinforce", "num_envs": 512, "rollout_steps": 32, "steps": 20_000 * 512 * 32,
        "learning_rate": 5e-5, "anneal_lr": False, "adam_eps": 1e-8, "max_grad_norm": None, "zero_biases": True,
        "ent_coef": 0.1, "ent_coef_final": None, "vf_coef": 0.5, "gate_coef": 0.01, "gamma": 0.97, "bootstrap": False,
        "bf16": False, "eval_every_steps": 10_000_000, "checkpoint_every_steps": 10_000_000,
    },
}
