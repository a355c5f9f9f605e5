"""`sweeps.json`: each piece of a sweep, saved as its cells finish, summed into the wall time a
report states."""

import json

import pytest

from analysis import machine
from analysis.sweep_log import SWEEP_LOG, SweepLog, read_sweep_log, sweep_log_text


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_piece_is_saved_at_its_start_and_as_each_cell_finishes(tmp_path):
    clock = Clock(1_800_000_000.0)  # 2027-01-15T08:00:00Z
    log = SweepLog(tmp_path, "local", 2, cells_to_train=3, clock=clock)
    (piece,) = read_sweep_log(tmp_path)
    assert piece["started"] == "2027-01-15T08:00:00Z" and piece["ended"] is None and piece["seconds"] == 0
    assert (piece["cells_to_train"], piece["workers"], piece["backend"]) == (3, 2, "local")
    assert {"cpu", "cpu_id", "caches", "cores", "cpu_flags", "torch", "numpy", "python", "code"} <= set(piece["machine"])
    clock.now += 60
    log.cell_done(failed=False)
    clock.now += 70
    log.cell_done(failed=True)
    (piece,) = read_sweep_log(tmp_path)  # what a kill here would leave
    assert (piece["seconds"], piece["cells_finished"], piece["cells_failed"], piece["ended"]) == (130, 1, 1, None)
    clock.now += 20
    log.close()
    (piece,) = read_sweep_log(tmp_path)
    assert piece["ended"] == "2027-01-15T08:02:30Z" and piece["seconds"] == 130


def test_a_second_piece_is_appended_and_the_report_sums_them(tmp_path):
    clock = Clock(1_800_000_000.0)
    first = SweepLog(tmp_path, "local", 2, cells_to_train=4, clock=clock)
    clock.now += 3600
    first.cell_done(failed=False)  # killed here: never closed
    clock.now += 600
    second = SweepLog(tmp_path, "local", 2, cells_to_train=3, clock=clock)
    clock.now += 1500
    for _ in range(3):
        second.cell_done(failed=False)
    second.close()
    pieces = read_sweep_log(tmp_path)
    assert [(p["seconds"], p["cells_finished"], p["ended"] is None) for p in pieces] == [(3600, 1, True), (1500, 3, False)]
    text = sweep_log_text(tmp_path)
    assert "1 h 25 min of wall time in 2 pieces" in text
    assert "- 2027-01-15T08:00:00Z: 1 h 0 min, 1 cells finished (stopped before the end)" in text
    assert "- 2027-01-15T09:10:00Z: 25 min, 3 cells finished\n" in text


def test_no_log_no_paragraph_and_a_damaged_log_is_a_one_line_error(tmp_path):
    assert sweep_log_text(tmp_path) == "" and read_sweep_log(tmp_path) == []
    (tmp_path / SWEEP_LOG).write_text(json.dumps([{"started": "x"}]))
    with pytest.raises(ValueError, match=r"sweeps\.json.*not a list of sweep pieces") as error:
        SweepLog(tmp_path, "local", 1, cells_to_train=1)
    assert "\n" not in str(error.value)


def test_machines_are_named_with_their_generation_and_a_hand_entered_piece_may_lack_fields(tmp_path):
    machine_a = {"cpu": "AMD EPYC", "cpu_id": "family 25 model 17 stepping 1", "cores": 2, "torch": "2.13.0+cpu"}
    pieces = [{"started": "2027-01-15T08:00:00Z", "seconds": 600, "cells_finished": 2, "ended": "x", "machine": machine_a},
              {"started": "2027-01-16T08:00:00Z", "seconds": 1200, "cells_finished": 3, "ended": "x",
               "machine": {"cpu": "AMD EPYC"}, "note": "entered by hand"}]
    (tmp_path / SWEEP_LOG).write_text(json.dumps(pieces))
    text = sweep_log_text(tmp_path)
    assert "30 min of wall time in 2 pieces" in text
    assert "on AMD EPYC; AMD EPYC, family 25 model 17 stepping 1 (2 cores; torch 2.13.0+cpu):" in text


def test_the_cpu_is_named_by_the_first_processor_in_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                       "model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu avx2 avx512f avx512_bf16 sse\n\n"
                       "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Other\nflags\t\t: amx_tile\n")
    monkeypatch.setattr(machine, "CPUINFO", cpuinfo)
    assert machine.cpu_model() == "AMD EPYC"
    assert machine.cpu_identity() == "family 25 model 17 stepping 1"
    assert machine.cpu_flags() == ["avx2", "avx512f", "avx512_bf16"]


def test_a_sweep_killed_before_any_cell_finished_records_its_time(tmp_path, monkeypatch):
    clock = Clock(1_800_000_000.0)
    log = SweepLog(tmp_path, "local", 2, cells_to_train=1, clock=clock)
    clock.now += 45
    log.tick()  # what the sweep does while its cells train
    (piece,) = read_sweep_log(tmp_path)  # a kill here leaves this
    assert (piece["seconds"], piece["cells_finished"], piece["ended"]) == (45, 0, None)


def test_the_local_backend_ticks_while_its_cells_train(monkeypatch):
    import time

    from oversight_cli import sweep

    monkeypatch.setattr(sweep, "HEARTBEAT_SECONDS", 0.05)
    ticks, done = [], []
    sweep._run_local([(time.sleep, (1.5,), ["cell"])], lambda cell, error: done.append((cell, error)), workers=1,
                     address=None, tick=lambda: ticks.append(1))
    assert done == [("cell", None)] and len(ticks) >= 5
