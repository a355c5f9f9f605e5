"""Experiment specs: a TOML file naming the environment, methods, oversight levels, seeds, budget
and settings of a comparison; each (method, oversight level, seed) is one cell.

    name = "quick"
    [env]
    id = "OversightGrid/DiamondGhost-5x5-v0"
    kwargs = {}                    # passed to gym.make, e.g. max_steps = 32

or several environments, each with its cells in a directory of its own (`name`, default: the id
after its "/") and its own budget if it needs one:

    [[envs]]
    id = "OversightGrid/AbsentSupervisor-v0"
    steps = 2_000_000
    [[envs]]
    id = "OversightGrid/CheeseInCorner-9x9-v0"
    name = "CheeseInCorner-9x9-alpha0.5"
    kwargs = {corner_prob = 0.5}

An environment of your own: `id = "mylab:MyLab/Corridor-v0"` imports the module `mylab`
(gymnasium's form); a top-level `imports = ["mylab.envs"]` imports modules that register several.

and then:
    [train]
    methods = ["routing", "naive"]
    oversight = [0.1, 0.3]
    seeds = [0, 1]
    steps = 1_000_000              # default: the preset's
    preset = "fast"                # or "paper": the published settings (agents.config.PRESETS)
    [train.settings]               # any other TrainConfig field, e.g. num_envs = 256
    [eval]
    episodes = 4096                # final evaluation episodes per variant (default: 8192, or 256
                                   # for an environment stepped in Python)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.methods import get_method
from oversight_env.env_ids import short_name
from oversight_env.spec import check_probability, invalid_argument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Fields a spec sets through its own keys, not through [train.settings].
_CELL_FIELDS = {"env_id", "env_kwargs", "method", "oversight_prob", "steps", "seed", "final_eval_episodes"}
# Environment keyword arguments that each cell sets (its oversight level, its method's reward):
# a spec that set them would record values the training never used.
_SET_BY_CELL = {"oversight_prob", "reward"}


@dataclass(frozen=True)
class Cell:
    method: str
    oversight: float
    seed: int
    env: str | None = None  # the environment's directory in a spec of several ([[envs]])

    def path(self) -> str:
        """The cell's directory inside the experiment directory."""
        inside = f"{self.method}/p{self.oversight:g}/s{self.seed}"
        return inside if self.env is None else f"{self.env}/{inside}"


@dataclass(frozen=True)
class EnvEntry:
    """One environment of a spec: its id, keyword arguments, directory and budget (None: the spec's)."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # None in a spec of one environment: its cells need no directory of their own
    steps: int | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    envs: tuple[EnvEntry, ...]
    methods: tuple[str, ...]
    oversight: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int | None = None  # none: the config's default for the environment
    description: str = ""
    preset: str = "fast"

    @property
    def env_id(self) -> str:
        """The environment of a spec of one ([env]); the first one's otherwise."""
        return self.envs[0].id

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return self.envs[0].kwargs

    @property
    def several_envs(self) -> bool:
        return self.envs[0].name is not None

    def cells(self) -> list[Cell]:
        return [Cell(m, p, s, e.name) for e in self.envs for p in self.oversight for m in self.methods for s in self.seeds]

    def env_of(self, cell: Cell) -> EnvEntry:
        return next(e for e in self.envs if e.name == cell.env)

    def config(self, cell: Cell) -> TrainConfig:
        env = self.env_of(cell)
        steps = env.steps if env.steps is not None else self.steps
        budget = {} if steps is None else {"steps": steps}
        return TrainConfig.from_preset(
            self.preset, env_id=env.id, env_kwargs=dict(env.kwargs), method=cell.method,
            oversight_prob=cell.oversight, seed=cell.seed, final_eval_episodes=self.eval_episodes,
            **budget, **self.settings,
        )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file; every mistake is a one-line ValueError."""
    path = Path(path)
    data = _read_toml(path)
    _only(data, {"name", "description", "imports", "env", "envs", "train", "eval"}, "spec")
    if ("env" in data) == ("envs" in data):
        raise invalid_argument("spec", str(path), 'needs one [env] table, or [[envs]] tables for several environments, e.g. '
                               '[env] id = "OversightGrid/DiamondGhost-5x5-v0"')
    train, evaluation = _table(data, "train"), _table(data, "eval")
    _only(train, {"methods", "oversight", "seeds", "steps", "preset", "settings"}, "[train]")
    _only(evaluation, {"episodes"}, "[eval]")
    settings = _table(train, "settings", where="train.settings")
    _only(settings, {f.name for f in fields(TrainConfig)} - _CELL_FIELDS, "[train.settings]")
    settings = {**settings, **_imports(data, settings)}
    spec = ExperimentSpec(
        name=_plain_name(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        envs=_envs(data, path),
        methods=_methods(train),
        oversight=_oversight(train),
        seeds=_seeds(train),
        steps=_optional_positive_int(train, "steps", "train.steps"),
        preset=train.get("preset", "fast"),
        settings=settings,
        eval_episodes=_optional_positive_int(evaluation, "episodes", "eval.episodes"),
    )
    _check_first_config(spec)
    return spec


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise invalid_argument("spec", str(path), "no such file") from None
    except UnicodeDecodeError:
        raise invalid_argument("spec", str(path), "not a text file (expected a TOML spec such as runs/quick.toml)") from None
    except IsADirectoryError:
        raise invalid_argument("spec", str(path), "that is a directory: expected a TOML spec such as runs/quick.toml") from None
    except tomllib.TOMLDecodeError as error:
        raise invalid_argument("spec", str(path), f"not valid TOML ({error})") from None


def _table(data: dict, key: str, where: str | None = None) -> dict[str, Any]:
    """The sub-table `key` of `data` (empty when absent)."""
    if not isinstance(data.get(key, {}), dict):
        raise invalid_argument(where or key, data[key], "expected a table")
    return dict(data.get(key, {}))


def _plain_name(name: Any, argument: str = "name") -> str:
    """A name that becomes a directory (the experiment's under runs/, an environment's in it): a
    plain name, so that the sweep cannot write outside it."""
    if not isinstance(name, str) or not name.strip():
        raise invalid_argument(argument, name, "expected a non-empty string")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if name == "." or ".." in name or any(s in name for s in separators) or Path(name).is_absolute() or "\0" in name:
        raise invalid_argument(argument, name, "expected a plain name (no path separators, no '..'): it names a directory")
    return name


def _envs(data: dict[str, Any], path: Path) -> tuple[EnvEntry, ...]:
    """The [env] table as one `EnvEntry`, or the [[envs]] tables as one each, with unique names."""
    if "env" in data:
        env = _table(data, "env")
        _only(env, {"id", "kwargs"}, "[env]")
        return (EnvEntry(_env_id(env, path, "env"), _env_kwargs(env, "env")),)
    if not isinstance(data["envs"], list) or not data["envs"] or not all(isinstance(e, dict) for e in data["envs"]):
        raise invalid_argument("envs", data["envs"], "expected [[envs]] tables, one per environment")
    entries = []
    for i, env in enumerate(data["envs"]):
        where = f"envs[{i}]"
        _only(env, {"id", "kwargs", "name", "steps"}, f"[[envs]] {i}")
        env_id = _env_id(env, path, where)
        name = _plain_name(env.get("name", short_name(env_id)), f"{where}.name")
        entries.append(EnvEntry(env_id, _env_kwargs(env, where), name, _optional_positive_int(env, "steps", f"{where}.steps")))
    _unique("envs", [e.name for e in entries])
    return tuple(entries)


def _imports(data: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The top-level `imports` as the cells' `imports` setting (each config imports them, the first
    one as the spec is loaded, so a missing module is an error before anything runs)."""
    if "imports" not in data:
        return {}
    modules = data["imports"]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise invalid_argument("imports", modules, "expected a list of module names, e.g. imports = [\"mylab.envs\"]")
    if "imports" in settings:
        raise invalid_argument("train.settings.imports", settings["imports"], "the spec's top-level imports says this; keep one")
    return {"imports": list(modules)}


