"""`oversight sweep SPEC`: train every cell of an experiment, then write its report.

Cells run in local worker processes (default: one per core, each with one torch thread, which
beats fewer processes with more threads on small networks) or as Ray tasks (`backend="ray"`,
joining the cluster at `address`, or a local Ray instance when none is given). Every cell trains
in its own run directory, `<out>/<method>/p<oversight>/s<seed>/`, so a sweep started again skips
finished cells and continues unfinished ones from their last checkpoint: killed at any point, it
ends with the same results as an uninterrupted sweep (`sweeps.json` records each piece's wall
time and machine: `analysis.sweep_log`). Local workers end with the sweep's main process,
however it ends (even SIGKILL), so a sweep started again never trains beside orphans of the last
one; and each cell's directory is locked while it trains, so two sweeps on one directory cannot
train the same cell: the second reports that cell as failed.

With `population` on, cells that differ only in their seed and oversight level (and train the
same budget) train as one program (`agents.lean_trainer.train_members`: one process, one twin of
every member's environments, the members' networks stacked), at most `member_capacity` cells
each: on CUDA as many as half the free device memory holds, on a CPU 64. "auto", the default,
turns it on when the cells' device resolves to CUDA; on a CPU the sweep keeps one process per
core, which no measurement of populations there has beaten yet. A population fails or finishes
as a whole: a cell of it that another process is training fails the others too, and a rerun
retries them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.config import TrainConfig
from agents.files import make_output_dir, write_json_atomic
from agents.methods import get_method
from oversight_cli.spec import ExperimentSpec
from analysis.sweep_log import SweepLog
from oversight_env.spec import invalid_argument

BACKENDS = ("local", "ray")
POPULATION = ("auto", "on", "off")

# Set for worker processes before they start: glibc reads these once, at process start. Large
# rollout batches otherwise pay page faults on every freed-and-reallocated buffer.
WORKER_ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "OMP_NUM_THREADS": "1",
}

Job = tuple[dict[str, Any], str]  # (TrainConfig fields, cell directory)
Task = tuple[Callable[..., Any], tuple[Any, ...], list[str]]  # (worker function, its arguments, the cells it trains)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 0.5


def end_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep's process `parent` ends, however it ends.
    Killed with SIGKILL, a sweep cannot stop its workers itself, and orphaned workers would go on
    training queued cells beside the sweep started again."""
    set_parent_death_signal()
    watch_parent(parent)
    if os.getppid() != parent:  # the parent died before either was in place
        os._exit(1)


