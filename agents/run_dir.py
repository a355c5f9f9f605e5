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
from pathlib import Path
from typing import Any

import torch

from agents.config import TrainConfig
from agents.evaluator import evaluate, format_table, variant_name
from agents.methods import get_method
from agents.networks import ActorCritic
from oversight_env.spec import invalid_argument


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def prepare_run_dir(config: TrainConfig, out_dir: Path) -> None:
    """Create `out_dir` for `config`, or check that the run already in it has the same config."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise invalid_argument("out", str(out_dir), f"cannot create that directory ({error.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise invalid_argument("out", str(out_dir), "that directory is not writable")
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