def _env_id(env: dict[str, Any], path: Path, where: str) -> str:
    if "id" not in env:
        raise invalid_argument("spec", str(path), f'has no {where} id: name the environment, e.g. id = "OversightGrid/DiamondGhost-5x5-v0"')
    if not isinstance(env["id"], str) or not env["id"]:
        raise invalid_argument(f"{where}.id", env["id"], "expected a registered environment id")
    return env["id"]


def _env_kwargs(env: dict[str, Any], where: str) -> dict[str, Any]:
    kwargs = _table(env, "kwargs", where=f"{where}.kwargs")
    clash = sorted(_SET_BY_CELL & set(kwargs))
    if clash:
        raise invalid_argument(f"{where}.kwargs.{clash[0]}", kwargs[clash[0]],
                               "each cell sets it (the oversight level from [train] oversight, the reward from the method)")
    return kwargs


def _unique(argument: str, values: list[Any], key: Any = None) -> None:
    """Refuse a list with two equal values (by `key`): two cells would share one directory."""
    seen: dict[Any, Any] = {}
    for value in values:
        k = value if key is None else key(value)
        if k in seen:
            twice = f"lists {value!r} twice" if seen[k] == value else f"lists {seen[k]!r} and {value!r}, which name the same cells"
            raise invalid_argument(argument, values, twice)
        seen[k] = value


def _non_empty_list(train: dict[str, Any], key: str) -> list[Any]:
    if not isinstance(train.get(key), list) or not train[key]:
        raise invalid_argument(f"train.{key}", train.get(key), "expected a non-empty list")
    return train[key]


def _methods(train: dict[str, Any]) -> tuple[str, ...]:
    methods = _non_empty_list(train, "methods")
    for method in methods:
        get_method(method)
    _unique("train.methods", methods)
    return tuple(methods)


def _oversight(train: dict[str, Any]) -> tuple[float, ...]:
    levels = [check_probability("train.oversight", p) for p in _non_empty_list(train, "oversight")]
    _unique("train.oversight", levels, key=lambda p: f"{p:g}")  # as in Cell.path: 0.1 and 0.1000001 would share p0.1/
    return tuple(levels)


def _seeds(train: dict[str, Any]) -> tuple[int, ...]:
    seeds = _non_empty_list(train, "seeds")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise invalid_argument("train.seeds", seed, "expected integers >= 0")
    _unique("train.seeds", seeds)
    return tuple(seeds)


def _optional_positive_int(table: dict[str, Any], key: str, argument: str, default: int | None = None) -> int | None:
    value = table.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise invalid_argument(argument, value, "expected an integer >= 1")
    return value


def _check_first_config(spec: ExperimentSpec) -> None:
    """Build each environment's first cell's config: it validates the environment and its keyword
    arguments (an unknown one is a one-line error from the environment), the budget and the
    settings once."""
    for env in spec.envs:
        spec.config(Cell(spec.methods[0], spec.oversight[0], spec.seeds[0], env.name))


def _only(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise invalid_argument(where, unknown[0], f"unknown key; expected one of {sorted(allowed)}")
