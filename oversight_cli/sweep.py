"""`oversight sweep SPEC`: train every cell of an experiment, then write its report.

Cells run in local worker processes (default: one per core, each with one torch thread, which
beats fewer processes with more threads on small networks) or as Ray tasks (`backend="ray"`,
joining the cluster at `address`, or a local Ray instance when none is given). Every cell trains
in its own run directory, `<out>/<method>/p<oversight>/s<seed>/`, so a sweep started again skips
finished cells and continues unfinished ones from their last checkpoint: killed at any point, it
ends with the same results as an uninterrupted sweep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.config import TrainConfig
from agents.methods import get_method
from agents.files import make_output_dir, write_json_atomic
from oversight_cli.spec import ExperimentSpec
from oversight_env.spec import invalid_argument

BACKENDS = ("local", "ray")

# Set for worker processes before they start: glibc reads these once, at process start. Large
# rollout batches otherwise pay page faults on every freed-and-reallocated buffer.
WORKER_ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "OMP_NUM_THREADS": "1",
}

Job = tuple[dict[str, Any], str]  # (TrainConfig fields, cell directory)


def train_cell(config: dict[str, Any], cell_dir: str) -> str:
    """Train one cell (resuming or skipping as its directory says); runs in a worker."""
    import torch

    from agents.train import train

    torch.set_num_threads(1)
    train(TrainConfig(**config), cell_dir, progress=False)
    return cell_dir


def run_sweep(
    spec: ExperimentSpec,
    out_dir: str | Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> Path:
    """Train every unfinished cell of `spec`, write the report, and return the report's path."""
    from oversight_cli.report import write_report

    if backend not in BACKENDS:
        raise invalid_argument("backend", backend, f"expected one of {BACKENDS}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise invalid_argument("workers", workers, "expected an integer >= 1")
    out = make_output_dir(out_dir or Path("runs") / spec.name)
    cells = spec.cells()
    write_json_atomic(out / "experiment.json", experiment_record(spec))
    todo = [(cell, spec.config(cell)) for cell in cells if not (out / cell.path() / "eval.json").exists()]
    todo.sort(key=lambda job: _expected_cost(job[1]), reverse=True)  # longest first, so the last to finish are short
    jobs = [(config.to_json(), str(out / cell.path())) for cell, config in todo]
    bar = tqdm(total=len(cells), initial=len(cells) - len(jobs), unit="cell", disable=not progress, desc=spec.name)
    failures: list[str] = []

    def finished(cell_dir: str, error: BaseException | None) -> None:
        bar.update(1)
        if error is not None:
            failures.append(f"{Path(cell_dir).relative_to(out)}: {type(error).__name__}: {error}")
            bar.write(f"cell {failures[-1]}")

    if jobs:
        run = _run_local if backend == "local" else _run_ray
        run(jobs, finished, workers=workers, address=address)
    bar.close()
    report = write_report(out)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(cells)} cells failed ({failures[0]}); run the sweep again to retry them")
    return report


def experiment_record(spec: ExperimentSpec) -> dict[str, Any]:
    """What `experiment.json` holds: the spec's settings and every cell it expects, so that a
    report can list the cells that are missing."""
    cells = spec.cells()
    return {"name": spec.name, "description": spec.description, "env_id": spec.env_id, "env_kwargs": spec.env_kwargs,
            "preset": spec.preset, "steps": spec.config(cells[0]).steps,
            "cells": [{"method": c.method, "oversight": c.oversight, "seed": c.seed, "path": c.path()} for c in cells]}


def _expected_cost(config: TrainConfig) -> float:
    """Relative training time of a cell: its steps, times two for the two-expert networks."""
    method = get_method(config.method)
    return method.training_steps(config.steps, config.oversight_prob) * len(method.experts)


def _run_local(jobs: list[Job], finished: Callable, workers: int | None, address: str | None) -> None:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    previous = {k: os.environ.get(k) for k in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)  # inherited by the workers started below
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            pending = {pool.submit(train_cell, config, cell_dir): cell_dir for config, cell_dir in jobs}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        finished(pending.pop(future), future.exception())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_ray(jobs: list[Job], finished: Callable, workers: int | None, address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise invalid_argument("backend", "ray", "Ray is not installed: pip install 'oversight-testbed[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": WORKER_ENVIRONMENT}, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(train_cell)
    pending = {remote.remote(config, cell_dir): cell_dir for config, cell_dir in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            try:
                ray.get(ref)
                finished(pending.pop(ref), None)
            except Exception as error:  # a failed cell: report it, keep the others going
                finished(pending.pop(ref), error)

