"""Where a run's scalars go: one logger, several sinks.

- tensorboard (`<run>/tb/`), to look at;
- `<run>/metrics.jsonl`, one row per scalar, `{"step": env_steps, "tag": ..., "value": ...}`: the
  tidy data that reports read (they never parse event files);
- Weights & Biases, where `wandb` is installed and `OVERSIGHT_WANDB_PROJECT` names a project
  (`oversight train --wandb PROJECT` sets it), for those who track runs there.

A run resumed from a checkpoint at step s logs again what the killed run logged after s: every
sink drops those points when it opens (`purge_step`), so a resumed run's rows are an
uninterrupted run's. `flush` puts everything logged so far on disk before a checkpoint is.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from agents.files import atomic_write, write_error
from agents.legacy_names import modern_name
from oversight_env.spec import invalid_argument

METRICS = "metrics.jsonl"
WANDB_PROJECT = "OVERSIGHT_WANDB_PROJECT"


class Sink(Protocol):
    def write(self, tag: str, value: float, step: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a `metrics.jsonl` (tags in today's names, `agents.legacy_names`), and one phrase
    per line that is not a row (a run killed while writing leaves at most a partial last line)."""
    rows, problems = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        return [], [f"{path.name} cannot be read ({error.strerror})"]
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            rows.append({"step": int(row["step"]), "tag": modern_name(str(row["tag"])), "value": float(row["value"])})
        except (ValueError, KeyError, TypeError):
            problems.append(f"{path.name} line {number} is not a row")
    return rows, problems


class MetricsFile:
    """`metrics.jsonl`: appended row by row; rows after `purge_step` (and damaged lines) dropped on open."""

    def __init__(self, path: Path, purge_step: int | None = None):
        self.path = path
        if purge_step is not None and path.exists():
            rows, problems = read_metrics(path)
            kept = [row for row in rows if row["step"] < purge_step]
            if problems or len(kept) < len(rows):
                with atomic_write(path) as tmp:
                    tmp.write_text("".join(_line(**row) for row in kept))
        try:
            self.file = path.open("a")
        except OSError as error:
            raise write_error(path, error) from None
        self.pending: list[str] = []

    def write(self, tag: str, value: float, step: int) -> None:
        self.pending.append(_line(step, tag, value))

    def flush(self) -> None:
        try:
            self.file.write("".join(self.pending))
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as error:
            raise write_error(self.path, error) from None
        self.pending = []

    def close(self) -> None:
        if not self.file.closed:
            self.flush()
            self.file.close()


def _line(step: int, tag: str, value: float) -> str:
    value = float(value)
    return json.dumps({"step": int(step), "tag": tag, "value": value if math.isfinite(value) else str(value)}) + "\n"


class TensorboardSink:
    """Tensorboard's `SummaryWriter`, dropping the events after `purge_step` of an earlier run."""

    def __init__(self, folder: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(folder, purge_step=purge_step)

    def write(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    """A Weights & Biases run named after the run directory, resumed with it; points at or before
    the step a resumed run starts from are skipped (wandb cannot take them back)."""

    def __init__(self, project: str, out_dir: Path, config: dict[str, Any], purge_step: int | None = None):
        try:
            import wandb
        except ImportError:
            raise invalid_argument(WANDB_PROJECT, project, "wandb is not installed: pip install wandb") from None
        run_id = "".join(c if c.isalnum() or c in "-_" else "-" for c in out_dir.resolve().as_posix())[-120:]
        self.run = wandb.init(project=project, id=run_id, name=out_dir.name, dir=str(out_dir), config=config,
                              resume="allow", reinit=True)
        self.after = (purge_step or 1) - 1

    def write(self, tag: str, value: float, step: int) -> None:
        if step > self.after:
            self.run.log({tag: value}, step=step)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.run.finish()


class RunLogger:
    """Every sink of one run: `log(tag, value, step)` goes to each. `purge_step`: the first step
    this run logs (the step after its checkpoint); what an earlier run logged from there is dropped."""

    def __init__(self, out_dir: Path, purge_step: int | None = None, config: dict[str, Any] | None = None,
                 sinks: Iterable[Sink] | None = None):
        if sinks is None:
            sinks = [TensorboardSink(out_dir / "tb", purge_step), MetricsFile(out_dir / METRICS, purge_step)]
            project = os.environ.get(WANDB_PROJECT)
            if project:
                sinks.append(WandbSink(project, out_dir, config or {}, purge_step))
        self.sinks = list(sinks)

    def log(self, tag: str, value: float, step: int) -> None:
        for sink in self.sinks:
            sink.write(tag, float(value), int(step))

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
