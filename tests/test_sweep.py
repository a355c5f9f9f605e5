"""Experiment specs, sweeps (local and Ray backends), kill-and-resume, and reports."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.run_dir import locked
from analysis.statistics import interquartile_mean
from analysis.tables import SUMMARY_COLUMNS, bootstrap_ci, comparison_rows, comparison_table, result_columns
from oversight_cli.spec import load_spec
from oversight_cli.sweep import run_sweep
from analysis.sweep_log import read_sweep_log
from tests.fake_ray import FakeRay

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


def sweep_command(spec_file, out, workers):
    return [sys.executable, "-m", "oversight_cli.main", "sweep", str(spec_file), "--out", str(out),
            "--workers", str(workers), "--quiet"]


def wait_for(condition, what, seconds=120):
    """Poll `condition` until it holds; fail naming `what` after `seconds` (a bound, not a timing)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def children(pid):
    """The processes whose parent is `pid`, from /proc/*/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    """Whether `pid` runs (a zombie does not: nothing may reap an orphan in a container)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def test_quick_spec_end_to_end_on_a_tiny_budget(tmp_path):
    spec = load_spec(ROOT / "runs" / "quick.toml")
    assert len(spec.cells()) == len(spec.methods) * len(spec.oversight) * len(spec.seeds)
    tiny = dataclasses.replace(spec, steps=1024, seeds=(0,), settings=TINY_SETTINGS, eval_episodes=128)
    report = run_sweep(tiny, tmp_path, workers=2, progress=False)
    for name in ("results.csv", "summary.csv", "comparison.csv", "learning_curves.csv", "report.md",
                 "return_vs_oversight.png", "proxy_when_unobserved_vs_oversight.png", "learning_curves.png",
                 "performance_profile.png", "diagnostics.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = read_csv(tmp_path / "results.csv")
    assert list(results[0]) == result_columns()
    evaluated = [r for r in results if r["evaluated"] == "True"]
    assert {(r["method"], float(r["oversight"])) for r in evaluated} == {(m, p) for m in spec.methods for p in spec.oversight}
    summary = read_csv(tmp_path / "summary.csv")
    assert list(summary[0]) == SUMMARY_COLUMNS and len(summary) == 2 * len(evaluated)
    text = report.read_text()
    assert "return_vs_oversight.png" in text and "| 0.1 | routing |" in text
    assert "smoke-scale budget" in text  # the spec's own description heads the report
    comparisons = read_csv(tmp_path / "comparison.csv")
    others = [m for m in spec.methods if m != "routing"]
    assert {(c["method"], c["oversight"]) for c in comparisons} == {
        *((m, str(p)) for m in others for p in spec.oversight), *((m, "all") for m in others)}
    assert "## routing against each other method" in text
    assert {r["metric"] for r in read_csv(tmp_path / "learning_curves.csv")} == {"return_per_step", "p_proxy_when_unobserved"}
    diagnostics = read_csv(tmp_path / "diagnostics.csv")
    routed = {m for m in spec.methods if m.startswith("routing")}
    assert {r["method"] for r in diagnostics if r["metric"] == "expert_kl"} == routed  # single networks have none
    assert {r["metric"] for r in diagnostics if r["method"] == "routing"} == {
        "gate_on_intended_labelled", "gate_on_proxy_labelled", "gate_on_unlabelled", "expert_kl",
        "gate_on_unobserved_intended_episodes", "gate_on_unobserved_proxy_episodes",
        "labelled_episodes_intended", "labelled_episodes_proxy"}
    assert "## Do the experts separate? (routed methods)" in text and "| 0.1 | routing | 1 |" in text.split("separate?")[1]
    expected = json.loads((tmp_path / "experiment.json").read_text())["cells"]
    assert [(c["method"], c["oversight"], c["seed"], c["path"]) for c in expected] == [
        (c.method, c.oversight, c.seed, c.path()) for c in tiny.cells()]
    assert all((tmp_path / c["path"] / "eval.json").exists() for c in expected)
    assert "Missing cells" not in text and "Incomplete learning curves" not in text


def test_a_killed_sweep_resumes_to_the_same_results(tmp_path):
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=8 * 1024))
    reference = run_sweep(load_spec(spec_file), tmp_path / "reference", workers=1, progress=False)

    out = tmp_path / "killed"
    command = sweep_command(spec_file, out, workers=1)
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

    # Saved as each cell finished (a cell finished in its worker may not be counted yet): the killed
    # piece's work is recorded.
    finished_when_killed = len(list(out.glob("**/eval.json")))
    killed = read_sweep_log(out)
    assert len(killed) == 1 and killed[0]["ended"] is None and killed[0]["cells_finished"] <= finished_when_killed

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    pieces = read_sweep_log(out)
    assert pieces[0] == killed[0] and pieces[1]["ended"] is not None
    assert pieces[1]["cells_to_train"] == pieces[1]["cells_finished"] == 4 - finished_when_killed
    assert read_csv(out / "results.csv") == read_csv(reference.parent / "results.csv")
    assert "Incomplete learning curves" not in (out / "report.md").read_text()
    # The tensorboard scalars too: a resumed run keeps every point it logged before the kill.
    assert read_csv(out / "learning_curves.csv") == read_csv(reference.parent / "learning_curves.csv")


