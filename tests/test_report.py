"""Reports say what they pool: they refuse cells of different settings and duplicate cells, and
list the cells that are missing, unreadable or have incomplete learning curves."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.config import TrainConfig
from agents.train import train
from analysis.ladder import write_ladder
from agents.logger import METRICS
from agents.episodes import EPISODE
from analysis.loading import CURVES, diagnostic_values
from analysis import metrics as registry
from analysis.metrics import Metric, at, register_metric
from analysis.render import record, replay
from analysis.report import write_report
from analysis.tidy import TIDY
from analysis.tables import overview_table
from oversight_cli.spec import load_spec
from oversight_cli.sweep import experiment_record

SPEC = """
name = "pooled"
[env]
id = "OversightGrid/DiamondGhost-5x5-v0"
[train]
methods = ["naive"]
oversight = [0.2]
seeds = [0, 1, 2, 3]
steps = 1024
"""


@pytest.fixture(scope="module")
def trained_cell(tmp_path_factory):
    """One cell trained on a tiny budget, with two training-time evaluations in its events."""
    torch.set_num_threads(1)
    config = TrainConfig(method="naive", oversight_prob=0.2, seed=0, steps=1024, num_envs=32, rollout_steps=16,
                         eval_every_steps=512, eval_episodes=32, final_eval_episodes=64, checkpoint_every_steps=512)
    cell = tmp_path_factory.mktemp("trained") / "cell"
    train(config, cell, progress=False)
    return cell


def add_cell(trained: Path, run_dir: Path, path: str, **config) -> Path:
    """A copy of the trained cell at `run_dir/path`, its recorded config changed by `config`."""
    cell = run_dir / path
    shutil.copytree(trained, cell)
    report = json.loads((cell / "eval.json").read_text())
    report["config"].update(config)
    (cell / "eval.json").write_text(json.dumps(report))
    return cell


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_cells_of_two_seeds_are_pooled(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path, "naive/p0.2/s1", seed=1)
    text = write_report(tmp_path).read_text()
    assert "| 0.2 | naive | 2 |" in text and "Missing cells" not in text and "Incomplete learning curves" not in text
    assert "![naive](episode_naive.png)" in text and (tmp_path / "episode_naive.png").stat().st_size > 0
    assert {r["seed"] for r in read_csv(tmp_path / "results.csv")} == {"0", "1"}


def test_the_comparison_takes_any_method_of_the_experiment_as_its_reference(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path, "filtering/p0.2/s0", method="filtering")
    text = write_report(tmp_path, reference="filtering").read_text()
    assert "## filtering against each other method" in text
    assert [(r["reference"], r["method"]) for r in read_csv(tmp_path / "comparison.csv")] == [("filtering", "naive")]
    with pytest.raises(ValueError, match=r"^reference='oracle' is invalid: expected a method of the experiment: one of "
                                         r"\['filtering', 'naive'\]$"):
        write_report(tmp_path, reference="oracle")


@pytest.mark.parametrize("setting,value", [
    ("steps", 2048),
    ("env_id", "OversightGrid/DiamondGhost-7x7-v0"),
    ("env_kwargs", {"max_steps": 16}),
    ("learning_rate", 5e-5),
])
def test_cells_that_differ_in_another_setting_are_refused(trained_cell, tmp_path, setting, value):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path, "naive/p0.2/s1", seed=1, **{setting: value})
    with pytest.raises(ValueError) as error:
        write_report(tmp_path)
    message = str(error.value)
    assert "\n" not in message and f"differ in {setting}" in message and "naive/p0.2/s0" in message, message
    assert "naive/p0.2/s1" in message and repr(value) in message, message
    assert not (tmp_path / "report.md").exists()


def test_two_cells_of_the_same_method_oversight_and_seed_are_refused(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path, "old/naive/p0.2/s0")
    with pytest.raises(ValueError) as error:
        write_report(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "naive/p0.2/s0 and old/naive/p0.2/s0" in message and "seed 0" in message, message


POOLABLE_ERROR = (r"^run_dir='exp' is invalid: its cells differ in (?P<setting>\w+) \((?P<first>\S+): (?P<expected>.+), "
                  r"(?P<second>\S+): (?P<value>.+)\); a report pools cells that differ only in method, oversight, seed: "
                  r"report each setting's cells from a directory of their own$")


@pytest.mark.parametrize("lacking,value", [("bootstrap", True), ("bootstrap", False), ("gamma", 0.97),
                                           ("env_kwargs", {"max_steps": 16})])
def test_a_setting_one_cell_lacks_and_another_has_is_refused_in_every_order(lacking, value):
    """Whichever cell comes first (the one lacking the setting or one having it), the report refuses
    them with the same one-line error naming the setting, both cells and both values."""
    import itertools
    import re

    from analysis.loading import check_poolable

    base = TrainConfig(method="naive", oversight_prob=0.2).to_json()
    assert lacking in base
    having = {f"naive/p0.2/s{seed}": {"config": {**base, "seed": seed, lacking: value}} for seed in (1, 2)}
    lacks = {"naive/p0.2/s0": {"config": {k: v for k, v in base.items() if k != lacking} | {"seed": 0}}}
    cells = {**having, **lacks}
    for order in itertools.permutations(cells):
        with pytest.raises(ValueError) as error:
            check_poolable("exp", {cell: cells[cell] for cell in order})
        message = str(error.value)
        match = re.match(POOLABLE_ERROR, message)
        assert match and "\n" not in message, message
        assert match["setting"] == lacking, message
        named = {match["first"]: match["expected"], match["second"]: match["value"]}
        assert "naive/p0.2/s0" in named and named["naive/p0.2/s0"] == "'(unset)'", message
        (other,) = set(named) - {"naive/p0.2/s0"}
        assert other in having and named[other] == repr(value), message
    # Cells that all lack it, or all have it, pool in any order.
    for same in ({**having}, {cell: {"config": {k: v for k, v in c["config"].items() if k != lacking}}
                              for cell, c in having.items()}):
        for order in itertools.permutations(same):
            check_poolable("exp", {cell: same[cell] for cell in order})


def test_missing_part_way_and_unreadable_cells_are_listed(trained_cell, tmp_path, capsys):
    (tmp_path / "spec.toml").write_text(SPEC)
    (tmp_path / "experiment.json").write_text(json.dumps(experiment_record(load_spec(tmp_path / "spec.toml"))))
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    part_way = add_cell(trained_cell, tmp_path, "naive/p0.2/s1", seed=1)
    (part_way / "eval.json").unlink()  # config.json and checkpoint.pt stay: killed before its evaluation
    add_cell(trained_cell, tmp_path, "naive/p0.2/s3", seed=3)
    (tmp_path / "naive/p0.2/s3/eval.json").write_text('{"config": ')  # a damaged file
    text = write_report(tmp_path).read_text()
    section = text[text.index("## Missing cells"):]
    assert "1 finished cells (3 missing: see below)" in text
    assert "naive/p0.2/s1 (method naive, oversight 0.2, seed 1): part-way (it has a checkpoint" in section
    assert "naive/p0.2/s2 (method naive, oversight 0.2, seed 2): not started" in section
    assert f"naive/p0.2/s3 (method naive, oversight 0.2, seed 3): file='{tmp_path / 'naive/p0.2/s3/eval.json'}'" in section
    assert "not valid JSON" in section
    stderr = capsys.readouterr().err
    assert [line.split(" (")[0] for line in stderr.splitlines()] == [
        f"report: missing cell naive/p0.2/s{seed}" for seed in (1, 2, 3)]
    assert {r["seed"] for r in read_csv(tmp_path / "results.csv")} == {"0"}


def test_an_unreadable_evaluation_outside_the_expected_cells_is_listed_too(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path, "extra/s9", seed=9)
    (tmp_path / "extra/s9/eval.json").write_text("[]")  # valid JSON, but not a final evaluation
    text = write_report(tmp_path).read_text()
    assert f"- extra/s9: file='{tmp_path / 'extra/s9/eval.json'}' is invalid: not a final evaluation" in text


def curve_points(run_dir: Path, seed: str) -> int:
    return sum(r["seed"] == seed for r in read_csv(run_dir / "learning_curves.csv"))


@pytest.mark.parametrize("damage", ["cut-mid-line", "garbled-line"])
def test_damaged_rows_are_listed_as_an_incomplete_learning_curve(trained_cell, tmp_path, capsys, damage):
    add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    cell = add_cell(trained_cell, tmp_path, "naive/p0.2/s1", seed=1)
    lines = (cell / METRICS).read_text().splitlines(keepends=True)
    evaluation = next(i for i, line in enumerate(lines) if '"eval/discounted_return_per_step"' in line)
    if damage == "cut-mid-line":  # a run killed while writing: everything after is lost
        (cell / METRICS).write_text("".join(lines[:evaluation]) + lines[evaluation][:20])
    else:
        lines[evaluation] = lines[evaluation].replace('"value"', '"valu')
        (cell / METRICS).write_text("".join(lines))
    text = write_report(tmp_path).read_text()
    assert curve_points(tmp_path, "1") < curve_points(tmp_path, "0")
    section = text[text.index("## Incomplete learning curves"):]
    assert f"- naive/p0.2/s1: {METRICS} line {evaluation + 1} is not a row" in section
    assert "naive/p0.2/s0" not in section
    assert "report: incomplete learning curve naive/p0.2/s1: metrics.jsonl line" in capsys.readouterr().err


def test_a_cell_without_rows_is_listed(trained_cell, tmp_path):
    cell = add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    (cell / METRICS).unlink()
    assert f"- naive/p0.2/s0: no {METRICS}" in write_report(tmp_path).read_text()


def test_reports_read_rows_never_event_files(trained_cell, tmp_path, monkeypatch):
    """The curves and diagnostics come from `metrics.jsonl`; with the events gone and tensorboard's
    reader broken, the report is the same."""
    from tensorboard.backend.event_processing import event_accumulator

    cell = add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    with (cell / METRICS).open("a") as rows:  # a routed run's diagnostics, beside the evaluations
        for step, gate in [(100, 0.2), (960, 0.6), (1000, 0.8)]:
            rows.write(json.dumps({"step": step, "tag": "gate/unlabelled", "value": gate}) + "\n")
        rows.write(json.dumps({"step": 1000, "tag": "eval/expert_kl", "value": 0.3}) + "\n")
        rows.write(json.dumps({"step": 1000, "tag": "reward_model/heldout_accuracy", "value": 0.9}) + "\n")
    write_report(tmp_path)
    curves, diagnostics = read_csv(tmp_path / "learning_curves.csv"), read_csv(tmp_path / "diagnostics.csv")
    assert len(curves) == 4 and {r["metric"]: float(r["value"]) for r in diagnostics} == pytest.approx(
        {"gate_on_unlabelled": 0.7, "expert_kl": 0.3, "model_heldout_accuracy": 0.9})
    shutil.rmtree(cell / "tb")
    monkeypatch.setattr(event_accumulator, "EventAccumulator", None)  # any use fails
    text = write_report(tmp_path).read_text()
    assert read_csv(tmp_path / "learning_curves.csv") == curves and read_csv(tmp_path / "diagnostics.csv") == diagnostics
    assert "Incomplete learning curves" not in text


def test_cells_tracked_before_rows_existed_report_from_their_curves_json(trained_cell, tmp_path):
    """`runs/zoo` tracks `curves.json` (curves and diagnostics) in place of rows and events."""
    cell = add_cell(trained_cell, tmp_path, "naive/p0.2/s0")
    write_report(tmp_path)
    curves = read_csv(tmp_path / "learning_curves.csv")
    points = {"return_per_step": [[int(r["env_steps"]), float(r["value"])] for r in curves if r["metric"] == "return_per_step"],
              "p_proxy_when_unobserved": [[int(r["env_steps"]), float(r["value"])] for r in curves
                                          if r["metric"] == "p_proxy_when_unobserved"]}
    (cell / CURVES).write_text(json.dumps({"curves": points, "diagnostics": {"expert_kl": 0.25}}))
    (cell / METRICS).unlink()
    shutil.rmtree(cell / "tb")
    text = write_report(tmp_path).read_text()
    assert "Incomplete learning curves" not in text
    assert sorted(map(str, read_csv(tmp_path / "learning_curves.csv"))) == sorted(map(str, curves))
    assert [r["metric"] for r in read_csv(tmp_path / "diagnostics.csv")] == ["expert_kl"]
    (cell / CURVES).write_text("{")
    assert f"- naive/p0.2/s0: {CURVES} is damaged" in write_report(tmp_path).read_text()


def test_filmstrips_replay_the_episode_recorded_at_evaluation_without_the_policy(trained_cell, tmp_path, capsys):
    """A copy of the results without checkpoints still draws each method's episode (nothing loads a
    policy); a cell that recorded none (trained before episodes were recorded) gets none, said so."""
    for seed in (0, 1):
        cell = add_cell(trained_cell, tmp_path, f"naive/p0.2/s{seed}", seed=seed)
        for name in {p.name for p in cell.iterdir()} - {"eval.json", "config.json", METRICS, EPISODE}:
            shutil.rmtree(cell / name) if (cell / name).is_dir() else (cell / name).unlink()
    text = write_report(tmp_path).read_text()
    assert "![naive](episode_naive.png)" in text and (tmp_path / "episode_naive.png").exists()
    assert "Incomplete learning curves" not in text and len(read_csv(tmp_path / "learning_curves.csv")) == 8
    for seed in (0, 1):
        (tmp_path / f"naive/p0.2/s{seed}" / EPISODE).unlink()
    (tmp_path / "episode_naive.png").unlink()
    text = write_report(tmp_path).read_text()
    assert "episode_naive.png" not in text and not (tmp_path / "episode_naive.png").exists()
    assert "report: no filmstrip of naive: none of its cells recorded an episode" in capsys.readouterr().err


def test_a_recorded_episode_replays_to_what_the_policy_plays(trained_cell):
    """The recorded actions, replayed from the recorded seed, give the frames the trained policy
    gives when it plays from that seed itself (`oversight render`)."""
    episode = json.loads((trained_cell / EPISODE).read_text())
    config = json.loads((trained_cell / "eval.json").read_text())["config"]
    replayed = replay(config, episode)
    (played,), _ = record(trained_cell, episodes=1, seed=episode["seed"])
    assert len(replayed) == len(played) == len(episode["actions"]) + 1
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(replayed, played))
    assert [caption for _, caption in replayed[1:]] == [caption for _, caption in played[1:]]
    with pytest.raises(ValueError, match="does not replay"):
        replay(config, {**episode, "actions": episode["actions"] + [0]})


def test_the_overview_puts_every_environment_and_level_side_by_side_and_marks_the_best_non_oracle():
    def summary(method, level, ret, proxy, test=False):
        prefix = "test_" if test else ""
        return [{"method": method, "oversight": level, "metric": f"{prefix}return_per_step", "mean": ret},
                {"method": method, "oversight": level, "metric": f"{prefix}p_proxy_when_unobserved", "mean": proxy}]

    summaries = {
        "Maze": summary("naive", 0.01, 0.2, 0.5) + summary("routing", 0.01, 0.4, 0.1) + summary("oracle", 0.01, 0.9, 0.0)
                + summary("naive", 0.1, 0.6, 0.3) + summary("oracle", 0.1, 0.6, 0.0),  # a tie: still not bold
        "Cheese": summary("naive", 0.1, 0.8, 0.1) + summary("naive", 0.1, 0.1, 0.7, test=True)
                  + summary("routing", 0.1, 0.7, 0.2) + summary("routing", 0.1, 0.3, 0.4, test=True),
    }
    lines = overview_table(summaries).splitlines()
    assert lines[0] == "| method | Maze 0.01 | Maze 0.1 | Cheese 0.1 *test* |"
    assert lines[2:] == ["| naive | 0.200 / 0.50 | **0.600** / 0.30 | 0.100 / 0.70 |",
                         "| routing | **0.400** / 0.10 |  | **0.300** / 0.40 |",
                         "| oracle | 0.900 / 0.00 | 0.600 / 0.00 |  |"]


def _evaluation(method, seed, variants, evaluated, env_steps=9_000, steps=3_000_000):
    stats = {"episodes": 10, "discounted_return_per_step": {"mean": 0.0, "ci95": [0.0, 0.0]},
             "paper_window_return_per_step": 0.0, "true_return": {"mean": 0.0}, "p_intended": 0.5, "p_proxy": 0.5,
             "p_timeout": 0.0, "p_proxy_when_unobserved": 0.5, "by_nearer_terminal": {"proxy": {"p_intended": 0.5}}}
    return {"config": {"method": method, "oversight_prob": 0.003, "seed": seed, "steps": steps},
            "evaluated_variant": evaluated, "env_steps": env_steps,
            "variants": {name: {**stats, "discounted_return_per_step": {"mean": value, "ci95": [value, value]}}
                         for name, value in variants.items()}}


def test_the_recorded_episode_is_the_evaluated_policys_the_one_without_the_ablated_expert():
    """A routed network whose proxy expert always goes up and whose intended expert always goes
    right, its gate on the proxy expert: the whole policy goes up, the evaluated one (without the
    proxy expert) right, and the recording is the evaluated one's."""
    from agents.episodes import record_episode
    from agents.networks import ActorCritic

    config = TrainConfig(method="routing", oversight_prob=0.0, env_kwargs={"max_steps": 6})
    net = ActorCritic((4, 5, 5))
    with torch.no_grad():
        for parameter in net.actor.parameters():
            parameter.zero_()
        last = {name: [m for m in expert.modules() if isinstance(m, torch.nn.Linear)][-1]
                for name, expert in net.actor.experts.items()}
        last["intended"].bias[0], last["proxy"].bias[1] = 1.0, 1.0  # one hidden unit each
        net.actor.head.weight[1, 0], net.actor.head.weight[0, 1] = 50.0, 50.0  # unit 0: right; unit 1: up
        [m for m in net.actor.gate.modules() if isinstance(m, torch.nn.Linear)][-1].bias.fill_(-50.0)  # all proxy
    episode = record_episode(net, config, "proxy")
    assert episode["ablate"] == "proxy" and episode["actions"] == [1] * 6
    assert record_episode(net, config, None)["actions"] == [0] * 6


