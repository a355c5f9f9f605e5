"""The `oversight` command: the demo prints episodes and writes PNGs; bad input gives one line."""

import dataclasses
import json
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

import matplotlib.image
import pytest
import torch

from agents.config import PRESETS, TrainConfig
from oversight_cli.main import (
    build_parser,
    default_run_dir,
    main,
    parse_integer,
    train_config,
    train_settings,
)


def test_demo_prints_episodes_and_writes_pngs(tmp_path, capsys):
    assert main(["demo", "--episodes", "3", "--oversight", "1.0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("episode ") >= 3 and "outcomes:" in out
    assert "[G]" in out and "[D]" in out  # with oversight 1 every terminal cell is bracketed
    grid = matplotlib.image.imread(tmp_path / "grid.png")
    assert grid.shape[0] == grid.shape[1] == 7 * 32  # 5x5 plus MiniGrid's outer wall, 32 px tiles
    assert matplotlib.image.imread(tmp_path / "episode_0.png").shape[1] > grid.shape[1]


def test_nearest_policy_reaches_ghosts_and_intended_policy_does_not(tmp_path):
    from oversight_cli.demo import run_demo

    nearest = run_demo(episodes=30, policy="nearest", out_dir=tmp_path)
    intended = run_demo(episodes=30, policy="intended", out_dir=tmp_path)
    assert nearest["proxy"] > 0 and nearest["intended"] > 0
    assert intended == {"intended": 30, "proxy": 0, "none": 0}


@pytest.mark.parametrize(
    "args,words",
    [
        (["--oversight", "1.5"], ["oversight_prob=1.5"]),
        (["--episodes", "0"], ["episodes=0"]),
        (["--env", "Nope-v0"], ["env_id='Nope-v0'"]),
        (["--out", "/proc/no/such/dir"], ["out_dir='/proc/no/such/dir'"]),
    ],
)
def test_bad_input_is_one_line(args, words, capsys):
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("oversight demo: error:")
    assert all(word in err for word in words)


def console_script() -> str | None:
    """The `oversight` script of the environment running the tests (its scripts folder, whether
    or not that folder is on PATH, as with a venv's python called without activating it), else
    the one on PATH."""
    here = Path(sysconfig.get_path("scripts")) / ("oversight.exe" if sys.platform == "win32" else "oversight")
    return str(here) if here.exists() else shutil.which("oversight")


def test_console_script_is_installed(tmp_path):
    exe = console_script()
    assert exe, "no `oversight` console script beside this Python or on PATH: is the project installed?"
    result = subprocess.run([exe, "demo", "--episodes", "1", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "routing", "--steps", "1024", "--num-envs", "16", "--eval-every", "512",
            "--eval-episodes", "32", "--final-eval-episodes", "64", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "evaluated policy: without_proxy" in printed and "without_proxy" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["num_envs"], config["eval_episodes"], config["final_eval_episodes"]) == (16, 32, 64)
    assert main(args) == 0  # finished: reported again, not retrained
    assert capsys.readouterr().out.startswith(f"already finished: {out} (delete {out / 'eval.json'}")
    assert main(["eval", str(out), "--episodes", "64", "--ablate", "proxy", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "without_proxy" in printed and "without_intended" not in printed.split("routing on")[-1]
    assert set(json.loads((tmp_path / "e.json").read_text())) == {"full", "without_proxy"}
    assert main(["eval", str(out), "--episodes", "64", "--ablate", "proxy", "--device", "cpu", "--json",
                 str(tmp_path / "cpu.json")]) == 0
    if not torch.cuda.is_available():  # auto is the CPU here (on CUDA the action draws come from another generator)
        assert (tmp_path / "cpu.json").read_text() == (tmp_path / "e.json").read_text()


@pytest.mark.parametrize(
    "args,words",
    [
        (["train", "--method", "magic"], ["method='magic'", "routing"]),
        (["train", "--oversight", "-1"], ["oversight_prob=-1.0"]),
        (["train", "--steps", "-5"], ["steps=-5"]),
        (["train", "--preset", "published"], ["preset='published'", "paper"]),
        (["train", "--env", "Nope-v0"], ["env_id='Nope-v0'"]),
        (["train", "--out", "/proc/no/such/dir"], ["out='/proc/no/such/dir'"]),
        (["eval", "/no/such/run"], ["run='/no/such/run'"]),
    ],
)
def test_train_and_eval_bad_input_is_one_line(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(word in err for word in words)


def test_readme_documents_every_method_in_its_own_words():
    from pathlib import Path

    from agents.methods import METHODS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for method in METHODS.values():
        assert f"- **`{method.name}`**: {method.summary}" in readme, method.name


def parse_train(*argv: str):
    return build_parser().parse_args(["train", *argv])


def _other_value(name: str, value):
    """A value of field `name` other than `value`, and how to write it as a flag's argument."""
    if isinstance(value, bool):
        return not value, None
    if isinstance(value, int):
        return value + 1, str(value + 1)
    if isinstance(value, float):
        return value / 2, repr(value / 2)
    if value is None:
        return 0.5, "0.5"
    if isinstance(value, dict):
        return {"max_steps": 16}, '{"max_steps": 16}'
    if isinstance(value, list):  # a repeatable flag: one module
        return ["mylab"], "mylab"
    return f"{value}x", f"{value}x"


def test_every_train_config_field_has_a_flag_that_sets_it():
    """A new TrainConfig field gets its flag without anyone listing it; this checks each one."""
    defaults = TrainConfig()
    argv, expected = [], {}
    for field in dataclasses.fields(TrainConfig):
        value, text = _other_value(field.name, getattr(defaults, field.name))
        flag = "--" + field.name.replace("_", "-")
        argv += [flag if text is not None else (flag if value else "--no-" + flag[2:])] + ([text] if text is not None else [])
        expected[field.name] = value
    assert train_settings(parse_train(*argv)) == expected


def test_train_help_shows_each_field_s_own_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping, which may split words at hyphens
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        assert " ".join(field.metadata["help"].split()) in help_text, field.name


@pytest.mark.parametrize("text", ["3e6", "3_000_000", "3000000", "3E6", "3000000.0"])
def test_integers_may_be_written_as_people_write_budgets(text):
    assert parse_integer("steps", text) == 3_000_000
    assert train_settings(parse_train("--steps", text))["steps"] == 3_000_000


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--env", "OversightGrid/TwoRooms-v0"], {"env_id": "OversightGrid/TwoRooms-v0"}),
        (["--env-id", "OversightGrid/TwoRooms-v0"], {"env_id": "OversightGrid/TwoRooms-v0"}),
        (["--oversight", "0.3"], {"oversight_prob": 0.3}),
        (["--lr", "1e-4"], {"learning_rate": 1e-4}),
        (["--learning-rate", "1e-4"], {"learning_rate": 1e-4}),
        (["--eval-every", "1e5"], {"eval_every_steps": 100_000}),
        (["--checkpoint-every", "2e5"], {"checkpoint_every_steps": 200_000}),
        (["--eval-episodes", "64"], {"eval_episodes": 64}),
        (["--final-eval-episodes", "64"], {"final_eval_episodes": 64}),
        (["--max-grad-norm", "none"], {"max_grad_norm": None}),
        (["--ent-coef-final", "None"], {"ent_coef_final": None}),
        (["--no-bf16"], {"bf16": False}),
        (["--env-kwargs", '{"max_steps": 16, "spurious_oversight_prob": 0.05}'],
         {"env_kwargs": {"max_steps": 16, "spurious_oversight_prob": 0.05}}),
        (["--trainer", "sb3"], {"trainer": "sb3", "algorithm": "ppo"}),
        (["--trainer", "lean", "--algorithm", "ppo"], {"trainer": "lean", "algorithm": "ppo"}),
    ],
)
def test_flags_set_their_fields(argv, expected):
    config = train_config(parse_train(*argv))
    assert {name: getattr(config, name) for name in expected} == expected


def test_unset_flags_take_the_preset_s_values():
    paper = train_config(parse_train("--preset", "paper", "--method", "naive"))
    assert paper == TrainConfig.from_preset("paper", method="naive")
    assert train_config(parse_train("--preset", "paper", "--lr", "1e-4")).learning_rate == 1e-4
    assert train_config(parse_train()) == TrainConfig()


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"oversight {version('oversight-testbed')}"


def test_default_run_directories_differ_between_different_runs():
    def run_dir(*argv: str) -> Path:
        args = parse_train(*argv)
        return default_run_dir(train_config(args), args.preset)

    fast = run_dir()
    assert fast == Path("runs/DiamondGhost-5x5-v0_routing_p0.1_s0")
    assert run_dir("--preset", "paper") == Path("runs/DiamondGhost-5x5-v0_routing_p0.1_s0_paper")
    assert run_dir("--steps", "1e7") == Path("runs/DiamondGhost-5x5-v0_routing_p0.1_s0_steps10M")
    assert run_dir("--preset", "paper", "--steps", str(PRESETS["paper"]["steps"])) == run_dir("--preset", "paper")
    assert run_dir("--trainer", "sb3") == Path("runs/DiamondGhost-5x5-v0_routing_p0.1_s0_sb3")
    others = {run_dir(*argv) for argv in (["--lr", "1e-4"], ["--lr", "2e-4"], ["--env-kwargs", '{"max_steps": 16}'])}
    assert len(others) == 3 and fast not in others
    assert run_dir("--lr", "1e-4") == run_dir("--learning-rate", "0.0001")  # the same run: the same directory
