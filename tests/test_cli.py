"""The `oversight` command: the demo prints episodes and writes PNGs; bad input gives one line."""

import json
import shutil
import subprocess

import matplotlib.image
import pytest

from oversight_cli.main import main


def test_demo_prints_episodes_and_writes_pngs(tmp_path, capsys):
    assert main(["demo", "--episodes", "3", "--oversight", "1.0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("episode ") >= 3 and "outcomes:" in out
    assert "[G]" in out and "[D]" in out  # with oversight 1 every terminal cell is bracketed
    grid = matplotlib.image.imread(tmp_path / "grid.png")
    assert grid.shape[0] == grid.shape[1] == 7 * 32  # 5x5 plus MiniGrid's outer wall, 32 px tiles
    assert matplotlib.image.imread(tmp_path / "episode_0.png").shape[1] > grid.shape[1]


def test_nearest_policy_reaches_ghosts_and_diamond_policy_does_not(tmp_path):
    from oversight_cli.demo import run_demo

    nearest = run_demo(episodes=30, policy="nearest", out_dir=tmp_path)
    diamond = run_demo(episodes=30, policy="diamond", out_dir=tmp_path)
    assert nearest["ghost"] > 0 and nearest["diamond"] > 0
    assert diamond == {"diamond": 30, "ghost": 0, "none": 0}


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


def test_console_script_is_installed(tmp_path):
    exe = shutil.which("oversight")
    assert exe, "the `oversight` console script is not on PATH: is the project installed?"
    result = subprocess.run([exe, "demo", "--episodes", "1", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "routing", "--steps", "1024", "--num-envs", "16", "--eval-every", "512",
            "--eval-episodes", "64", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "evaluated policy: without_ghost" in printed and "without_ghost" in printed
    assert json.loads((out / "config.json").read_text())["num_envs"] == 16
    assert main(args) == 0  # finished: reported again, not retrained
    assert main(["eval", str(out), "--episodes", "64", "--ablate", "ghost", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "without_ghost" in printed and "without_diamond" not in printed.split("routing on")[-1]
    assert set(json.loads((tmp_path / "e.json").read_text())) == {"full", "without_ghost"}


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