def test_each_metric_is_read_from_its_own_place_in_the_evaluation():
    """Every column of results.csv, from a variant whose every number is distinct (the distractors
    are where a misread metric would look: other groups of episodes, the other interval bound)."""
    from analysis.loading import result_rows

    variant = {
        "episodes": 100, "discounted_return_per_step": {"mean": 0.11, "ci95": [0.01, 0.21]},
        "paper_window_return_per_step": 0.12, "true_return": {"mean": 0.13, "ci95": [0.03, 0.23]},
        "p_intended": 0.14, "p_proxy": 0.15, "p_timeout": 0.16, "p_proxy_when_unobserved": 0.17,
        "by_nearer_terminal": {"proxy": {"p_intended": 0.18, "p_proxy": 0.81}, "intended": {"p_intended": 0.91},
                               "tie": {"p_intended": 0.71}},
        "by_proxy_cell_at_reset": {"unobserved": {"p_proxy": 0.61}, "overseen": {"p_proxy": 0.51}},
        "test_placement": {"discounted_return_per_step": {"mean": 0.19}, "p_proxy_when_unobserved": 0.20},
    }
    report = {"config": {"method": "naive", "oversight_prob": 0.1, "seed": 0}, "evaluated_variant": "full",
              "env_steps": 5, "variants": {"full": variant}}
    (row,) = result_rows({"naive/p0.1/s0": report})
    assert row == {"method": "naive", "oversight": 0.1, "seed": 0, "variant": "full", "evaluated": True, "env_steps": 5,
                   "episodes": 100, "return_per_step": 0.11, "return_per_step_ci_low": 0.01, "return_per_step_ci_high": 0.21,
                   "paper_window_return_per_step": 0.12, "true_return": 0.13, "p_intended": 0.14, "p_proxy": 0.15,
                   "p_timeout": 0.16, "p_proxy_when_unobserved": 0.17, "p_intended_when_proxy_nearer": 0.18,
                   "test_return_per_step": 0.19, "test_p_proxy_when_unobserved": 0.20}
    del variant["test_placement"]  # an environment without a train/test shift
    (row,) = result_rows({"naive/p0.1/s0": report})
    assert math.isnan(row["test_return_per_step"]) and math.isnan(row["test_p_proxy_when_unobserved"])


