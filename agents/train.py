"""`train(config, out_dir)`: one entry point for every trainer, with resume and finished-run reuse;
`train_members(configs, out_dirs)`: the same for the cells of one method and environment (seeds,
oversight levels) trained as one program, the members of `agents.lean_trainer.train_members`;
`write_evaluation(s)`: the final evaluation of every variant, written as the run's `eval.json`, and
one episode of the evaluated policy, recorded for reports (`agents.episodes`)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.episodes import EPISODE, record_episode
from agents.evaluator import evaluate_members, variant_name
from agents.files import write_json_atomic
from agents.methods import get_method
from agents.networks import ActorCritic
from agents.provenance import code_version
from agents.run_dir import (
    CHECKPOINT,
    EVALUATION,
    is_finished,
    locked,
    prepare_run_dir,
    read_evaluation,
    removed_if_unwritable,
)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` in `out_dir` and return its final evaluation report.

    A directory holding a finished run of the same config returns that run's report; one holding
    an unfinished run continues from its last checkpoint; one holding another config, or being
    trained by another process right now, is an error.
    """
    out_dir = Path(out_dir)
    config.torch_device()  # a device this machine lacks is an error before the run directory exists
    with removed_if_unwritable(out_dir):
        prepare_run_dir(config, out_dir)
        with locked(out_dir):
            if is_finished(out_dir):
                return read_evaluation(out_dir)
            if config.trainer == "sb3":
                from agents.sb3 import train_sb3 as trainer
            else:
                from agents.lean_trainer import train_lean as trainer
            net, env_steps = trainer(config, out_dir, progress)
            return write_evaluation(net, config, out_dir, env_steps, progress)


def train_members(configs: Sequence[TrainConfig], out_dirs: Sequence[str | Path], progress: bool = True) -> list[dict[str, Any]]:
    """`train` for configs that may train as one program (`agents.lean_trainer.check_members`: they
    differ only in seed and oversight level): each in its own run directory, prepared and locked
    like `train`'s; finished ones return their reports, the rest train together, and each gets its
    evaluation. Returns the reports, in order.

    Members whose checkpoints stand at different steps (a program killed while writing them)
    train as one program per step. A directory another process is training is an error before
    anything trains.
    """
    from agents.files import load_checkpoint
    from agents.lean_trainer import check_members
    from agents.lean_trainer import train_members as train_together

    configs, out_dirs = list(configs), [Path(d) for d in out_dirs]
    check_members(configs, out_dirs)
    configs[0].torch_device()
    reports: dict[int, dict[str, Any]] = {}
    with ExitStack() as locks:
        for out_dir in out_dirs:
            locks.enter_context(removed_if_unwritable(out_dir))
        for config, out_dir in zip(configs, out_dirs):
            prepare_run_dir(config, out_dir)
        for out_dir in out_dirs:
            locks.enter_context(locked(out_dir))
        by_step: dict[int, list[int]] = {}
        for i, out_dir in enumerate(out_dirs):
            if is_finished(out_dir):
                reports[i] = read_evaluation(out_dir)
            else:
                checkpoint = out_dir / CHECKPOINT
                step = load_checkpoint(checkpoint)["state"]["env_steps"] if checkpoint.exists() else 0
                by_step.setdefault(step, []).append(i)
        for group in by_step.values():
            trained = train_together([configs[i] for i in group], [out_dirs[i] for i in group], progress)
            written = write_evaluations([net for net, _ in trained], [configs[i] for i in group],
                                        [out_dirs[i] for i in group], [steps for _, steps in trained], progress)
            reports.update(zip(group, written))
    return [reports[i] for i in range(len(configs))]


def write_evaluation(net: ActorCritic, config: TrainConfig, out_dir: Path, env_steps: int,
                     progress: bool = False) -> dict[str, Any]:
    """Evaluate the trained policy (every variant), write `eval.json` and return it. `env_steps`
    is what the run actually trained, which the report records."""
    return write_evaluations([net], [config], [out_dir], [env_steps], progress)[0]


def write_evaluations(nets: Sequence[ActorCritic], configs: Sequence[TrainConfig], out_dirs: Sequence[Path],
                      env_steps: Sequence[int], progress: bool = False) -> list[dict[str, Any]]:
    """`write_evaluation` for the members of one program (configs that differ at most in seed and
    oversight level), their episodes played together (`agents.evaluator.evaluate_members`)."""
    config, method = configs[0], get_method(configs[0].method)
    evaluations = evaluate_members(
        nets, config.env_id, config.final_eval_episodes, [1_000_000 + c.seed for c in configs],
        oversight_probs=[c.oversight_prob for c in configs], env_kwargs=config.env_kwargs, gamma=config.gamma,
        progress=progress,
    )
    reports, code = [], code_version()
    for net, member, out_dir, steps, variants in zip(nets, configs, out_dirs, env_steps, evaluations):
        report = {
            "config": member.to_json(),
            "evaluated_variant": variant_name(method.evaluate_without),
            "env_steps": int(steps),
            "variants": variants,
            "code": code,  # the commit that produced it (agents.provenance)
        }
        write_json_atomic(out_dir / EPISODE, record_episode(net, member, method.evaluate_without))
        write_json_atomic(out_dir / EVALUATION, report)  # last: the run is finished when it exists
        reports.append(report)
    return reports
