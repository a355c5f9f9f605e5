"""`train(config, out_dir)`: one entry point for every trainer, with resume and finished-run reuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.run_dir import prepare_run_dir


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` in `out_dir` and return its final evaluation report.

    A directory holding a finished run of the same config returns that run's report; one holding
    an unfinished run continues from its last checkpoint; one holding another config is an error.
    """
    out_dir = Path(out_dir)
    prepare_run_dir(config, out_dir)
    if (out_dir / "eval.json").exists():
        return json.loads((out_dir / "eval.json").read_text())
    if config.trainer == "sb3":
        from agents.sb3 import train_sb3

        return train_sb3(config, out_dir, progress)
    from agents.lean_trainer import train_lean

    return train_lean(config, out_dir, progress)