def test_rows_record_the_steps_that_ran_and_the_summary_takes_the_evaluated_variant_only():
    from analysis.loading import result_rows
    from analysis.tables import summary_rows

    finished = {"routing/p0.003/s0": _evaluation("routing", 0, {"full": 0.9, "without_proxy": 0.5}, "without_proxy"),
                "routing/p0.003/s1": _evaluation("routing", 1, {"full": 0.7, "without_proxy": 0.3}, "without_proxy")}
    rows = result_rows(finished)
    assert {r["env_steps"] for r in rows} == {9_000}  # what trained, not the nominal 3M budget
    assert [(r["variant"], r["evaluated"]) for r in rows[:2]] == [("full", False), ("without_proxy", True)]
    (summary,) = [s for s in summary_rows(rows) if s["metric"] == "return_per_step"]
    assert (summary["seeds"], summary["mean"]) == (2, pytest.approx(0.4))


def test_diagnostics_average_per_update_gates_over_the_last_tenth_and_take_the_last_evaluation():
    series = {
        "gate/intended_labelled": [(step, step / 100) for step in range(10, 101, 10)],  # 0.1 .. 1.0
        "gate/unlabelled": [(100, 0.5)],
        "eval/expert_kl": [(50, 0.2), (100, 0.7)],
        "route/labelled_episodes_proxy": [(100, 12.0), (50, 5.0)],  # read in any order
        "eval/gate_proxy_unobserved": [(50, 0.5), (100, 0.2)],
    }
    assert diagnostic_values(series) == {
        "gate_on_intended_labelled": pytest.approx((0.9 + 1.0) / 2),  # steps >= 90 of 100
        "gate_on_unlabelled": 0.5, "expert_kl": 0.7, "labelled_episodes_proxy": 12.0,
        "gate_on_unobserved_proxy_episodes": 0.2}


