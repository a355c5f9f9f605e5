"""Trained policies read back: the network a run directory (or a checkpoint in one) holds, and
the config it was trained with, for `oversight eval`, `render` and the reports."""

from __future__ import annotations

from pathlib import Path

from agents.config import TrainConfig
from agents.files import damage, load_checkpoint
from agents.networks import ActorCritic
from agents.run_dir import BEST, CHECKPOINT, CONFIG, SB3_CHECKPOINT, read_config
from oversight_env.spec import invalid_argument


def load_policy(path: str | Path) -> tuple[ActorCritic, TrainConfig]:
    """The trained network and config of a run directory (its chosen weights: early stopping's
    best, else the last checkpoint), or of a checkpoint file (.pt or SB3 .zip) in one."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    if path.is_dir():
        candidates = [run_dir / name for name in (BEST, CHECKPOINT, SB3_CHECKPOINT)]
        path = next((c for c in candidates if c.exists()), candidates[1])
    if not path.exists() or not (run_dir / CONFIG).exists():
        raise invalid_argument("run", str(path), "expected a run directory (with config.json and a checkpoint) or a checkpoint in one")
    config = read_config(run_dir)
    try:
        if path.suffix == ".zip":
            from agents.sb3 import (
                RoutedPPO,  # SB3 takes a second to import: only when needed
            )

            return RoutedPPO.load(path, device="cpu").policy.net, config
        state = load_checkpoint(path)
        net = ActorCritic.from_config(state["network_config"])
        net.load_state_dict(state["model"])
    except ValueError:
        raise
    except Exception as error:  # a damaged file fails in many ways deep inside torch or zipfile
        raise invalid_argument("checkpoint", str(path), f"cannot be loaded ({damage(error)})") from None
    return net, config