def set_parent_death_signal() -> bool:
    """Linux: have the kernel SIGKILL this process the moment its parent dies (even while it is
    busy in C code). Returns whether that was set; False on other systems. (The kernel ties it to
    the parent's thread that started this process: the pool starts workers from the thread that
    submits the cells, which waits for them.)"""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, interval: float = PARENT_POLL_SECONDS) -> None:
    """The portable fallback: a daemon thread that ends this process once its parent is no longer
    `parent` (an orphan is adopted by another process)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def train_cell(config: dict[str, Any], cell_dir: str) -> str:
    """Train one cell (resuming or skipping as its directory says); runs in a worker."""
    import torch

    from agents.train import train

    torch.set_num_threads(1)
    train(TrainConfig(**config), cell_dir, progress=False)
    return cell_dir


def train_population_cells(configs: list[dict[str, Any]], cell_dirs: list[str]) -> list[str]:
    """Train cells as the members of one program (resuming or skipping each as its directory
    says); runs in a worker."""
    import torch

    from agents.train import train_members

    torch.set_num_threads(1)
    train_members([TrainConfig(**config) for config in configs], cell_dirs, progress=False)
    return cell_dirs


#: The most members a population holds on a CPU.
CPU_CAPACITY = 64


def member_capacity(config: TrainConfig) -> int:
    """How many cells like `config` one population holds: on CUDA, as many as half the free
    device memory holds by an upper estimate of a member's rollout buffers, samples, activations
    and optimizer state; on a CPU, `CPU_CAPACITY`."""
    import math

    import torch

    from oversight_env import make_oversight_env

    if config.torch_device().type != "cuda":
        return CPU_CAPACITY
    env = make_oversight_env(config.env_id, **config.env_kwargs)
    obs = math.prod(env.observation_space.shape)
    env.close()
    samples = config.num_envs * config.rollout_steps
    per_sample = 4 * (obs * (3 + get_method(config.method).sees_endings) + 12 * config.hidden)
    parameters = 4 * 4 * (2 * (obs + config.hidden) * config.hidden + obs * (obs + 16) + 16 * obs * 256)
    free, _ = torch.cuda.mem_get_info()
    return max(1, int(free // 2 // (samples * per_sample + parameters)))


def population_groups(jobs: list[Job], capacity: int | None = None) -> list[list[Job]]:
    """`jobs` grouped into populations: jobs whose configs differ only in `seed` and
    `oversight_prob` and that train the same budget (`agents.lean_trainer.check_members`) share a
    group, at most `capacity` jobs each (default: `member_capacity` of the first). Groups come in
    the order of their first job, jobs within a group in their order; a job of the sb3 trainer
    (one seed per process) is a group of its own."""
    from agents.lean_trainer import MEMBER_SETTINGS

    groups: dict[str, list[Job]] = {}
    for config, cell_dir in jobs:
        budget = get_method(config["method"]).training_steps(config["steps"], config["oversight_prob"])
        key = json.dumps({**{k: v for k, v in config.items() if k not in MEMBER_SETTINGS}, "budget": budget},
                         sort_keys=True)
        groups.setdefault(f"one cell: {cell_dir}" if config["trainer"] != "lean" else key, []).append((config, cell_dir))
    sized = []
    for group in groups.values():
        size = capacity or member_capacity(TrainConfig(**group[0][0]))
        sized += [group[i:i + size] for i in range(0, len(group), size)]
    return sized


def population_on(population: str, config: TrainConfig) -> bool:
    """Whether a sweep of cells like `config` trains populations: "on", "off", or "auto" (on
    when the cells' device resolves to CUDA on this machine)."""
    if population not in POPULATION:
        raise invalid_argument("population", population, f"expected one of {POPULATION}")
    if population != "auto":
        return population == "on"
    try:
        return config.torch_device().type == "cuda"
    except ValueError:  # device="cuda" without CUDA: each cell fails with that error, as without populations
        return False


def tasks(jobs: list[Job], population: bool) -> list[Task]:
    """What the workers run: one task per cell, or with `population` one per group of cells that
    differ only in seed (a group of one trains as a plain cell)."""
    if not population:
        return [(train_cell, (config, cell_dir), [cell_dir]) for config, cell_dir in jobs]
    return [(train_cell, group[0], [group[0][1]]) if len(group) == 1
            else (train_population_cells, ([c for c, _ in group], [d for _, d in group]), [d for _, d in group])
            for group in population_groups(jobs)]


def run_sweep(
    spec: ExperimentSpec,
    out_dir: str | Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    population: str = "auto",
) -> Path:
    """Train every unfinished cell of `spec` (with `population` on, the seeds of a cell together:
    see the module docstring), write the report, and return the report's path."""
    from analysis.report import write_report

    if backend not in BACKENDS:
        raise invalid_argument("backend", backend, f"expected one of {BACKENDS}")
    if population not in POPULATION:
        raise invalid_argument("population", population, f"expected one of {POPULATION}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise invalid_argument("workers", workers, "expected an integer >= 1")
    out = make_output_dir(out_dir or Path("runs") / spec.name)
    cells = spec.cells()
    write_json_atomic(out / "experiment.json", experiment_record(spec))
    for env in spec.envs if spec.several_envs else ():
        make_output_dir(out / env.name)
        write_json_atomic(out / env.name / "experiment.json", experiment_record(spec, env.name))
    todo = [(cell, spec.config(cell)) for cell in cells if not (out / cell.path() / "eval.json").exists()]
    todo.sort(key=lambda job: _expected_cost(job[1]), reverse=True)  # longest first, so the last to finish are short
    jobs = [(config.to_json(), str(out / cell.path())) for cell, config in todo]
    bar = tqdm(total=len(cells), initial=len(cells) - len(jobs), unit="cell", disable=not progress, desc=spec.name)
    failures: list[str] = []
    if jobs:
        log = SweepLog(out, backend, workers or (os.cpu_count() if backend == "local" else None), len(jobs))

    def finished(cell_dir: str, error: BaseException | None) -> None:
        bar.update(1)
        log.cell_done(failed=error is not None)
        if error is not None:
            failures.append(f"{Path(cell_dir).relative_to(out)}: {_one_line(error)}")
            bar.write(f"cell failed: {failures[-1]}", file=sys.stderr)

    if jobs:
        run = _run_local if backend == "local" else _run_ray
        run(tasks(jobs, population_on(population, todo[0][1])), finished, workers=workers, address=address, tick=log.tick)
        log.close()
    bar.close()
    if not failures:
        return write_report(out)
    if any((out / cell.path() / "eval.json").exists() for cell in cells):
        write_report(out)  # of the cells that finished; it lists the failed ones as missing
    raise RuntimeError(failure_summary(failures, len(cells)))


def experiment_record(spec: ExperimentSpec, env: str | None = None) -> dict[str, Any]:
    """What `experiment.json` holds: the spec's settings and every cell it expects, so that a
    report can list the cells that are missing. In a spec of several environments, the
    experiment's record names them (`envs`), and each environment's directory has a record of
    its own (`env`: its name), with its cells' paths inside it."""
    if spec.several_envs and env is None:
        return {"name": spec.name, "description": spec.description, "preset": spec.preset,
                "envs": [{"name": e.name, "id": e.id, "kwargs": e.kwargs} for e in spec.envs]}
    cells = [c for c in spec.cells() if c.env == env]
    entry = spec.env_of(cells[0])
    # The settings every cell shares (all but method, oversight and seed): what the tidy table's rows
    # were trained with, for readers that have only the table (the ladder).
    shared = {k: v for k, v in spec.config(cells[0]).to_json().items() if k not in ("method", "oversight_prob", "seed")}
    return {"name": spec.name if env is None else f"{spec.name}/{env}", "description": spec.description,
            "env_id": entry.id, "env_kwargs": entry.kwargs, "preset": spec.preset, "steps": spec.config(cells[0]).steps,
            "config": shared,
            "cells": [{"method": c.method, "oversight": c.oversight, "seed": c.seed,
                       "path": c.path() if env is None else c.path().removeprefix(f"{env}/")} for c in cells]}


def failure_summary(failures: list[str], cells: int, shown: int = 3) -> str:
    """One line: how many cells failed, why (the first few), and that a rerun retries them."""
    more = f"; and {len(failures) - shown} more, listed above" if len(failures) > shown else ""
    return (f"{len(failures)} of {cells} cells failed ({'; '.join(failures[:shown])}{more}); "
            "run the sweep again to retry them (finished cells are kept)")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"


def _expected_cost(config: TrainConfig) -> float:
    """Relative training time of a cell: its steps, times two for the two-expert networks."""
    method = get_method(config.method)
    return method.training_steps(config.steps, config.oversight_prob) * len(method.experts)


# How often a running sweep saves its time in sweeps.json, so that a killed one records its work.
HEARTBEAT_SECONDS = 30.0


def _run_local(jobs: list[Task], finished: Callable, workers: int | None, address: str | None,
               tick: Callable[[], None] = lambda: None) -> None:
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    previous = {k: os.environ.get(k) for k in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)  # inherited by the workers started below
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                 initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
            pending = {pool.submit(function, *args): cell_dirs for function, args, cell_dirs in jobs}
            try:
                while pending:
                    done, _ = wait(pending, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
                    tick()
                    for future in done:
                        for cell_dir in pending.pop(future):
                            finished(cell_dir, future.exception())
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


def _run_ray(jobs: list[Task], finished: Callable, workers: int | None, address: str | None,
             tick: Callable[[], None] = lambda: None) -> None:
    try:
        import ray
    except ImportError:
        raise invalid_argument("backend", "ray", "Ray is not installed: pip install 'oversight-testbed[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": WORKER_ENVIRONMENT}, log_to_driver=False)
    remotes: dict[Callable, Any] = {}
    pending = {}
    for function, args, cell_dirs in jobs:
        if function not in remotes:
            # Ray hides the GPUs from a task that asks for none: a population on CUDA asks for one.
            gpu = function is train_population_cells and population_on("auto", TrainConfig(**args[0][0]))
            remotes[function] = ray.remote(num_cpus=1, **({"num_gpus": 1} if gpu else {}))(function)
        pending[remotes[function].remote(*args)] = cell_dirs
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=HEARTBEAT_SECONDS)
        tick()
        for ref in done:
            try:
                ray.get(ref)
                error = None
            except Exception as failure:  # a failed cell (or population): report it, keep the others going
                error = failure
            for cell_dir in pending.pop(ref):
                finished(cell_dir, error)