def test_reward_model_diagnostics_take_the_last_evaluation_and_average_over_seeds():
    from analysis.tables import reward_model_table

    series = {"reward_model/heldout_accuracy": [(100, 0.9), (50, 0.6)], "reward_model/unobserved_accuracy": [(50, 0.7), (100, 0.5)]}
    assert diagnostic_values(series) == {"model_heldout_accuracy": 0.9, "model_unobserved_accuracy": 0.5}

    def rows(method, seed, values):
        return [{"method": method, "oversight": 0.1, "seed": seed, "metric": m, "value": v} for m, v in values.items()]

    diagnostics = [*rows("reward_model", 0, {"model_heldout_accuracy": 0.9, "model_unobserved_accuracy": 0.5}),
                   *rows("reward_model", 1, {"model_heldout_accuracy": 0.7, "model_unobserved_accuracy": 0.7}),
                   *rows("routing", 0, {"expert_kl": 0.3})]
    lines = reward_model_table(diagnostics).splitlines()
    assert lines[2:] == ["| 0.1 | reward_model | 2 | 0.8 | 0.6 |  |  |"]  # routing has no reward model: no row
    assert reward_model_table(rows("routing", 0, {"expert_kl": 0.3})) == ""


def test_comparison_has_the_probability_of_improvement_per_level_and_over_all_levels():
    from analysis.tables import ALL_LEVELS, comparison_rows

    def row(method, oversight, seed, score):
        return {"method": method, "oversight": oversight, "seed": seed, "evaluated": True, "return_per_step": score}

    rows = [row("routing", 0.01, 0, 0.1), row("routing", 0.01, 1, 0.3), row("naive", 0.01, 0, 0.2), row("naive", 0.01, 1, 0.2),
            row("routing", 0.1, 0, 0.5), row("naive", 0.1, 0, 0.5), row("naive", 0.1, 1, 0.4)]
    by_level = {r["oversight"]: r for r in comparison_rows(rows)}
    assert by_level[0.01]["p_improvement"] == pytest.approx(0.5)  # 0.3 beats both 0.2s, 0.1 neither
    assert by_level[0.1]["p_improvement"] == pytest.approx(0.75)  # a tie (half) and a win
    assert by_level[ALL_LEVELS]["p_improvement"] == pytest.approx((0.5 + 0.75) / 2)  # the levels' mean
    assert by_level[0.1]["difference"] == pytest.approx(0.05)
    # Two seeds a side: estimates, but no interval and no verdict read from two points.
    assert math.isnan(by_level[0.01]["p_improvement_ci_low"]) and by_level[0.01]["verdict"] == "too few seeds"
    assert math.isnan(by_level[0.1]["ci_low"]) and by_level[0.1]["verdict"] == "too few seeds"
    three = rows + [row("routing", 0.01, 2, 0.2), row("naive", 0.01, 2, 0.2)]
    with_three = {r["oversight"]: r for r in comparison_rows(three)}[0.01]
    assert with_three["p_improvement_ci_low"] <= with_three["p_improvement"] <= with_three["p_improvement_ci_high"]
    assert with_three["verdict"] == "no clear difference"


