"""`sweeps.json` in a sweep's output directory: one entry per `oversight sweep` that trained cells
there (a piece of the experiment): when it started, how long it worked (saved as it goes: when a cell
finished, how many cells finished and failed, with how many workers, on what machine.

An entry is saved again as each cell finishes and every half minute while cells train, so a
sweep killed mid-way still records its time and the work it finished (the cells it was training when killed restart in the next piece and count there). A
report sums the pieces into the experiment's wall time: the answer to "how long did it take", and,
with the machines named, to "where did these numbers come from" (the same seed need not give the
same run on another machine)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.files import write_json_atomic
from agents.run_dir import read_json
from analysis.machine import machine_record
from oversight_env.spec import invalid_argument

SWEEP_LOG = "sweeps.json"


class SweepLog:
    """The entry of the sweep now running, appended to `out/sweeps.json` when it starts."""

    def __init__(self, out: Path, backend: str, workers: int | None, cells_to_train: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.clock = out / SWEEP_LOG, clock
        self.pieces = read_sweep_log(out)
        self.started = clock()
        self.entry: dict[str, Any] = {
            "started": _utc(self.started), "ended": None, "seconds": 0.0, "cells_to_train": cells_to_train,
            "cells_finished": 0, "cells_failed": 0, "backend": backend, "workers": workers, "machine": machine_record()}
        self.pieces.append(self.entry)
        self._save()

    def cell_done(self, failed: bool) -> None:
        """Count a cell that finished (or failed) now."""
        self.entry["cells_failed" if failed else "cells_finished"] += 1
        self.tick()

    def tick(self) -> None:
        """Save the time worked so far (called while cells train), so that a sweep killed before
        any cell finished still records the time it spent."""
        self.entry["seconds"] = round(self.clock() - self.started, 1)
        self._save()

    def close(self) -> None:
        """The sweep ended (every cell finished or failed)."""
        self.entry["ended"] = _utc(self.clock())
        self._save()

    def _save(self) -> None:
        write_json_atomic(self.path, self.pieces)


def read_sweep_log(out: Path) -> list[dict[str, Any]]:
    """The pieces recorded in `out/sweeps.json` ([] when there is none; a one-line error naming
    the file when it is damaged)."""
    path = out / SWEEP_LOG
    if not path.exists():
        return []
    pieces = read_json(path)
    if not (isinstance(pieces, list) and all(isinstance(p, dict) and isinstance(p.get("seconds"), (int, float))
                                             for p in pieces)):
        raise invalid_argument("file", str(path), "not a list of sweep pieces; delete it or choose another directory")
    return pieces


def sweep_log_text(out: Path) -> str:
    """A paragraph for a report: the pieces' wall time in all, each piece's, and the machines."""
    pieces = read_sweep_log(out)
    if not pieces:
        return ""
    total = sum(p["seconds"] for p in pieces)
    machines = sorted({_machine_name(p["machine"]) for p in pieces if isinstance(p.get("machine"), dict)})
    lines = [f"- {p.get('started')}: {_duration(p['seconds'])}, {p.get('cells_finished', 0)} cells finished"
             + (f", {p['cells_failed']} failed" if p.get("cells_failed") else "")
             + ("" if p.get("ended") else " (stopped before the end)") for p in pieces]
    return (f"## How long it took\n\n{_duration(total)} of wall time in {len(pieces)} "
            f"{'piece' if len(pieces) == 1 else 'pieces'} of `oversight sweep` (to each piece's last finished "
            f"cell; `{SWEEP_LOG}` has each one's machine and software), on {'; '.join(machines)}:\n\n"
            + "\n".join(lines) + "\n\n")


def _machine_name(machine: dict[str, Any]) -> str:
    """E.g. "AMD EPYC, family 25 model 17 stepping 1 (2 cores; torch 2.13.0+cpu)"; fields a piece
    lacks (entered by hand, or recorded before they were) are left out."""
    name = str(machine.get("cpu") or "an unnamed CPU") + (f", {machine['cpu_id']}" if machine.get("cpu_id") else "")
    details = [f"{machine['cores']} cores" if machine.get("cores") else None,
               f"torch {machine['torch']}" if machine.get("torch") else None]
    details = [d for d in details if d]
    return name + (f" ({'; '.join(details)})" if details else "")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
