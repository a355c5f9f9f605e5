"""A researcher's own environment, registered in a module of theirs, then trained, evaluated,
rendered and swept from the command line exactly as the README shows. The commands run in
another process started the way the `oversight` console script starts (its path does not
include the working directory), where no code of the researcher's ran first."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.config import TrainConfig
from oversight_cli.main import default_run_dir
from oversight_cli.spec import load_spec
from oversight_env import import_env_module, make_batched, resolve_env_id, short_name

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## Register your own environment"):]
MODULE = re.search(r"```python\n(# mylab\.py\n.*?)```", SECTION, re.S).group(1)
COMMANDS = [line.split("#")[0].strip() for line in re.search(r"```bash\n(.*?)```", SECTION, re.S).group(1).splitlines()]
# The README's budget, shortened: the same commands, a run of seconds.
SHORTER = {"--steps 200000": "--steps 2000", "steps200k": "steps2k"}

# What the `oversight` console script does: run main() with the installed packages on the path
# and not the working directory.
CONSOLE_SCRIPT = ("import os, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.', os.getcwd())]; "
                  "from oversight_cli.main import main; sys.exit(main(sys.argv[1:]))")


def oversight(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def shell_words(command: str) -> list[str]:
    for long, short in SHORTER.items():
        command = command.replace(long, short)
    words = command.split()
    assert words[0] == "oversight", command
    return words[1:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    lab = tmp_path_factory.mktemp("lab")
    (lab / "mylab.py").write_text(MODULE)
    (lab / "mylab.toml").write_text(
        'name = "mylab"\n[env]\nid = "mylab:MyLab/Corridor-v0"\n[train]\nmethods = ["routing", "naive"]\n'
        'oversight = [0.5]\nseeds = [0, 1]\nsteps = 2048\n[train.settings]\neval_every_steps = 1024\n'
        'eval_episodes = 32\ncheckpoint_every_steps = 1024\n[eval]\nepisodes = 64\n')
    return lab


def test_the_readme_shows_the_module_and_every_command():
    assert "register_oversight_env(\"MyLab/Corridor-v0\"" in MODULE
    verbs = [shell_words(c)[0] for c in COMMANDS if c]
    assert verbs == ["train", "eval", "render", "render", "sweep"]


def test_the_readmes_commands_work_in_a_fresh_process(lab):
    for command in filter(None, COMMANDS):
        done = oversight(shell_words(command), lab)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    run = lab / "runs" / "Corridor-v0_routing_p0.1_s0_steps2k"
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "mylab:MyLab/Corridor-v0"  # recorded with its module
    assert (run / "eval.json").exists() and (lab / "corridor.gif").exists() and (lab / "random.gif").exists()
    assert (lab / "runs" / "mylab" / "report.md").exists()
    assert sorted(p.parent.parent.parent.name for p in (lab / "runs" / "mylab").glob("*/p*/s*/eval.json")) == ["naive"] * 2 + ["routing"] * 2
    # Started again, the run finds its environment and reports it finished.
    again = oversight(shell_words(COMMANDS[0]), lab)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_import_registers_ids_named_plainly(lab):
    done = oversight(["train", "--import", "mylab", "--env", "MyLab/Corridor-v0", "--steps", "1000", "--eval-every", "1000",
                      "--final-eval-episodes", "16", "--quiet", "--out", "runs/imported"], lab)
    assert done.returncode == 0, done.stderr
    config = json.loads((lab / "runs" / "imported" / "config.json").read_text())
    assert config["imports"] == ["mylab"] and config["env_id"] == "MyLab/Corridor-v0"
    evaluated = oversight(["eval", "runs/imported", "--episodes", "16"], lab)
    assert evaluated.returncode == 0, evaluated.stderr


def test_without_the_module_the_error_names_it(lab, tmp_path):
    for args in (["train", "--env", "nolab:MyLab/Corridor-v0"], ["train", "--import", "nolab"],
                 ["eval", str(lab / "runs" / "imported")]):
        done = oversight(args, tmp_path)  # elsewhere: neither module can be found
        assert done.returncode == 2 and done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "lab'" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("env_id,words", [
    ("nolab:Thing-v0", ["env_id='nolab:Thing-v0'", "no module 'nolab'"]),
    ("mylab:", ["env_id='mylab:'", "one colon"]),
    ("a:b:C-v0", ["env_id='a:b:C-v0'", "one colon"]),
    ("my-lab:C-v0", ["env_id='my-lab:C-v0'", "not a module name"]),
])
def test_bad_module_ids_are_one_line_errors(env_id, words):
    with pytest.raises(ValueError) as error:
        resolve_env_id(env_id)
    assert all(w in str(error.value) for w in words) and "\n" not in str(error.value)


def test_a_module_that_fails_is_named_with_its_error(tmp_path, monkeypatch):
    (tmp_path / "broken_lab.py").write_text("raise RuntimeError('layout file missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="imports='broken_lab' is invalid: importing module 'broken_lab' failed: "
                                         "RuntimeError: layout file missing"):
        import_env_module("broken_lab", "imports")
    (tmp_path / "needs_more.py").write_text("import no_such_dependency_here\n")
    with pytest.raises(ValueError, match="importing module 'needs_more' failed: No module named 'no_such_dependency_here'"):
        import_env_module("needs_more")


def test_the_api_takes_the_module_form_too(tmp_path, monkeypatch):
    (tmp_path / "apilab.py").write_text(MODULE.replace("MyLab/Corridor-v0", "ApiCorridor-v0"))  # no namespace
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    twin = make_batched("apilab:ApiCorridor-v0", 4, seed=0)  # found in the working directory
    assert twin.obs_shape == (5, 3, 6)
    assert short_name("apilab:ApiLab/Corridor-v0") == "Corridor-v0" == short_name("ApiLab/Corridor-v0")
    config = TrainConfig(env_id="apilab:ApiCorridor-v0")
    assert default_run_dir(config, "fast") == Path("runs/ApiCorridor-v0_routing_p0.1_s0")  # no module in the name


def test_a_specs_imports_reach_every_cell(tmp_path, monkeypatch):
    (tmp_path / "speclab.py").write_text(MODULE.replace("MyLab/Corridor-v0", "SpecLab/Corridor-v0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "spec.toml"
    spec.write_text('imports = ["speclab"]\n[env]\nid = "SpecLab/Corridor-v0"\n[train]\nmethods = ["naive", "routing"]\n'
                    'oversight = [0.5]\nseeds = [0, 1]\nsteps = 1024\n')
    loaded = load_spec(spec)
    assert {tuple(loaded.config(cell).imports) for cell in loaded.cells()} == {("speclab",)}  # recorded, run by run


def test_runs_recorded_before_imports_existed_resume_and_pool_with_new_ones(tmp_path):
    from agents.run_dir import prepare_run_dir
    from analysis.loading import check_poolable

    config = TrainConfig(method="naive")
    old = {k: v for k, v in config.to_json().items() if k != "imports"}  # a config.json written before the setting
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    prepare_run_dir(config, tmp_path / "run")  # the same run: resumed, not refused
    new = {**config.to_json(), "seed": 1}
    check_poolable("exp", {"s0": {"config": old}, "s1": {"config": new}})
    with pytest.raises(ValueError, match="differ in imports"):
        check_poolable("exp", {"s0": {"config": old}, "s1": {"config": {**new, "imports": ["mylab"]}}})