def set_return(cell: Path, value: float, p_proxy: float = 0.5) -> None:
    """Make the evaluated variant of `cell` score `value` (and take unobserved ghosts with `p_proxy`)."""
    report = json.loads((cell / "eval.json").read_text())
    variant = report["variants"][report["evaluated_variant"]]
    variant["discounted_return_per_step"]["mean"] = value
    variant["p_proxy_when_unobserved"] = p_proxy
    (cell / "eval.json").write_text(json.dumps(report))


def test_the_ladder_groups_cells_by_learning_rate_method_and_budget(trained_cell, tmp_path):
    for steps, values in ((1024, (0.1, 0.3)), (4096, (0.5, 0.7))):
        for seed, value in enumerate(values):
            set_return(add_cell(trained_cell, tmp_path / f"rung{steps}", f"naive/p0.2/s{seed}", seed=seed, steps=steps),
                       value, p_proxy=value / 2)
    set_return(add_cell(trained_cell, tmp_path / "slow", "naive/p0.2/s0", steps=1024, learning_rate=1e-4), 0.9)
    text = write_ladder([tmp_path / "rung1024", tmp_path / "rung4096", tmp_path / "slow"], tmp_path / "out").read_text()
    rows = {(r["learning_rate"], r["steps"], r["metric"]): r for r in read_csv(tmp_path / "out/ladder.csv")}
    fast = str(TrainConfig().learning_rate)
    returns = {k[:2]: (int(r["seeds"]), round(float(r["mean"]), 9)) for k, r in rows.items() if k[2] == "return_per_step"}
    assert returns == {(fast, "1024"): (2, 0.2), (fast, "4096"): (2, 0.6), ("0.0001", "1024"): (1, 0.9)}
    assert float(rows[(fast, "4096", "p_proxy_when_unobserved")]["mean"]) == pytest.approx(0.3)
    assert "5 finished cells" in text and "| 0.0001 | naive | 0.001024M | 1 | 0.900" in text
    assert (tmp_path / "out/ladder.png").stat().st_size > 0


