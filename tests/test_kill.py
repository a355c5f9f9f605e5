"""`kill -9` of `oversight train` at several points, then the same command again: the evaluation
and every tensorboard scalar are those of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_agents import scalars


def command(out):
    return [sys.executable, "-m", "oversight_cli.main", "train", "--method", "naive_early_stopping", "--oversight", "0.3",
            "--steps", "12288", "--num-envs", "32", "--rollout-steps", "16", "--eval-every", "1024",
            "--checkpoint-every", "2048", "--eval-episodes", "64", "--final-eval-episodes", "256", "--out", str(out),
            "--quiet"]


def kill_when(out, ready, deadline=120.0):
    """Start the command, SIGKILL it as soon as `ready()` holds; fail if it finished first."""
    process = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail("the run finished before the point it was to be killed at")
            if time.monotonic() - start > deadline:
                pytest.fail("the run never reached the point it was to be killed at")
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_kill_9_at_several_points_then_the_same_command_gives_the_uninterrupted_results(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(command(reference), check=True, capture_output=True)

    out = tmp_path / "killed"
    checkpoint = out / "checkpoint.pt"
    kill_when(out, lambda: (out / "config.json").exists())  # before any checkpoint
    kill_when(out, checkpoint.exists)  # right after the first checkpoint
    first = checkpoint.stat().st_mtime_ns
    kill_when(out, lambda: checkpoint.stat().st_mtime_ns != first)  # right after a later one
    assert not (out / "eval.json").exists()
    done = subprocess.run(command(out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    assert (out / "eval.json").read_text() == (reference / "eval.json").read_text()
    assert scalars(out) == scalars(reference)
    assert os.listdir(out / "tb")  # and the run did log
