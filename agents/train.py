"""`train(config, out_dir)`: one entry point for every trainer, with resume and finished-run reuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.run_dir import (
    is_finished,
    locked,
    prepare_run_dir,
    read_evaluation,
    write_evaluation,
)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` in `out_dir` and return its final evaluation report.

    A directory holding a finished run of the same config returns that run's report; one holding
    an unfinished run continues from its last checkpoint; one holding another config, or being
    trained by another process right now, is an error.
    """
    out_dir = Path(out_dir)
    config.torch_device()  # a device this machine lacks is an error before the run directory exists
    prepare_run_dir(config, out_dir)
    with locked(out_dir):
        if is_finished(out_dir):
            return read_evaluation(out_dir)
        if config.trainer == "sb3":
            from agents.sb3 import train_sb3 as trainer
        else:
            from agents.lean_trainer import train_lean as trainer
        net, env_steps = trainer(config, out_dir, progress)
        return write_evaluation(net, config, out_dir, env_steps)