def test_the_ladder_of_tracked_tables_is_the_ladder_of_the_cells(trained_cell, tmp_path):
    """Experiments whose cells are gone give the same ladder from their results_tidy.csv and the
    settings their experiment.json records (as `oversight sweep` writes it)."""
    rungs = []
    for steps, values in ((1024, (0.1, 0.3)), (4096, (0.5, 0.7))):
        rung = tmp_path / f"rung{steps}"
        for seed, value in enumerate(values):
            set_return(add_cell(trained_cell, rung, f"naive/p0.2/s{seed}", seed=seed, steps=steps), value, p_proxy=value / 2)
        config = json.loads((rung / "naive/p0.2/s0/eval.json").read_text())["config"]
        shared = {k: v for k, v in config.items() if k not in ("method", "oversight_prob", "seed")}
        (rung / "experiment.json").write_text(json.dumps({"name": rung.name, "description": "", "config": shared}))
        write_report(rung)
        tracked = tmp_path / "tracked" / rung.name
        tracked.mkdir(parents=True)
        for name in (TIDY, "experiment.json"):
            shutil.copy(rung / name, tracked / name)
        rungs.append((rung, tracked))
    write_ladder([cells for cells, _ in rungs], tmp_path / "from_cells")
    write_ladder([tracked for _, tracked in rungs], tmp_path / "from_tables")
    assert (tmp_path / "from_tables/ladder.csv").read_text() == (tmp_path / "from_cells/ladder.csv").read_text()
    (rungs[0][1] / "experiment.json").write_text(json.dumps({"name": "old", "description": ""}))  # before it recorded settings
    with pytest.raises(ValueError, match="experiment.json that records its settings"):
        write_ladder([tracked for _, tracked in rungs], tmp_path / "out")


