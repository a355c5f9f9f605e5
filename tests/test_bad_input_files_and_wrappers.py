"""Bad input beyond `oversight train`'s flags: missing directories and files that are not specs,
specs and configs naming modules that are not there, outcome and observation functions that break
the wrapper's contract, and a disk that fills up. Each is one line naming the value, and none
leaves a partial run directory."""

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import files
from agents.config import TrainConfig
from oversight_cli.main import main
from oversight_cli.spec import load_spec
from oversight_env import register_partial_oversight, resolve_env_id
from tests.test_cli_bad_input import TINY, one_line_error
from tests.test_wrappers import Corridor, corridor_outcome


@pytest.mark.parametrize("args,words", [
    (["render", "runs/no_such_run", "--out", "x.gif"], ["source='runs/no_such_run'", "no such run directory"]),
    (["render", "nolab:Thing-v0", "--out", "x.gif"], ["env_id='nolab:Thing-v0'", "no module 'nolab'"]),
    (["report", "runs/no_such_sweep"], ["run_dir='runs/no_such_sweep'", "no such directory"]),
    (["ladder", "runs/no_such_sweep", "--out", "ladder"], ["run_dir='runs/no_such_sweep'", "no such directory"]),
    (["eval", "runs/no_such_run"], ["run='runs/no_such_run'"]),
    (["demo", "--env", "nolab:Thing-v0", "--episodes", "1"], ["env_id='nolab:Thing-v0'", "no module 'nolab'"]),
])
def test_missing_sources_are_named(args, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = one_line_error(capsys, args[0])
    assert all(w in err for w in words), err
    assert list(tmp_path.iterdir()) == []  # nothing written


SPECS = {
    "binary": (b"\xe7\x00\xff\x10 not text", ["spec=", "not a text file"]),
    "imports not a list": (b'imports = "mylab"\n[env]\nid = "OversightGrid/DiamondGhost-5x5-v0"\n',
                           ["imports='mylab'", "list of module names"]),
    "imports missing": (b'imports = ["nolab"]\n[env]\nid = "OversightGrid/DiamondGhost-5x5-v0"\n',
                        ["imports='nolab'", "no module 'nolab'"]),
    "env module missing": (b'[env]\nid = "nolab:MyLab/Thing-v0"\n', ["env_id='nolab:MyLab/Thing-v0'", "no module 'nolab'"]),
    "imports twice": (b'imports = ["tests.test_own_environment"]\n[env]\nid = "OversightGrid/DiamondGhost-5x5-v0"\n'
                      b'[train.settings]\nimports = ["tests"]\n', ["train.settings.imports", "keep one"]),
}
TRAIN = b'[train]\nmethods = ["naive"]\noversight = [0.1]\nseeds = [0]\nsteps = 1024\n'


@pytest.mark.parametrize("name", SPECS)
def test_bad_specs_are_named(name, tmp_path, monkeypatch, capsys):
    content, words = SPECS[name]
    spec = tmp_path / "spec.toml"
    spec.write_bytes(content + (TRAIN if name != "binary" else b""))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = one_line_error(capsys, "sweep")
    assert all(w in err for w in words), err
    assert not (tmp_path / "runs").exists()


def test_a_directory_given_as_a_spec(tmp_path):
    with pytest.raises(ValueError, match=r"spec='.*' is invalid: that is a directory"):
        load_spec(tmp_path)


@pytest.mark.parametrize("settings,words", [
    ({"imports": "mylab"}, ["imports='mylab'", "list of module names"]),
    ({"imports": ["nolab"]}, ["imports='nolab'", "no module 'nolab'"]),
    ({"imports": [3]}, ["imports=3", "not a module name"]),
    ({"env_id": "nolab:X-v0"}, ["env_id='nolab:X-v0'", "no module"]),
])
def test_bad_imports_in_a_config(settings, words):
    with pytest.raises(ValueError) as error:
        TrainConfig(**settings)
    assert all(w in str(error.value) for w in words) and "\n" not in str(error.value)


def test_an_id_that_is_not_a_string():
    with pytest.raises(ValueError, match=r"^env_id=5 is invalid: expected a string"):
        resolve_env_id(5)


def _returns(value):
    def outcome(env, info):
        return value if env.unwrapped.x in (0, 4) or info.get("x") in (0, 4) else "none"
    return outcome


def _planes(value):
    return lambda obs: np.full((1, 1, 5), value, np.float32)


WRAPPERS = {
    "outcome True": ({"outcome": _returns(True)}, ["outcome (what outcome returned)=True", "code"]),
    "outcome 1.0": ({"outcome": _returns(1.0)}, ["=1.0 is invalid", "its code"]),
    "outcome 7": ({"outcome": _returns(7)}, ["=7 is invalid"]),
    "outcome label": ({"outcome": _returns("gold")}, ["='gold' is invalid", "'intended'"]),
    "outcome of one argument": ({"outcome": lambda env: "none"}, ["outcome='<lambda>'", "takes (env)", "(env, info)"]),
    "observation of no argument": ({"observation": lambda: 0}, ["observation='<lambda>'", "takes ()"]),
    "observation NaN": ({"observation": _planes(np.nan)}, ["observation=nan", "[0, 1]"]),
    "observation above 1": ({"observation": _planes(255.0)}, ["observation=255.0", "[0, 1]"]),
    "observation below 0": ({"observation": _planes(-1.0)}, ["observation=-1.0", "[0, 1]"]),
}


@pytest.mark.parametrize("name", WRAPPERS)
def test_functions_that_break_the_wrappers_contract_fail_at_registration(name):
    arguments, words = WRAPPERS[name]
    outcome = arguments.pop("outcome", corridor_outcome)
    with pytest.raises(ValueError) as error:
        register_partial_oversight(f"BadInput/Corridor{abs(hash(name))}-v0", Corridor, outcome, **arguments)
    assert all(w in str(error.value) for w in words) and "\n" not in str(error.value), str(error.value)


def _disk_full_at(monkeypatch, target: str) -> None:
    """A disk that fills while writing `target` (a run's config.json, or a checkpoint)."""
    if target == "checkpoint":
        def save(obj, path, *args, **kwargs):  # what torch's writer says on a full disk
            Path(path).write_bytes(b"PK\x03\x04partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 12224 vs 12118")
        monkeypatch.setattr(torch, "save", save)
    else:
        write_text = Path.write_text

        def full(self, data, *args, **kwargs):
            if self.name.endswith(".json.tmp"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return write_text(self, data, *args, **kwargs)
        monkeypatch.setattr(Path, "write_text", full)


@pytest.mark.parametrize("target", ["config", "checkpoint"])
def test_a_full_disk_names_the_file_and_leaves_no_partial_run(target, tmp_path, monkeypatch, capsys):
    _disk_full_at(monkeypatch, target)
    out = tmp_path / "experiments" / "run"
    assert main(["train", *TINY, "--checkpoint-every", "512", "--out", str(out)]) == 2
    err = one_line_error(capsys, "train")
    written = "config.json" if target == "config" else "checkpoint.pt"
    assert f"cannot write {out / written}" in err and "MiB free on that disk" in err, err
    assert not (tmp_path / "experiments").exists()  # every directory the run made is gone


def test_a_run_with_a_checkpoint_keeps_it_when_the_disk_fills(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "run"
    write_text = Path.write_text

    def full_at_the_end(self, data, *args, **kwargs):  # the disk fills as the final evaluation is written
        if self.name == ".eval.json.tmp":
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_at_the_end)
    assert main(["train", *TINY, "--checkpoint-every", "512", "--out", str(out)]) == 2
    assert f"cannot write {out / 'eval.json'}" in one_line_error(capsys, "train")
    assert (out / "checkpoint.pt").exists() and (out / "config.json").exists()  # resumes once there is room
    monkeypatch.setattr(Path, "write_text", write_text)
    assert main(["train", *TINY, "--checkpoint-every", "512", "--out", str(out)]) == 0  # and it does


def test_a_write_error_is_one_line_with_the_path(tmp_path):
    with pytest.raises(OSError, match=r"^cannot write .*x\.json \(Is a directory"):
        (tmp_path / "x.json").mkdir()
        files.write_json_atomic(tmp_path / "x.json", {})
