"""The finished marker `eval.json` appears whole or not at all: every writer of it (`train` with
either trainer, `train_members`, `write_evaluation`) writes a temporary file and renames it
into place. So a run killed, or a disk that fills, while the marker is written leaves no
`eval.json` (the run is not finished and trains/evaluates again) or the previous one intact, and
no temporary file behind.

The tests catch the class, not one line: they watch every way Python opens a file (`io.open`,
`builtins.open`, `os.open`) once training has returned, so any in-place write of `eval.json` by
any code path is seen, and they make writes fail midway (half the text written, then an error)
and renames fail.
"""

from __future__ import annotations

import builtins
import errno
import io
import importlib
import json
import os
import sys
import types
from pathlib import Path

import pytest

import agents.lean_trainer
from agents.config import TrainConfig
from agents.episodes import EPISODE
from agents.run_dir import EVALUATION, is_finished, read_evaluation
from agents.train import train, train_members, write_evaluation

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class HalfWrite:
    """A file that writes the first half of what it is given, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device (the test's)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


class Disk:
    """Watches (and, in mode "half" or "no-rename", breaks) writes below the armed run directories.
    Armed by the fake trainer once training is over: what follows is the writing of the marker."""

    def __init__(self, monkeypatch, mode: str = "watch"):
        self.mode, self.armed, self.before = mode, [], {}
        self.in_place, self.renamed = [], []  # write-opens of a file named eval.json; renames' targets
        real_open, real_os_open, real_replace, real_rename = io.open, os.open, os.replace, os.rename

        def watched(file) -> bool:
            if not self.armed or isinstance(file, int):
                return False
            path = Path(os.fsdecode(file)).resolve()
            return any(d == path.parent or d in path.parents for d in self.armed)

        def open_(file, mode="r", *args, **kwargs):
            if watched(file) and any(c in mode for c in "wax+"):
                if Path(os.fsdecode(file)).name == EVALUATION:
                    self.in_place.append(str(file))
                if self.mode == "half":
                    return HalfWrite(real_open(file, mode, *args, **kwargs))
            return real_open(file, mode, *args, **kwargs)

        def os_open(path, flags, *args, **kwargs):
            if watched(path) and flags & WRITE_FLAGS:
                if Path(os.fsdecode(path)).name == EVALUATION:
                    self.in_place.append(str(path))
                if self.mode == "half":
                    raise OSError(errno.ENOSPC, "No space left on device (the test's)")
            return real_os_open(path, flags, *args, **kwargs)

        def renamer(real):
            def rename(src, dst, *args, **kwargs):
                if watched(dst):
                    self.renamed.append(Path(os.fsdecode(dst)).name)
                    if self.mode == "no-rename":
                        raise OSError(errno.EIO, "Input/output error (the test's)")
                return real(src, dst, *args, **kwargs)
            return rename

        monkeypatch.setattr(io, "open", open_)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "replace", renamer(real_replace))
        monkeypatch.setattr(os, "rename", renamer(real_rename))

    def arm(self, out_dir: Path) -> None:
        out_dir = Path(out_dir).resolve()
        self.before[out_dir] = listing(out_dir)
        self.armed.append(out_dir)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}


def config(**kwargs) -> TrainConfig:
    return TrainConfig(**{"method": "naive", "oversight_prob": 0.2, "steps": 64, "num_envs": 4, "rollout_steps": 16,
                          "final_eval_episodes": 4, **kwargs})


@pytest.fixture
def writers(monkeypatch):
    """Each writer of the marker, with training replaced by a stub (the marker is what is tested)
    and the evaluation by a fixed table; returns {name: (write(disk, tmp_path) -> run dirs)}."""
    monkeypatch.setattr(importlib.import_module("agents.train"), "evaluate_members",  # the module, not agents.train()
                        lambda nets, *a, **k: [{"full": {"episodes": 4, "p_proxy": 0.25}} for _ in nets])
    monkeypatch.setattr(importlib.import_module("agents.train"), "record_episode",
                        lambda net, config, ablate: {"seed": 0, "ablate": ablate, "actions": [1, 2]})

    def stub(disk):
        def trainer(config, out_dir, progress=True):
            (out_dir / "checkpoint.pt").write_bytes(b"weights")  # as every trainer ends: with a checkpoint
            disk.arm(out_dir)
            return None, 64
        return trainer

    def lean(disk, tmp_path):
        monkeypatch.setattr(agents.lean_trainer, "train_lean", stub(disk))
        train(config(), tmp_path / "lean", progress=False)

    def sb3(disk, tmp_path):
        monkeypatch.setitem(sys.modules, "agents.sb3", types.SimpleNamespace(train_sb3=stub(disk)))
        train(config(trainer="sb3", algorithm="ppo"), tmp_path / "sb3", progress=False)

    def members(disk, tmp_path):
        def seeds(configs, out_dirs, progress=True):
            return [stub(disk)(c, d) for c, d in zip(configs, out_dirs)]
        monkeypatch.setattr(agents.lean_trainer, "train_members", seeds)
        train_members([config(seed=0), config(seed=1)], [tmp_path / "s0", tmp_path / "s1"], progress=False)

    return {"lean": lean, "sb3": sb3, "members": members}


WRITERS = ["lean", "sb3", "members"]


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_renames_a_whole_finished_marker_into_place_and_never_writes_it_in_place(writers, writer, monkeypatch, tmp_path):
    disk = Disk(monkeypatch)
    writers[writer](disk, tmp_path)
    assert disk.armed, "the stub trainer ran"
    assert disk.in_place == [], f"eval.json opened for writing in place: {disk.in_place}"
    assert disk.renamed.count(EVALUATION) == len(disk.armed)
    for run in disk.armed:
        assert is_finished(run) and read_evaluation(run)["env_steps"] == 64
        assert set(listing(run)) == set(disk.before[run]) | {EPISODE, EVALUATION}, "a temporary file was left behind"


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("failure", ["half", "no-rename"])
def test_a_marker_write_that_fails_midway_leaves_no_marker_and_no_temporary_file(writers, writer, failure, monkeypatch, tmp_path):
    disk = Disk(monkeypatch, failure)
    with pytest.raises(OSError, match="the test's"):
        writers[writer](disk, tmp_path)
    assert disk.armed
    for run in disk.armed:
        assert not is_finished(run), "a failed write left a finished marker"
        written = {name: data for name, data in listing(run).items() if name != EPISODE}  # recorded before the marker
        assert written == disk.before[run], "a failed write left a file behind (or changed one)"


@pytest.mark.parametrize("failure", ["half", "no-rename"])
def test_a_failed_rewrite_of_the_marker_keeps_the_previous_one_intact(failure, writers, monkeypatch, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    old = json.dumps({"config": {}, "evaluated_variant": "full", "env_steps": 32, "variants": {}})
    (run / EVALUATION).write_text(old)
    disk = Disk(monkeypatch, failure)
    disk.arm(run)
    with pytest.raises(OSError, match="the test's"):
        write_evaluation(None, config(), run, 64)
    assert listing(run) == disk.before[run] and (run / EVALUATION).read_text() == old
