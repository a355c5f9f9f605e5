"""Bad input to `oversight`: each case fails with one line naming the bad value, and a rejected
run leaves nothing behind (every setting is checked before the run directory is made)."""

import json
import os
import shutil

import pytest

from oversight_cli.main import main

TINY = ["--steps", "1024", "--num-envs", "16", "--hidden", "16", "--eval-every", "512", "--eval-episodes", "32",
        "--final-eval-episodes", "32", "--quiet"]


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"oversight {command}: error: "), err
    return err


@pytest.mark.parametrize(
    "args,words",
    [
        (["--seed", "-1"], ["seed=-1", "an integer in [0, "]),
        (["--steps", "3.5"], ["steps='3.5'", "expected an integer", "3e6"]),
        (["--num-envs", "lots"], ["num_envs='lots'", "expected an integer"]),
        (["--lr", "inf"], ["learning_rate=inf", "finite"]),
        (["--lr", "nan"], ["learning_rate=nan", "finite"]),
        (["--lr", "fast"], ["learning_rate='fast'", "expected a number"]),
        (["--gamma", "2"], ["gamma=2.0", "(0, 1]"]),
        (["--clip-range", "0"], ["clip_range=0.0", "> 0"]),
        (["--max-grad-norm", "-1"], ["max_grad_norm=-1.0", "> 0 or none"]),
        (["--adam-eps", "0"], ["adam_eps=0.0", "> 0"]),
        (["--env-kwargs", '{"colour": "red"}'], ["colour='red'", "no such keyword argument", "max_steps"]),
        (["--env-kwargs", '{"max_steps": 0}'], ["max_steps=0", ">= 1"]),
        (["--env-kwargs", "[16]"], ["env_kwargs='[16]'", "JSON object"]),
        (["--env-kwargs", "{max_steps: 16}"], ["env_kwargs='{max_steps: 16}'", "not valid JSON"]),
        (["--env-kwargs", '{"oversight_prob": 0.5}'], ["env_kwargs['oversight_prob']=0.5", "oversight_prob setting"]),
        (["--trainer", "sb3", "--algorithm", "reinforce"], ["algorithm='reinforce'", "sb3 trainer runs PPO"]),
        (["--trainer", "jax"], ["trainer='jax'", "lean"]),
        (["--device", "gpu"], ["device='gpu'", "auto", "cuda"]),
        (["--trainer", "sb3", "--algorithm", "ppo", "--method", "routing_full_labels"],
         ["method='routing_full_labels'", "only the lean trainer"]),
        (["--trainer", "sb3", "--algorithm", "ppo", "--method", "routing_gate_replay"],
         ["method='routing_gate_replay'", "only the lean trainer"]),
        (["--trainer", "sb3", "--algorithm", "ppo", "--device", "cuda"], ["device='cuda'", "sb3 trainer runs on the CPU"]),
        (["--lrr", "1e-3"], ["unrecognized arguments: --lrr 1e-3", "oversight train --help"]),
        (["--num", "16"], ["unrecognized arguments: --num 16"]),  # no abbreviations: flags are generated
        (["--bf16", "yes"], ["unrecognized arguments: yes"]),
        # Values no run could reach: refused before a config is written, not started (or left to hang).
        (["--steps", "1e30"], ["steps=1000000000000000000000000000000", "[1, 1_000_000_000_000]"]),
        (["--steps", "1e13"], ["steps=10000000000000", "[1, 1_000_000_000_000]"]),
        (["--seed", str(2**64)], [f"seed={2**64}", "9_223_372_036_854_775_807"]),
        (["--seed", str(2**63)], [f"seed={2**63}", "9_223_372_036_854_775_807"]),
        (["--num-envs", "1000000000"], ["num_envs=1000000000", "[1, 16_777_216]"]),
        (["--num-envs", "1000000", "--rollout-steps", "1000"], ["num_envs=1000000", "GiB", "half of this machine's memory"]),
        (["--rollout-steps", "10000000"], ["rollout_steps=10000000", "[1, 1_000_000]"]),
        (["--hidden", "100000"], ["hidden=100000", "[1, 16_384]"]),
        (["--algorithm", "ppo", "--num-envs", "2", "--rollout-steps", "4", "--ppo-minibatches", "1000"],
         ["ppo_minibatches=1000", "at most num_envs x rollout_steps (8)"]),
        (["--ppo-epochs", "100000"], ["ppo_epochs=100000", "[1, 1_000]"]),
        (["--final-eval-episodes", "100000000"], ["final_eval_episodes=100000000", "[1, 10_000_000]"]),
        (["--env", "OversightGrid/CheeseInCorner-13x13-v0", "--final-eval-episodes", "9000000"],
         ["final_eval_episodes=9000000", "half of this machine's memory"]),
        (["--eval-every", "1e13"], ["eval_every_steps=10000000000000", "[1, 1_000_000_000_000]"]),
        (["--checkpoint-every", "1e13"], ["checkpoint_every_steps=10000000000000", "[1, 1_000_000_000_000]"]),
        # An environment of one's own, named with its module.
        (["--env", "nolab:MyLab/Corridor-v0"], ["env_id='nolab:MyLab/Corridor-v0'", "no module 'nolab'"]),
        (["--env", "mylab:"], ["env_id='mylab:'", "one colon"]),
        (["--env", "a:b:C-v0"], ["env_id='a:b:C-v0'", "one colon"]),
        (["--env", "my-lab:C-v0"], ["env_id='my-lab:C-v0'", "not a module name"]),
        (["--import", "nolab"], ["imports='nolab'", "no module 'nolab'"]),
        (["--import", "my-lab"], ["imports='my-lab'", "not a module name"]),
        (["--import", ""], ["imports=''", "not a module name"]),
    ],
)
def test_bad_train_input_is_one_line_and_leaves_nothing(args, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args, "--out", str(out)]) == 2
    err = one_line_error(capsys, "train")
    assert all(word in err for word in words), err
    assert not out.exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["--episodes", "0"], ["episodes=0", ">= 1"]),
        (["--episodes", "many"], ["--episodes", "'many'"]),
        (["--oversight", "1.5"], ["oversight=1.5", "[0, 1]"]),
        (["--seed", "-2"], ["seed=-2", ">= 0"]),
        (["--json", "/no/such/dir/results.json"], ["json='/no/such/dir/results.json'", "no such directory"]),
        (["--device", "tpu"], ["device='tpu'", "auto"]),
    ],
)
def test_bad_eval_input_is_one_line(args, words, capsys):
    assert main(["eval", "/no/such/run", *args]) == 2  # checked before the run is even looked at
    err = one_line_error(capsys, "eval")
    assert all(word in err for word in words), err