def test_the_ladder_can_keep_only_the_seeds_every_rung_has(trained_cell, tmp_path):
    for seed, value in enumerate((0.1, 0.3, 0.8)):
        set_return(add_cell(trained_cell, tmp_path / "long", f"naive/p0.2/s{seed}", seed=seed, steps=4096), value)
    for seed, value in enumerate((0.2, 0.4)):
        set_return(add_cell(trained_cell, tmp_path / "short", f"naive/p0.2/s{seed}", seed=seed), value)
    dirs = [tmp_path / "long", tmp_path / "short"]
    text = write_ladder(dirs, tmp_path / "out", seeds=[0, 1]).read_text()
    returns = {r["steps"]: (int(r["seeds"]), round(float(r["mean"]), 9))
               for r in read_csv(tmp_path / "out/ladder.csv") if r["metric"] == "return_per_step"}
    assert returns == {"1024": (2, 0.3), "4096": (2, 0.2)}
    assert "4 finished cells (seeds 0, 1 only)" in text
    with pytest.raises(ValueError, match=r"^seeds=\[0, 5\] is invalid: no finished cell at this level has seed\(s\) \[5\]"):
        write_ladder(dirs, tmp_path / "out2", seeds=[0, 5])


def test_the_ladder_needs_one_oversight_level_and_comparable_cells(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path / "a", "naive/p0.2/s0")
    add_cell(trained_cell, tmp_path / "a", "naive/p0.5/s0", oversight_prob=0.5)
    with pytest.raises(ValueError, match=r"^oversight=None is invalid: the cells have several levels \[0\.2, 0\.5\]"):
        write_ladder([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(ValueError, match=r"^oversight=0\.3 is invalid: no finished cell has it"):
        write_ladder([tmp_path / "a"], tmp_path / "out", oversight=0.3)
    add_cell(trained_cell, tmp_path / "b", "naive/p0.2/s0")
    with pytest.raises(ValueError, match=r"cells .*/a/naive/p0\.2/s0 and .*/b/naive/p0\.2/s0 are both method naive, "
                                         r"oversight 0\.2, seed 0, learning rate 0\.001, steps 1024;"):
        write_ladder([tmp_path / "a", tmp_path / "b"], tmp_path / "out", oversight=0.2)
    add_cell(trained_cell, tmp_path / "c", "naive/p0.2/s0", steps=2048, gamma=0.9)
    with pytest.raises(ValueError, match=r"its cells differ in gamma .* differ only in method, oversight, seed, "
                                         r"learning rate, steps:"):
        write_ladder([tmp_path / "a", tmp_path / "c"], tmp_path / "out", oversight=0.2)
    assert not (tmp_path / "out").exists()


def test_the_ladder_command_writes_its_files_and_names_a_bad_directory(trained_cell, tmp_path, capsys):
    from oversight_cli.main import main

    add_cell(trained_cell, tmp_path / "rung", "naive/p0.2/s0")
    assert main(["ladder", str(tmp_path / "rung"), "--out", str(tmp_path / "out")]) == 0
    assert "ladder: " in capsys.readouterr().out and (tmp_path / "out/ladder.md").exists()
    assert main(["ladder", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["ladder", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "holds no finished cell" in capsys.readouterr().err


def test_reports_take_a_methods_role_from_the_method_not_its_name(monkeypatch):
    """A method of one's own marked as an oracle is left out of "best", and one marked as the
    report's reference is what the others are compared with: reports write no method's name."""
    import dataclasses

    from agents.methods import METHODS
    from analysis.tables import comparison_rows

    monkeypatch.setitem(METHODS, "my_oracle", dataclasses.replace(METHODS["naive"], name="my_oracle", reads_true_rewards=True))
    monkeypatch.setitem(METHODS, "my_method", dataclasses.replace(METHODS["naive"], name="my_method", report_reference=True))
    monkeypatch.setitem(METHODS, "routing", dataclasses.replace(METHODS["routing"], report_reference=False))

    def summary(method, ret):
        return [{"method": method, "oversight": 0.1, "metric": "return_per_step", "mean": ret},
                {"method": method, "oversight": 0.1, "metric": "p_proxy_when_unobserved", "mean": 0.1}]

    lines = overview_table({"Maze": summary("my_oracle", 0.9) + summary("naive", 0.5)}).splitlines()
    assert "| naive | **0.500** / 0.10 |" in lines and "| my_oracle | 0.900 / 0.10 |" in lines

    def row(method, seed, score):
        return {"method": method, "oversight": 0.1, "seed": seed, "evaluated": True, "return_per_step": score}

    rows = [row(m, s, v) for m, v in (("my_method", 0.5), ("routing", 0.2), ("naive", 0.1)) for s in range(3)]
    assert {(r["reference"], r["method"]) for r in comparison_rows(rows)} == {("my_method", "routing"), ("my_method", "naive")}


def test_the_tracked_tidy_table_rebuilds_every_table_without_the_cells(trained_cell, tmp_path):
    """`results_tidy.csv` is what an experiment tracks: with every cell gone, the report's tables are
    the same as from the cells (the filmstrips, which play a policy, are not)."""
    from analysis.tidy import TIDY, TIDY_COLUMNS

    for method, shift in (("naive", 0.0), ("routing", 0.1)):
        for seed in range(3):
            cell = add_cell(trained_cell, tmp_path, f"{method}/p0.2/s{seed}", method=method, seed=seed)
            if method == "routing":  # a routed cell: the whole policy and the evaluated one, without the proxy expert
                report = json.loads((cell / "eval.json").read_text())
                report["variants"]["without_proxy"] = json.loads(json.dumps(report["variants"]["full"]))
                report["variants"]["full"]["discounted_return_per_step"]["mean"] = -0.5
                report["evaluated_variant"] = "without_proxy"
                (cell / "eval.json").write_text(json.dumps(report))
            set_return(cell, 0.3 + shift + seed / 100)
            with (cell / METRICS).open("a") as rows:
                rows.write(json.dumps({"step": 1000, "tag": "eval/expert_kl", "value": seed / 10}) + "\n")
    write_report(tmp_path)
    tables = ("results.csv", "summary.csv", "comparison.csv", "learning_curves.csv", "diagnostics.csv")
    from_cells = {name: (tmp_path / name).read_text() for name in tables}
    tidy = read_csv(tmp_path / TIDY)
    assert list(tidy[0]) == TIDY_COLUMNS and {r["kind"] for r in tidy} == {"final", "curve", "diagnostic"}
    assert all(len(r["config_hash"]) == 12 and r["commit"] for r in tidy)  # each row says where it came from
    for method in ("naive", "routing"):
        shutil.rmtree(tmp_path / method)
    text = write_report(tmp_path).read_text()
    assert {name: (tmp_path / name).read_text() for name in tables} == from_cells
    assert f"6 finished cells (read from {TIDY}: the cells are not here)" in text
    (tmp_path / TIDY).write_text("kind,method\nfinal,naive\n")
    with pytest.raises(ValueError, match=rf"^file='.*{TIDY}' is invalid: expected the columns"):
        write_report(tmp_path)


def test_a_registered_metric_is_reported_from_the_cells_and_from_the_tidy_table(trained_cell, tmp_path):
    add_cell(trained_cell, tmp_path / "cells", "naive/p0.2/s0")
    registered = list(registry.FINAL_METRICS)
    try:
        register_metric(Metric("mean_length", "mean episode length", at("mean_length"), higher_is_better=False))
        with pytest.raises(ValueError, match="mean_length"):
            register_metric(Metric("mean_length", "again", at("mean_length")))
        write_report(tmp_path / "cells")
        results = read_csv(tmp_path / "cells" / "results.csv")
        variants = json.loads((trained_cell / "eval.json").read_text())["variants"]
        assert {r["variant"]: float(r["mean_length"]) for r in results} == {v: s["mean_length"] for v, s in variants.items()}
        (tmp_path / "table").mkdir()
        shutil.copy(tmp_path / "cells" / TIDY, tmp_path / "table" / TIDY)
        write_report(tmp_path / "table")  # the cells are gone: the column comes back from the table
        assert (tmp_path / "table" / "results.csv").read_text() == (tmp_path / "cells" / "results.csv").read_text()
    finally:
        registry.FINAL_METRICS[:] = registered
        registry.METRICS.clear()
        registry.METRICS.update({m.name: m for m in registered})