@linux_only
def test_workers_end_with_a_killed_sweep(tmp_path):
    """SIGKILL to the sweep's main process alone: its workers must not go on training queued
    cells as orphans beside a sweep started again."""
    spec_file = tmp_path / "long.toml"
    spec_file.write_text(TINY.format(steps=2_000_000))
    out = tmp_path / "out"
    sweep = subprocess.Popen(sweep_command(spec_file, out, workers=2), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list(out.glob("**/config.json"))) == 2, "both workers to start a cell")
        recorded = children(sweep.pid)  # the workers (and multiprocessing's resource tracker)
        assert len(recorded) >= 2
        os.kill(sweep.pid, signal.SIGKILL)  # the main process only, not its group
        sweep.wait()
        wait_for(lambda: not any(alive(pid) for pid in recorded), "the orphaned workers to end", seconds=60)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)  # whatever survived
        sweep.wait()


ORPHAN = """
import os, sys, time
from oversight_cli import sweep
getattr(sweep, sys.argv[1])(*[os.getppid()][: int(sys.argv[2])])
print(os.getpid(), flush=True)
time.sleep(600)
"""

# Starts ORPHAN as a child, passes on its pid once it is ready, and exits: the child is orphaned.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
print(child.stdout.readline().strip(), flush=True)
"""


@linux_only
@pytest.mark.parametrize("mechanism,args", [("set_parent_death_signal", 0), ("watch_parent", 1)])
def test_each_way_of_ending_with_the_parent_ends_an_orphan(mechanism, args):
    """The Linux parent-death signal and the portable watcher thread, each on its own."""
    parent = subprocess.run([sys.executable, "-c", PARENT, ORPHAN, mechanism, str(args)],
                            capture_output=True, text=True, timeout=120)
    orphan = int(parent.stdout)
    try:
        wait_for(lambda: not alive(orphan), f"the orphan to end ({mechanism})", seconds=60)
    finally:
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_a_cell_another_process_is_training_fails_and_the_others_finish(tmp_path, capsys):
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=1024))
    spec, out = load_spec(spec_file), tmp_path / "out"
    busy = out / "naive/p0.2/s0"
    busy.mkdir(parents=True)
    with locked(busy):  # as another sweep (or `oversight train`) on this cell would hold it
        with pytest.raises(RuntimeError) as error:
            run_sweep(spec, out, workers=2, progress=False, population="off")  # one cell per job, on a GPU too
    message = str(error.value)
    assert "\n" not in message and message.startswith("1 of 4 cells failed (naive/p0.2/s0: "), message
    assert f"another process (pid {os.getpid()}) is training this run now" in message, message
    assert "run the sweep again to retry them" in message, message
    assert sorted(p.parent.relative_to(out).as_posix() for p in out.glob("**/eval.json")) == [
        "naive/p0.2/s1", "routing/p0.2/s0", "routing/p0.2/s1"]
    assert "cell failed: naive/p0.2/s0: " in capsys.readouterr().err
    report = (out / "report.md").read_text()  # of the three that finished, naming the fourth
    assert "- naive/p0.2/s0 (method naive, oversight 0.2, seed 0): started, no checkpoint yet" in report

    run_sweep(spec, out, workers=2, progress=False)  # the lock released: run again, it retries the cell
    assert len(read_csv(out / "summary.csv")) == 4 and "Missing cells" not in (out / "report.md").read_text()
    pieces = read_sweep_log(out)
    assert [(p["cells_to_train"], p["cells_finished"], p["cells_failed"], p["workers"]) for p in pieces] == [
        (4, 3, 1, 2), (1, 1, 0, 2)]
    assert all(p["ended"] and p["machine"]["cores"] == os.cpu_count() for p in pieces)
    assert "## How long it took" in (out / "report.md").read_text()


def test_ray_backend_runs_every_cell_as_a_task(tmp_path, monkeypatch):
    """The Ray integration, against a stand-in `ray` module that runs tasks in process (Ray
    itself is an optional extra, not installed for the tests)."""
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=1024).replace('["routing", "naive"]', '["oracle", "naive", "routing"]'))
    run_sweep(load_spec(spec_file), tmp_path / "out", backend="ray", address="ray://head:10001", progress=False,
              population="off")  # one task per cell, on a GPU too (populations: tests/test_population.py)
    # Longest cells first (two experts, then one, then the oracle's short budget), so the tail is short.
    assert ray.inits == ["ray://head:10001"]
    assert [Path(args[1]).parts[-3] for _, _, args in ray.tasks] == ["routing"] * 2 + ["naive"] * 2 + ["oracle"] * 2
    assert len(read_csv(tmp_path / "out" / "summary.csv")) == 6
    run_sweep(load_spec(spec_file), tmp_path / "out", backend="ray", progress=False)  # all finished: nothing to run
    assert len(ray.tasks) == 6
    assert [(p["backend"], p["cells_finished"]) for p in read_sweep_log(tmp_path / "out")] == [("ray", 6)]


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


ZOO = """
name = "two"
description = "two environments"
[[envs]]
id = "OversightGrid/AbsentSupervisor-v0"
steps = 2048
[[envs]]
id = "OversightGrid/Tampering-7x7-v0"
name = "tamper"
kwargs = {size = 5}
[train]
methods = ["naive"]
oversight = [0.3]
seeds = [0, 1]
steps = 1024
[train.settings]
num_envs = 32
rollout_steps = 16
eval_every_steps = 1024
eval_episodes = 16
[eval]
episodes = 32
"""


def test_a_sweep_of_several_environments_reports_each_and_links_them(tmp_path):
    (tmp_path / "two.toml").write_text(ZOO)
    report = run_sweep(load_spec(tmp_path / "two.toml"), tmp_path / "out", workers=1, progress=False)
    text = report.read_text()
    assert "[its report](AbsentSupervisor-v0/report.md)" in text and "`OversightGrid/Tampering-7x7-v0` {'size': 5}" in text
    assert "![each environment](environments.png)" in text and (tmp_path / "out/environments.png").stat().st_size > 0
    assert "| method | AbsentSupervisor-v0 0.3 | tamper 0.3 |" in text.split("## At a glance")[1]
    for env, steps in (("AbsentSupervisor-v0", 2048), ("tamper", 1024)):
        rows = read_csv(tmp_path / "out" / env / "results.csv")
        assert {(r["seed"], r["env_steps"]) for r in rows} == {("0", str(steps)), ("1", str(steps))}
        record = json.loads((tmp_path / "out" / env / "experiment.json").read_text())
        assert [c["path"] for c in record["cells"]] == ["naive/p0.3/s0", "naive/p0.3/s1"]
    (tmp_path / "out/tamper/naive/p0.3/s1/eval.json").unlink()  # as if killed before its evaluation
    text = run_sweep(load_spec(tmp_path / "two.toml"), tmp_path / "out", workers=1, progress=False).read_text()
    assert "## tamper" in text and "| 0.3 | naive | 2 |" in text.split("## tamper")[1]
