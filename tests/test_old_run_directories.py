"""Run directories written before the generic vocabulary (until 2026-12-07 outputs said diamond and
ghost where they now say intended and proxy) are read, reported, evaluated and resumed like new ones.

Each test writes a run with today's code, rewrites it into the old names exactly as the old code
wrote them (keys of eval.json, its evaluated variant, metrics tags, checkpoint parameter names and
expert names, the twin's saved facts), and checks that every reader gives what it gives for the
run as written today.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from agents.config import TrainConfig
from agents.legacy_names import modern_keys, modern_name
from agents.logger import METRICS, read_metrics
from agents.networks import ActorCritic
from agents.policies import load_policy
from agents.run_dir import read_evaluation
from agents.train import train
from analysis.report import write_report
from analysis.tidy import TIDY
from tests.test_agents import TINY, dies_in_the_fourth_update

_NEW = re.compile(r"(?<![A-Za-z])(intended|proxy)(?![A-Za-z])")


def old_name(name: str) -> str:
    return _NEW.sub(lambda m: {"intended": "diamond", "proxy": "ghost"}[m.group(1)], name)


def old_keys(value, named=()):
    if isinstance(value, dict):
        out = type(value)()
        for key, inner in value.items():
            out[old_name(key) if isinstance(key, str) else key] = (
                old_name(inner) if key in named and isinstance(inner, str) else old_keys(inner, named))
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(old_keys(inner, named) for inner in value)
    return value


def write_as_before(run: Path, old: Path) -> None:
    """`run` copied to `old` in the names the code wrote before the generic vocabulary."""
    shutil.copytree(run, old)
    if (old / "eval.json").exists():
        report = json.loads((old / "eval.json").read_text())
        (old / "eval.json").write_text(json.dumps(old_keys(report, named=("evaluated_variant",))))
    rows = [json.loads(line) for line in (old / METRICS).read_text().splitlines()]
    (old / METRICS).write_text("".join(json.dumps({**row, "tag": old_name(row["tag"])}) + "\n" for row in rows))
    for name in ("checkpoint.pt", "best.pt"):
        if (old / name).exists():
            state = old_keys(torch.load(old / name, weights_only=False))
            state["network_config"]["experts"] = tuple(old_name(e) for e in state["network_config"]["experts"])
            torch.save(state, old / name)


def test_old_names_become_todays_and_environment_ids_stay():
    assert modern_name("p_ghost_when_unobserved") == "p_proxy_when_unobserved"
    assert modern_name("eval/p_diamond_when_ghost_nearer") == "eval/p_intended_when_proxy_nearer"
    assert modern_name("actor.experts.diamond.1.0.weight") == "actor.experts.intended.1.0.weight"
    assert modern_name("without_ghost") == "without_proxy"
    for kept in ("OversightGrid/DiamondGhost-5x5-v0", "diamonds", "ghostly", "p_timeout"):
        assert modern_name(kept) == kept
    config = {"env_id": "mylab:diamond-v0", "method": "routing"}  # a value, not a name of ours
    assert modern_keys({"config": config, "ghost_overseen": 1})["config"] == config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A routing cell laid out as a sweep's (`<method>/p<oversight>/s<seed>`), today's and the old way."""
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(method="routing", steps=16 * 8 * 3, oversight_prob=0.5, **TINY)
    train(config, root / "new" / "routing" / "p0.5" / "s0", progress=False)
    (root / "old" / "routing" / "p0.5").mkdir(parents=True)
    write_as_before(root / "new" / "routing" / "p0.5" / "s0", root / "old" / "routing" / "p0.5" / "s0")
    return root / "new", root / "old"


def test_an_old_evaluation_metrics_file_and_policy_read_as_todays(finished_run):
    new, old = (d / "routing" / "p0.5" / "s0" for d in finished_run)
    assert "without_ghost" in json.loads((old / "eval.json").read_text())["variants"]  # it really is old
    assert read_evaluation(old) == read_evaluation(new)
    assert read_evaluation(old)["evaluated_variant"] == "without_proxy"
    assert read_metrics(old / METRICS) == read_metrics(new / METRICS)
    (net_old, _), (net_new, _) = load_policy(old), load_policy(new)
    assert net_old.config["experts"] == net_new.config["experts"] == ("intended", "proxy")
    obs = torch.rand(5, *net_new.config["obs_shape"])
    assert torch.equal(net_old(obs).logits, net_new(obs).logits)


def test_an_old_experiment_reports_like_todays(finished_run):
    new, old = finished_run
    write_report(new)
    write_report(old)
    assert (old / TIDY).read_text() == (new / TIDY).read_text()
    for table in ("results.csv", "summary.csv"):
        if (new / table).exists():
            assert (old / table).read_text() == (new / table).read_text(), table


def test_an_old_tracked_table_reports_like_todays(finished_run, tmp_path):
    new, _ = finished_run
    write_report(new)
    lines = (new / TIDY).read_text().splitlines(keepends=True)
    (tmp_path / TIDY).write_text(lines[0] + "".join(old_name(line) for line in lines[1:]))
    assert "p_ghost_when_unobserved" in (tmp_path / TIDY).read_text()
    write_report(tmp_path)  # the cells are gone: the report is rebuilt from the table
    for table in ("results.csv", "summary.csv", "learning_curves.csv", "diagnostics.csv"):
        assert (tmp_path / table).read_text() == (new / table).read_text(), table


def test_an_old_killed_run_resumes_to_todays_result(tmp_path, monkeypatch):
    config = TrainConfig(method="routing_gate_replay", steps=16 * 8 * 6, oversight_prob=0.5, **TINY)
    uninterrupted = train(config, tmp_path / "a", progress=False)
    calls = dies_in_the_fourth_update(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False)
    write_as_before(tmp_path / "b", tmp_path / "old")
    assert any("ghost" in key for key in torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=False)["model"])
    calls["n"] = -100
    resumed = train(config, tmp_path / "old", progress=False)
    assert json.dumps(resumed["variants"]) == json.dumps(uninterrupted["variants"])


def test_old_parameter_names_load_into_todays_network_and_sb3_policy():
    old = ActorCritic((4, 5, 5), experts=("diamond", "ghost"))  # as the old code built it
    assert sorted(old.actor.experts) == ["diamond", "ghost"]
    today = ActorCritic.from_config(old.config)
    today.load_state_dict(old.state_dict())
    obs = torch.rand(3, 4, 5, 5)
    assert torch.equal(today(obs).logits, old(obs).logits)
    from gymnasium import spaces

    from agents.sb3 import RoutedActorCriticPolicy
    policy = RoutedActorCriticPolicy(spaces.Box(0, 1, (4, 5, 5)), spaces.Discrete(4), lambda _: 1e-3,
                                     experts=("diamond", "ghost"))  # an SB3 zip saved its policy kwargs
    policy.net.load_state_dict(old.state_dict())
    assert policy.net.config["experts"] == ("intended", "proxy")