def test_bad_demo_seed_and_unknown_command(capsys, tmp_path):
    assert main(["demo", "--seed", "-1", "--out", str(tmp_path / "demo")]) == 2
    assert "seed=-1" in one_line_error(capsys, "demo")
    assert not (tmp_path / "demo").exists()
    assert main(["fly"]) == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


# ---------------------------------------------------------------------- damaged run directories
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny finished run, trained once; each test damages its own copy."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_truncated_checkpoint(run, capsys):
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert main(["eval", str(run), "--episodes", "8"]) == 2
    err = one_line_error(capsys, "eval")
    assert f"checkpoint='{checkpoint}'" in err and "cannot be loaded" in err


@pytest.mark.parametrize(
    "content,words",
    [
        ("{not json", ["config.json", "not valid JSON"]),
        ("[1, 2]", ["config.json", "expected a JSON object"]),
        (None, ["config.json", "unknown settings ['extra']"]),  # the real config plus a key
        ('{"seed": -1}', ["config.json", "invalid config", "seed=-1"]),
    ],
)
def test_damaged_config_json(run, content, words, capsys):
    config = run / "config.json"
    if content is None:
        content = json.dumps({**json.loads(config.read_text()), "extra": 1})
    config.write_text(content)
    assert main(["eval", str(run), "--episodes", "8"]) == 2
    err = one_line_error(capsys, "eval")
    assert all(word in err for word in words), err


def test_garbage_config_json_stops_train_too(run, capsys):
    (run / "config.json").write_text("\x00\x01garbage")
    (run / "eval.json").unlink()
    assert main(["train", *TINY, "--out", str(run)]) == 2
    err = one_line_error(capsys, "train")
    assert "config.json" in err and "not valid JSON" in err


def test_garbage_eval_json(run, capsys):
    (run / "eval.json").write_text('{"truncated": ')
    assert main(["train", *TINY, "--out", str(run)]) == 2
    err = one_line_error(capsys, "train")
    assert "eval.json" in err and "not valid JSON" in err


def test_eval_needs_no_eval_json(run, capsys):
    (run / "eval.json").unlink()
    assert main(["eval", str(run), "--episodes", "8"]) == 0  # it evaluates the checkpoint


def test_run_without_checkpoint(run, capsys):
    (run / "checkpoint.pt").unlink()
    assert main(["eval", str(run), "--episodes", "8"]) == 2
    assert f"run='{run / 'checkpoint.pt'}'" in one_line_error(capsys, "eval")


def test_ablating_an_expert_the_policy_lacks(run, capsys):
    assert main(["eval", str(run), "--episodes", "8", "--ablate", "goblin"]) == 2
    err = one_line_error(capsys, "eval")
    assert "ablate='goblin'" in err and "proxy" in err


def test_directory_holding_another_config(run, capsys):
    before = (run / "config.json").read_text()
    assert main(["train", *TINY, "--lr", "1e-4", "--out", str(run)]) == 2
    assert "differs in ['learning_rate']" in one_line_error(capsys, "train")
    assert (run / "config.json").read_text() == before


def test_output_path_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["train", *TINY, "--out", str(tmp_path / "file" / "run")]) == 2
    assert f"out='{tmp_path / 'file' / 'run'}'" in one_line_error(capsys, "train")


def test_read_only_output_directory(tmp_path, capsys):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if not os.access(parent, os.W_OK):  # root may write anyway: then only the case below runs
            assert main(["train", *TINY, "--out", str(parent / "run")]) == 2
            assert f"out='{parent / 'run'}'" in one_line_error(capsys, "train")
            assert not (parent / "run").exists()
    finally:
        parent.chmod(0o755)
    # An existing directory nobody may write to, root included (procfs): refused before training.
    assert not os.access("/proc/1", os.W_OK)
    assert main(["train", *TINY, "--out", "/proc/1"]) == 2
    assert "out='/proc/1' is invalid: that directory is not writable" in one_line_error(capsys, "train")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_a_cuda_device_that_is_absent_is_one_line_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--device", "cuda", *TINY, "--out", str(out)]) == 2
    err = one_line_error(capsys, "train")
    assert "device='cuda'" in err and "no CUDA device" in err, err
    assert not out.exists()


def test_eval_refuses_to_write_over_a_runs_finished_marker(run, capsys):
    marker = (run / "eval.json").read_bytes()
    assert main(["eval", str(run), "--episodes", "8", "--json", str(run / "eval.json")]) == 2
    err = one_line_error(capsys, "eval")
    assert "json=" in err and "marks it finished" in err
    assert (run / "eval.json").read_bytes() == marker
