"""Experiment specs: every mistake, including one that would make cells fight over a directory or
record settings the training never used, is a one-line error naming it."""

from pathlib import Path

import pytest

from oversight_cli.spec import load_spec

ROOT = Path(__file__).parents[1]
ENV = "[env]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\n"
TRAIN = "[train]\nmethods = ['routing']\noversight = [0.1]\nseeds = [0]\n"


@pytest.mark.parametrize(
    "text,words",
    [
        (ENV + TRAIN + "lr = 1", ["[train]", "'lr'"]),
        (ENV + TRAIN.replace("'routing'", "'magic'"), ["method='magic'"]),
        (ENV + TRAIN.replace("0.1", "1.5"), ["train.oversight=1.5"]),
        (ENV + TRAIN.replace("[0.1]", "[]"), ["train.oversight=[]"]),
        (ENV + TRAIN + "[train.settings]\nseed = 3", ["[train.settings]", "'seed'"]),
        (ENV + TRAIN + "steps = -1", ["train.steps=-1", "integer >= 1"]),
        ("[env]\nid = 'Nope-v0'\n" + TRAIN, ["env_id='Nope-v0'"]),
        ("name = ", ["not valid TOML"]),
        (ENV + TRAIN + "preset = 'slow'", ["preset='slow'"]),
        # Two entries naming the same cells: two workers would train one directory.
        (ENV + TRAIN.replace("[0]", "[0, 1, 0]"), ["train.seeds=[0, 1, 0]", "lists 0 twice"]),
        (ENV + TRAIN.replace("[0.1]", "[0.1, 0.3, 0.1]"), ["train.oversight=", "lists 0.1 twice"]),
        (ENV + TRAIN.replace("[0.1]", "[0.1, 0.1000001]"), ["train.oversight=", "0.1 and 0.1000001"]),
        (ENV + TRAIN.replace("['routing']", "['routing', 'naive', 'routing']"), ["train.methods=", "lists 'routing' twice"]),
        # A name is a directory under runs/: nothing that reaches outside it.
        ("name = '/tmp/elsewhere'\n" + ENV + TRAIN, ["name='/tmp/elsewhere'", "plain name"]),
        ("name = 'a/b'\n" + ENV + TRAIN, ["name='a/b'", "plain name"]),
        ("name = '..'\n" + ENV + TRAIN, ["name='..'", "plain name"]),
        ("name = 'up..'\n" + ENV + TRAIN, ["name='up..'", "plain name"]),
        ('name = "a\\\\b"\n' + ENV + TRAIN, ["name='a\\\\b'", "plain name"]),  # a Windows separator
        ("name = ''\n" + ENV + TRAIN, ["name=''"]),
        # The environment is named, never a silent default.
        (TRAIN, ["bad.toml", "needs one [env] table, or [[envs]] tables"]),
        (ENV + "[[envs]]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\n" + TRAIN, ["bad.toml", "needs one [env] table"]),
        ("envs = 3\n" + TRAIN, ["envs=3", "[[envs]] tables"]),
        ("[[envs]]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\n[[envs]]\nid = 'Other/DiamondGhost-5x5-v0'\n" + TRAIN,
         ["envs=['DiamondGhost-5x5-v0', 'DiamondGhost-5x5-v0']", "twice"]),
        ("[[envs]]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\nname = '../up'\n" + TRAIN, ["envs[0].name='../up'", "plain name"]),
        ("[[envs]]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\nsteps = 0\n" + TRAIN, ["envs[0].steps=0", ">= 1"]),
        ("[[envs]]\nid = 'OversightGrid/DiamondGhost-5x5-v0'\ncolour = 1\n" + TRAIN, ["[[envs]] 0", "'colour'"]),
        ("[[envs]]\nid = 'OversightGrid/AbsentSupervisor-v0'\nkwargs = {placement = 'sideways'}\n" + TRAIN,
         ["placement='sideways'"]),
        ("[env]\nkwargs = {max_steps = 16}\n" + TRAIN, ["bad.toml", "has no env id"]),
        ("env = 3\n" + TRAIN, ["env=3", "expected a table"]),
        # Keyword arguments each cell sets itself: recorded, they would be silently overridden.
        (ENV + "kwargs = {oversight_prob = 0.5}\n" + TRAIN, ["env.kwargs.oversight_prob=0.5", "each cell sets it"]),
        (ENV + "kwargs = {reward = 'true'}\n" + TRAIN, ["env.kwargs.reward='true'", "each cell sets it"]),
        (ENV + "kwargs = {max_step = 16}\n" + TRAIN, ["max_step=16", "no such keyword argument"]),
        (ENV + TRAIN.replace("[0]", "[-1]"), ["train.seeds=-1", "integers >= 0"]),
        (ENV + TRAIN.replace("[0]", "[0.5]"), ["train.seeds=0.5"]),
        (ENV + TRAIN + "steps = 0", ["train.steps=0"]),
        (ENV + TRAIN + "steps = 1.5", ["train.steps=1.5"]),
        (ENV + TRAIN + "steps = true", ["train.steps=True"]),
        (ENV + TRAIN + "[eval]\nepisodes = 0", ["eval.episodes=0", "integer >= 1"]),
        (ENV + TRAIN + "[eval]\nepisodes = 10.0", ["eval.episodes=10.0"]),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_spec(path)
    assert "\n" not in str(error.value) and all(w in str(error.value) for w in words), str(error.value)


def test_missing_spec(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_spec(tmp_path / "none.toml")


def test_every_shipped_spec_loads():
    for path in sorted((ROOT / "runs").glob("*.toml")):
        assert load_spec(path).cells(), path


def test_a_good_spec_keeps_its_environment_settings(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text("name = 'small-grid_2'\n" + ENV + "kwargs = {max_steps = 16}\n" + TRAIN.replace("[0]", "[0, 1]")
                    + "steps = 2048\n[eval]\nepisodes = 64\n")
    spec = load_spec(path)
    config = spec.config(spec.cells()[1])
    assert (spec.name, config.env_kwargs, config.seed, config.steps, config.final_eval_episodes) == (
        "small-grid_2", {"max_steps": 16}, 1, 2048, 64)


def test_a_spec_of_several_environments_gives_each_its_directory_and_budget(tmp_path):
    path = tmp_path / "zoo.toml"
    path.write_text("[[envs]]\nid = 'OversightGrid/AbsentSupervisor-v0'\nsteps = 4096\n"
                    "[[envs]]\nid = 'OversightGrid/CheeseInCorner-9x9-v0'\nname = 'cheese-half'\nkwargs = {corner_prob = 0.5}\n"
                    + TRAIN + "steps = 2048\n")
    spec = load_spec(path)
    cells = spec.cells()
    assert [c.path() for c in cells] == ["AbsentSupervisor-v0/routing/p0.1/s0", "cheese-half/routing/p0.1/s0"]
    configs = [spec.config(c) for c in cells]
    assert [(c.env_id, c.env_kwargs, c.steps) for c in configs] == [
        ("OversightGrid/AbsentSupervisor-v0", {}, 4096), ("OversightGrid/CheeseInCorner-9x9-v0", {"corner_prob": 0.5}, 2048)]


def test_a_spec_picks_a_preset_and_overrides_it(tmp_path):
    path = tmp_path / "paper.toml"
    path.write_text(ENV + TRAIN + "preset = 'paper'\n[train.settings]\nnum_envs = 64\n")
    spec = load_spec(path)
    config = spec.config(spec.cells()[0])
    assert (config.learning_rate, config.ent_coef_final, config.num_envs) == (5e-5, None, 64)
    assert config.steps == 20_000 * 512 * 32  # no budget in the spec: the preset's
