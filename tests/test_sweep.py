"""Experiment specs, sweeps (local and Ray backends), kill-and-resume, and reports."""

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oversight_cli.report import (
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    bootstrap_ci,
    comparison_rows,
    comparison_table,
    interquartile_mean,
)
from oversight_cli.spec import load_spec
from oversight_cli.sweep import run_sweep

ROOT = Path(__file__).parents[1]
TINY_SETTINGS = {"num_envs": 32, "rollout_steps": 16, "eval_every_steps": 1024, "eval_episodes": 64,
                 "checkpoint_every_steps": 1024}

TINY = """
name = "tiny"
[env]
id = "OversightGrid/DiamondGhost-5x5-v0"
[train]
methods = ["routing", "naive"]
oversight = [0.2]
seeds = [0, 1]
steps = {steps}
[train.settings]
num_envs = 64
rollout_steps = 16
eval_every_steps = 2048
eval_episodes = 64
checkpoint_every_steps = 2048
[eval]
episodes = 256
"""


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_quick_spec_end_to_end_on_a_tiny_budget(tmp_path):
    spec = load_spec(ROOT / "runs" / "quick.toml")
    assert len(spec.cells()) == len(spec.methods) * len(spec.oversight) * len(spec.seeds)
    tiny = dataclasses.replace(spec, steps=1024, seeds=(0,), settings=TINY_SETTINGS, eval_episodes=128)
    report = run_sweep(tiny, tmp_path, workers=2, progress=False)
    for name in ("results.csv", "summary.csv", "comparison.csv", "learning_curves.csv", "report.md",
                 "return_vs_oversight.png", "ghost_when_unobserved_vs_oversight.png", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = read_csv(tmp_path / "results.csv")
    assert list(results[0]) == RESULT_COLUMNS
    evaluated = [r for r in results if r["evaluated"] == "True"]
    assert {(r["method"], float(r["oversight"])) for r in evaluated} == {(m, p) for m in spec.methods for p in spec.oversight}
    summary = read_csv(tmp_path / "summary.csv")
    assert list(summary[0]) == SUMMARY_COLUMNS and len(summary) == 2 * len(evaluated)
    text = report.read_text()
    assert "return_vs_oversight.png" in text and "| 0.1 | routing |" in text
    assert "smoke-scale budget" in text  # the spec's own description heads the report
    comparisons = read_csv(tmp_path / "comparison.csv")
    assert {(c["method"], float(c["oversight"])) for c in comparisons} == {
        (m, p) for m in spec.methods if m != "routing" for p in spec.oversight}
    assert "## routing against each other method" in text
    assert {r["metric"] for r in read_csv(tmp_path / "learning_curves.csv")} == {"return_per_step", "p_ghost_when_unobserved"}


def test_a_killed_sweep_resumes_to_the_same_results(tmp_path):
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=8 * 1024))
    reference = run_sweep(load_spec(spec_file), tmp_path / "reference", workers=1, progress=False)

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "oversight_cli.main", "sweep", str(spec_file), "--out", str(out), "--workers", "1", "--quiet"]
    sweep = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:  # kill it once one cell is finished and another is part-way (checkpointed, not evaluated)
        while time.time() < deadline:
            finished = list(out.glob("**/eval.json"))
            partial = [c for c in out.glob("**/checkpoint.pt") if not (c.parent / "eval.json").exists()]
            if finished and partial:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the sweep never reached a state with one finished and one part-way cell")
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    assert not (out / "results.csv").exists()
    assert len(list(out.glob("**/eval.json"))) < 4

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert read_csv(out / "results.csv") == read_csv(reference.parent / "results.csv")


def test_ray_backend_runs_every_cell_as_a_task(tmp_path, monkeypatch):
    """The Ray integration, against a stand-in `ray` module that runs tasks in process (Ray
    itself is an optional extra, not installed for the tests)."""
    calls = {"init": [], "tasks": []}

    class Ref:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

    class FakeRay:
        @staticmethod
        def is_initialized():
            return bool(calls["init"])

        @staticmethod
        def init(address=None, **kwargs):
            calls["init"].append(address)

        @staticmethod
        def remote(num_cpus):
            def wrap(fn):
                class Remote:
                    @staticmethod
                    def remote(*args):
                        calls["tasks"].append(Path(args[1]).parts[-3])
                        return Ref(fn, args)
                return Remote
            return wrap

        @staticmethod
        def wait(refs, num_returns):
            return refs[:num_returns], refs[num_returns:]

        @staticmethod
        def get(ref):
            return ref.fn(*ref.args)

    monkeypatch.setitem(sys.modules, "ray", FakeRay)
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=1024).replace('["routing", "naive"]', '["oracle", "naive", "routing"]'))
    run_sweep(load_spec(spec_file), tmp_path / "out", backend="ray", address="ray://head:10001", progress=False)
    # Longest cells first (two experts, then one, then the oracle's short budget), so the tail is short.
    assert calls == {"init": ["ray://head:10001"], "tasks": ["routing"] * 2 + ["naive"] * 2 + ["oracle"] * 2}
    assert len(read_csv(tmp_path / "out" / "summary.csv")) == 6


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=1024))
    with pytest.raises(ValueError, match=r"Ray is not installed: pip install 'oversight-testbed\[ray\]'"):
        run_sweep(load_spec(spec_file), tmp_path / "out", backend="ray", progress=False)


def test_bad_backend(tmp_path):
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=1024))
    with pytest.raises(ValueError, match="backend='slurm' is invalid"):
        run_sweep(load_spec(spec_file), tmp_path / "out", backend="slurm")


def test_summary_statistics():
    import numpy as np

    values = np.array([0.1, 0.2, 0.3, 0.4, 10.0])
    assert interquartile_mean(values) == pytest.approx(0.3)  # the outlier and the lowest seed dropped
    low, high = bootstrap_ci(np.array([0.5, 0.5, 0.5]))
    assert low == high == 0.5
    low, high = bootstrap_ci(np.array([0.0, 1.0] * 10))
    assert 0.25 < low < 0.5 < high < 0.75


def test_routing_is_compared_with_every_other_method_at_each_level():
    def rows(method, oversight, values):
        return [{"method": method, "oversight": oversight, "seed": i, "evaluated": True, "return_per_step": v}
                for i, v in enumerate(values)]

    seeds = [0.50, 0.52, 0.48, 0.51, 0.49]
    data = (rows("routing", 0.01, seeds) + rows("naive", 0.01, [v - 0.2 for v in seeds])
            + rows("filtering", 0.01, [v + 0.2 for v in seeds]) + rows("oracle", 0.01, seeds[::-1])
            + rows("naive", 0.1, seeds))  # no routing at 10%: nothing to compare
    found = {c["method"]: c for c in comparison_rows(data)}
    assert set(found) == {"naive", "filtering", "oracle"}
    assert found["naive"]["verdict"] == "better" and found["naive"]["difference"] == pytest.approx(0.2)
    assert found["filtering"]["verdict"] == "worse" and found["filtering"]["ci_high"] < 0
    assert found["oracle"]["verdict"] == "no clear difference" and found["oracle"]["ci_low"] < 0 < found["oracle"]["ci_high"]
    assert "| 0.01 | -0.200 [" in comparison_table(comparison_rows(data))  # filtering, naive, oracle: alphabetical
