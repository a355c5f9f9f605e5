"""The run-directory protocol: what one training run keeps on disk, and how it is read back.

    <run>/config.json    the resolved TrainConfig (written first; a directory holds one config)
    <run>/.lock          held (flock) by the one process training the run
    <run>/tb/            tensorboard events (`agents.logger`)
    <run>/metrics.jsonl  the same scalars as rows {"step", "tag", "value"}: what reports read
    <run>/checkpoint.pt  the lean trainer's latest state (checkpoint.zip: the SB3 trainer's)
    <run>/best.pt        early stopping's chosen weights
    <run>/episode.json   one episode of the evaluated policy, for reports (`agents.episodes`)
    <run>/eval.json      the final evaluation: the run is finished when it exists

Every damaged or missing file gives a one-line error naming the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.config import SETTINGS_ADDED_LATER, TrainConfig
from agents.files import make_output_dir, write_json_atomic
from agents.legacy_names import modern_keys
from oversight_env.spec import invalid_argument

CONFIG, LOCK, EVALUATION, CHECKPOINT, SB3_CHECKPOINT, BEST = (
    "config.json", ".lock", "eval.json", "checkpoint.pt", "checkpoint.zip", "best.pt")


def read_json(path: Path) -> Any:
    """A JSON file's content, or a one-line error naming the file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise invalid_argument("file", str(path), "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise invalid_argument("file", str(path), f"not valid JSON ({error}); delete it or choose another directory") from None


def read_config(run_dir: Path) -> TrainConfig:
    """The `TrainConfig` a run directory was made for, or a one-line error naming its file."""
    path = run_dir / CONFIG
    data = read_json(path)
    if not isinstance(data, dict):
        raise invalid_argument("file", str(path), "expected a JSON object of TrainConfig settings")
    known = {f for f in TrainConfig.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise invalid_argument("file", str(path), f"unknown settings {unknown}: written by another version of this project?")
    try:
        return TrainConfig(**data)
    except (TypeError, ValueError) as error:
        raise invalid_argument("file", str(path), f"holds an invalid config ({error})") from None


def prepare_run_dir(config: TrainConfig, out_dir: Path) -> None:
    """Create `out_dir` for `config`, or check that the run already in it has the same config."""
    make_output_dir(out_dir)
    config_path = out_dir / CONFIG
    if config_path.exists():
        previous, current = read_json(config_path), config.to_json()
        if not isinstance(previous, dict):
            raise invalid_argument("file", str(config_path), "expected a JSON object of TrainConfig settings")
        previous = {**SETTINGS_ADDED_LATER, **previous}  # a run from before a setting existed had this value
        differ = sorted(k for k in {*current, *previous} if previous.get(k, "<missing>") != current.get(k, "<missing>"))
        if differ:
            raise invalid_argument("out", str(out_dir), f"it holds a run with another config (differs in {differ}); choose another directory")
    else:
        write_json_atomic(config_path, config.to_json())


@contextmanager
def removed_if_unwritable(run_dir: Path) -> Iterator[None]:
    """Remove the directories this block creates for a new run when a write fails in it (a full
    disk, no permission) before the run saved a checkpoint: no partial run directory is left. A run
    that has a checkpoint keeps it, to resume once there is room."""
    created = next((p for p in reversed([run_dir, *run_dir.parents]) if not p.exists()), None)
    try:
        yield
    except OSError:
        if created is not None and not any(run_dir.glob("checkpoint.*")) and not (run_dir / BEST).exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the block: a second process that tries to train the same
    run fails at once with a one-line error instead of writing beside the first. The kernel
    releases the lock when the holder dies, however it dies."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise invalid_argument("out", str(run_dir), f"another process (pid {holder}) is training this run now") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def is_finished(run_dir: Path) -> bool:
    return (run_dir / EVALUATION).exists()


def read_evaluation(run_dir: Path) -> dict[str, Any]:
    """A finished run's final evaluation (`eval.json`), in today's names (`agents.legacy_names`)."""
    report = modern_keys(read_json(run_dir / EVALUATION), named=("evaluated_variant",))
    if not isinstance(report, dict) or not {"config", "evaluated_variant", "env_steps", "variants"} <= set(report):
        raise invalid_argument("file", str(run_dir / EVALUATION), "not a final evaluation; delete it to evaluate the run again")
    return report
