"""Files every run and report writes: atomic writes (a kill never leaves half a file) and output
directories that fail with a one-line error naming the argument."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from oversight_env.spec import invalid_argument


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only once the block succeeds, so a
    kill never leaves a half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise write_error(path, error.strerror or str(error)) from None
    except RuntimeError as error:  # torch.save's writer on a full disk: "[enforce fail at ...] unexpected pos"
        raise write_error(path, str(error).splitlines()[0]) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_error(path: Path, why: str) -> OSError:
    """The one-line error of a file that could not be written: its path, why, and the free space
    left on its disk (a full disk says so in no other words when torch writes)."""
    try:
        free = f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free on that disk"
    except OSError:
        free = ""
    return OSError(f"cannot write {path} ({why}{free})")


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


def load_checkpoint(path: Path) -> Any:
    """`torch.load` of a checkpoint this project wrote, or a one-line error naming the file (a
    damaged file fails in many ways deep inside torch)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise invalid_argument("checkpoint", str(path), f"cannot be loaded ({damage(error)}); delete it to start the run again") from None


def damage(error: BaseException) -> str:
    """An exception as a short single line, for messages about damaged files."""
    return f"{type(error).__name__}: {str(error)[:160]}".replace("\n", " ")
