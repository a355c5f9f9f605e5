"""A run directory: its config, atomic writes, and loading a trained policy back.

    <run>/config.json   the resolved TrainConfig
    <run>/tb/           tensorboard events
    <run>/checkpoint.pt the lean trainer's latest state (or checkpoint.zip, SB3's)
    <run>/best.pt       early stopping's chosen weights
    <run>/eval.json     the final evaluation
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from agents.config import TrainConfig
from agents.evaluator import evaluate, format_table, variant_name
from agents.methods import get_method
from agents.networks import ActorCritic
from oversight_env.spec import invalid_argument


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only once the block succeeds, so a
    kill never leaves a half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float))


def save_atomic(obj: Any, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def make_output_dir(path: str | Path, argument: str = "out") -> Path:
    """Create a writable output directory, or fail with a one-line error naming `argument`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise invalid_argument(argument, str(path), f"cannot create that directory ({error.strerror})") from None
    if not os.access(path, os.W_OK):
        raise invalid_argument(argument, str(path), "that directory is not writable")
    return path


def prepare_run_dir(config: TrainConfig, out_dir: Path) -> None:
    """Create `out_dir` for `config`, or check that the run already in it has the same config."""
    make_output_dir(out_dir)
    config_path = out_dir / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        differ = sorted(k for k, v in config.to_json().items() if previous.get(k) != v)
        if differ:
            raise invalid_argument("out", str(out_dir), f"it holds a run with another config (differs in {differ}); choose another directory")
    else:
        write_json_atomic(config_path, config.to_json())


def load_policy(path: str | Path) -> tuple[ActorCritic, TrainConfig]:
    """The trained network and config of a run directory (its chosen weights: early stopping's
    best, else the last checkpoint), or of a checkpoint file (.pt or SB3 .zip) in one."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    if path.is_dir():
        candidates = [run_dir / name for name in ("best.pt", "checkpoint.pt", "checkpoint.zip")]
        path = next((c for c in candidates if c.exists()), candidates[1])
    if not path.exists() or not (run_dir / "config.json").exists():
        raise invalid_argument("run", str(path), "expected a run directory (with config.json) or a checkpoint in one")
    config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    if path.suffix == ".zip":
        from agents.sb3 import RoutedPPO

        return RoutedPPO.load(path, device="cpu").policy.net, config
    state = torch.load(path, map_location="cpu", weights_only=False)
    net = ActorCritic.from_config(state["network_config"])
    net.load_state_dict(state["model"])
    return net, config


def finish_run(net: ActorCritic, config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Evaluate the trained policy (every variant) and write `eval.json`; return the report."""
    method = get_method(config.method)
    variants = evaluate(
        net, config.env_id, config.final_eval_episodes, seed=1_000_000 + config.seed,
        oversight_prob=config.oversight_prob, env_kwargs=config.env_kwargs, gamma=config.gamma,
    )
    report = {
        "config": config.to_json(),
        "evaluated_variant": variant_name(method.evaluate_without),
        "env_steps": method.training_steps(config.steps, config.oversight_prob),
        "variants": variants,
    }
    write_json_atomic(out_dir / "eval.json", report)
    return report


def summarize(report: dict[str, Any]) -> str:
    """The final evaluation as a table, with the method's evaluated variant named."""
    return f"evaluated policy: {report['evaluated_variant']}\n" + format_table(report["variants"])
