"""`train(config, out_dir)`: one entry point for every trainer, with resume and finished-run reuse;
`train_members(configs, out_dirs)`: the same for the cells of one method and environment (seeds,
oversight levels) trained as one program, the members of `agents.lean_trainer.train_members`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.run_dir import (
    CHECKPOINT,
    is_finished,
    locked,
    prepare_run_dir,
    read_evaluation,
    removed_if_unwritable,
    write_evaluation,
    write_evaluations,
)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` in `out_dir` and return its final evaluation report.

    A directory holding a finished run of the same config returns that run's report; one holding
    an unfinished run continues from its last checkpoint; one holding another config, or being
    trained by another process right now, is an error.
    """
    out_dir = Path(out_dir)
    config.torch_device()  # a device this machine lacks is an error before the run directory exists
    with removed_if_unwritable(out_dir):
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


def train_members(configs: Sequence[TrainConfig], out_dirs: Sequence[str | Path], progress: bool = True) -> list[dict[str, Any]]:
    """`train` for configs that may train as one program (`agents.lean_trainer.check_members`: they
    differ only in seed and oversight level): each in its own run directory, prepared and locked
    like `train`'s; finished ones return their reports, the rest train together, and each gets its
    evaluation. Returns the reports, in order.

    Members whose checkpoints stand at different steps (a program killed while writing them)
    train as one program per step. A directory another process is training is an error before
    anything trains.
    """
    from agents.files import load_checkpoint
    from agents.lean_trainer import check_members
    from agents.lean_trainer import train_members as train_together

    configs, out_dirs = list(configs), [Path(d) for d in out_dirs]
    check_members(configs, out_dirs)
    configs[0].torch_device()
    for config, out_dir in zip(configs, out_dirs):
        prepare_run_dir(config, out_dir)
    reports: dict[int, dict[str, Any]] = {}
    with ExitStack() as locks:
        for out_dir in out_dirs:
            locks.enter_context(locked(out_dir))
        by_step: dict[int, list[int]] = {}
        for i, out_dir in enumerate(out_dirs):
            if is_finished(out_dir):
                reports[i] = read_evaluation(out_dir)
            else:
                checkpoint = out_dir / CHECKPOINT
                step = load_checkpoint(checkpoint)["state"]["env_steps"] if checkpoint.exists() else 0
                by_step.setdefault(step, []).append(i)
        for group in by_step.values():
            trained = train_together([configs[i] for i in group], [out_dirs[i] for i in group], progress)
            written = write_evaluations([net for net, _ in trained], [configs[i] for i in group],
                                        [out_dirs[i] for i in group], [steps for _, steps in trained])
            reports.update(zip(group, written))
    return [reports[i] for i in range(len(configs))]
