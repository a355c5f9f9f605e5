"""Files every run and report writes: atomic writes (a kill never leaves half a file) and output
directories that fail with a one-line error naming the argument."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from agents.legacy_names import modern_keys
from oversight_env.spec import invalid_argument


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only once the block succeeds, so a
    kill never leaves a half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # RuntimeError: torch.save's writer on a full disk
        raise write_error(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_error(path: Path, error: BaseException) -> OSError:
    """The one-line error of a file that could not be written: its path, why (`error`'s first
    line; torch's writer says "[enforce fail at ...] unexpected pos" on a full disk), and the free
    space left on its disk (which torch's message never mentions)."""
    why = getattr(error, "strerror", None) or str(error).splitlines()[0]
    try:
        free = f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free on that disk"
    except OSError:
        free = ""
    return OSError(f"cannot write {path} ({why}{free})")


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float))


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """`rows` as a CSV file with a header of `columns`, written atomically."""
    with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


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
    damaged file fails in many ways deep inside torch). Names from before the generic vocabulary
    are read as today's (`agents.legacy_names`)."""
    try:
        return modern_keys(torch.load(path, map_location="cpu", weights_only=False))
    except Exception as error:
        raise invalid_argument("checkpoint", str(path), f"cannot be loaded ({damage(error)}); delete it to start the run again") from None


def damage(error: BaseException) -> str:
    """An exception as a short single line, for messages about damaged files."""
    return f"{type(error).__name__}: {str(error)[:160]}".replace("\n", " ")
