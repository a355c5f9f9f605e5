"""Experiment specs: a TOML file naming the environment, methods, oversight levels, seeds, budget
and settings of a comparison; each (method, oversight level, seed) is one cell.

    name = "quick"
    [env]
    id = "OversightGrid/DiamondGhost-5x5-v0"
    kwargs = {}                    # passed to gym.make, e.g. max_steps = 32
    [train]
    methods = ["routing", "naive"]
    oversight = [0.1, 0.3]
    seeds = [0, 1]
    steps = 1_000_000              # default: the preset's
    preset = "fast"                # or "paper": the published settings (agents.config.PRESETS)
    [train.settings]               # any other TrainConfig field, e.g. num_envs = 256
    [eval]
    episodes = 4096                # final evaluation episodes per cell
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.methods import get_method
from oversight_env.spec import check_probability, invalid_argument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Fields a spec sets through its own keys, not through [train.settings].
_CELL_FIELDS = {"env_id", "env_kwargs", "method", "oversight_prob", "steps", "seed", "final_eval_episodes"}


@dataclass(frozen=True)
class Cell:
    method: str
    oversight: float
    seed: int

    def path(self) -> str:
        """The cell's directory inside the experiment directory."""
        return f"{self.method}/p{self.oversight:g}/s{self.seed}"


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    env_id: str
    methods: tuple[str, ...]
    oversight: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int | None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 8192
    description: str = ""
    preset: str = "fast"

    def cells(self) -> list[Cell]:
        return [Cell(m, p, s) for p in self.oversight for m in self.methods for s in self.seeds]

    def config(self, cell: Cell) -> TrainConfig:
        budget = {} if self.steps is None else {"steps": self.steps}
        return TrainConfig.from_preset(
            self.preset, env_id=self.env_id, env_kwargs=dict(self.env_kwargs), method=cell.method,
            oversight_prob=cell.oversight, seed=cell.seed, final_eval_episodes=self.eval_episodes,
            **budget, **self.settings,
        )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file; every mistake is a one-line ValueError."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise invalid_argument("spec", str(path), "no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise invalid_argument("spec", str(path), f"not valid TOML ({error})") from None
    _only(data, {"name", "description", "env", "train", "eval"}, "spec")
    env, train, evaluation = data.get("env", {}), data.get("train", {}), data.get("eval", {})
    _only(env, {"id", "kwargs"}, "[env]")
    _only(train, {"methods", "oversight", "seeds", "steps", "preset", "settings"}, "[train]")
    _only(evaluation, {"episodes"}, "[eval]")
    settings = dict(train.get("settings", {}))
    allowed = {f.name for f in fields(TrainConfig)} - _CELL_FIELDS
    _only(settings, allowed, "[train.settings]")
    for key in ("methods", "oversight", "seeds"):
        if not isinstance(train.get(key), list) or not train[key]:
            raise invalid_argument(f"train.{key}", train.get(key), "expected a non-empty list")
    for method in train["methods"]:
        get_method(method)
    oversight = tuple(check_probability("train.oversight", p) for p in train["oversight"])
    for seed in train["seeds"]:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise invalid_argument("train.seeds", seed, "expected integers")
    spec = ExperimentSpec(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        env_id=env.get("id", "OversightGrid/DiamondGhost-5x5-v0"),
        env_kwargs=dict(env.get("kwargs", {})),
        methods=tuple(train["methods"]),
        oversight=oversight,
        seeds=tuple(train["seeds"]),
        steps=train.get("steps"),
        preset=train.get("preset", "fast"),
        settings=settings,
        eval_episodes=evaluation.get("episodes", 8192),
    )
    spec.config(spec.cells()[0])  # validates the environment, budget and settings once
    return spec


def _only(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise invalid_argument(where, unknown[0], f"unknown key; expected one of {sorted(allowed)}")
