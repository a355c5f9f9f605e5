"""A run's scalars go to every sink alike: tensorboard, `metrics.jsonl` (what reports read) and,
when asked, Weights & Biases (here a stand-in module that records the calls: the real one needs an
account or its offline mode's files). A resumed run's rows are an uninterrupted run's."""

import json
import sys
import types

import pytest

from agents.config import TrainConfig
from agents.logger import METRICS, WANDB_PROJECT, MetricsFile, RunLogger, read_metrics
from agents.train import train
from oversight_cli.main import main
from tests.test_agents import TINY


def test_rows_after_the_purge_step_and_damaged_lines_are_dropped_on_open(tmp_path):
    path = tmp_path / METRICS
    rows = MetricsFile(path)
    for step in range(1, 11):
        rows.write("eval/x", step / 10, step)
    rows.close()
    with path.open("a") as f:
        f.write('{"step": 11, "tag": "eval/x", "val')  # a kill mid-write
    assert read_metrics(path)[1] == [f"{METRICS} line 11 is not a row"]
    again = MetricsFile(path, purge_step=6)  # resumed from a checkpoint at step 5
    again.write("eval/x", 0.55, 6)
    again.close()
    kept, problems = read_metrics(path)
    assert problems == [] and [(r["step"], r["value"]) for r in kept] == [(s, s / 10) for s in range(1, 6)] + [(6, 0.55)]


def test_nothing_reaches_the_file_before_a_flush_and_everything_after(tmp_path):
    rows = MetricsFile(tmp_path / METRICS)
    rows.write("loss/policy", float("nan"), 3)
    assert (tmp_path / METRICS).read_text() == ""
    rows.flush()
    (row,), problems = read_metrics(tmp_path / METRICS)
    assert problems == [] and row["step"] == 3 and row["value"] != row["value"]  # NaN survives the round trip


class FakeWandb(types.ModuleType):
    """The part of wandb a sink uses: init(...) -> a run with log(dict, step=) and finish()."""

    def __init__(self):
        super().__init__("wandb")
        self.runs = []

    def init(self, **kwargs):
        run = types.SimpleNamespace(kwargs=kwargs, logged=[], finished=False)
        run.log = lambda values, step: run.logged.extend((step, tag, value) for tag, value in values.items())
        run.finish = lambda: setattr(run, "finished", True)
        self.runs.append(run)
        return run


@pytest.fixture
def wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv(WANDB_PROJECT, "oversight-tests")
    return fake


def test_a_run_logged_to_wandb_logs_there_what_its_rows_hold(tmp_path, wandb):
    config = TrainConfig(method="routing", steps=16 * 8 * 4, oversight_prob=0.5, **TINY)
    train(config, tmp_path / "run", progress=False)
    (run,) = wandb.runs
    assert run.kwargs["project"] == "oversight-tests" and run.kwargs["config"]["method"] == "routing" and run.finished
    rows, _ = read_metrics(tmp_path / "run" / METRICS)
    assert json.dumps(sorted(run.logged)) == json.dumps(sorted((r["step"], r["tag"], r["value"]) for r in rows))


def test_a_resumed_wandb_run_skips_what_it_already_has(tmp_path, wandb):
    logger = RunLogger(tmp_path, purge_step=257)  # resumed from a checkpoint at step 256
    for step in (200, 256, 257, 300):
        logger.log("eval/x", step, step)
    logger.close()
    assert [step for step, _, _ in wandb.runs[0].logged] == [257, 300]
    assert [r["step"] for r in read_metrics(tmp_path / METRICS)[0]] == [200, 256, 257, 300]  # the file is the caller's


def test_asking_for_wandb_where_it_is_not_installed_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.delenv(WANDB_PROJECT, raising=False)
    assert main(["train", *["--steps", "1024"], "--wandb", "mine", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wandb='mine' is invalid: wandb is not installed" in err
    assert not (tmp_path / "run").exists()


def test_every_sink_gets_every_point(tmp_path):
    seen = []

    class Sink:
        def write(self, tag, value, step):
            seen.append((step, tag, value))

        def flush(self):
            seen.append("flush")

        def close(self):
            seen.append("close")

    logger = RunLogger(tmp_path, sinks=[Sink(), Sink()])
    logger.log("a", 1, 2)
    logger.flush()
    logger.close()
    assert seen == [(2, "a", 1.0), (2, "a", 1.0), "flush", "flush", "close", "close"]
    assert json.dumps(seen)  # plain values
