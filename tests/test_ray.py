"""The Ray backend against a real Ray cluster: a local head on 127.0.0.1, a sweep sent to it with
`--address`, killed part-way (SIGKILL of the driver), then run again: the same results.csv and
learning curves as an uninterrupted sweep. Ray is an optional extra (`pip install -e ".[ray]"`):
without it this test is skipped."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")

from oversight_cli.spec import load_spec  # noqa: E402
from oversight_cli.sweep import run_sweep  # noqa: E402
from tests.test_sweep import TINY, read_csv  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path_factory):
    """A Ray head on loopback with two CPUs, stopped after the test."""
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    port, temp = free_port(), tmp_path_factory.mktemp("ray")
    started = subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                              "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                             capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail(f"ray start failed: {started.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120)


def test_a_sweep_on_a_real_ray_cluster_killed_and_resumed_gives_the_uninterrupted_results(tmp_path, ray_head):
    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(TINY.format(steps=8 * 1024))
    reference = run_sweep(load_spec(spec_file), tmp_path / "reference", workers=1, progress=False)

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "oversight_cli.main", "sweep", str(spec_file), "--out", str(out), "--backend", "ray",
               "--address", ray_head, "--quiet"]
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:  # kill the driver once one cell is finished and another is part-way
        while time.time() < deadline:
            finished = list(out.glob("**/eval.json"))
            partial = [c for c in out.glob("**/checkpoint.pt") if not (c.parent / "eval.json").exists()]
            if finished and partial:
                break
            if sweep.poll() is not None:
                pytest.fail("the sweep finished before it could be killed part-way")
            time.sleep(0.01)
        else:
            pytest.fail("the sweep never reached a state with one finished and one part-way cell")
    finally:
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    assert len(list(out.glob("**/eval.json"))) < 4

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_csv(out / "results.csv") == read_csv(reference.parent / "results.csv")
    assert read_csv(out / "learning_curves.csv") == read_csv(reference.parent / "learning_curves.csv")
