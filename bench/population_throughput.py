"""Population throughput: env-steps per second of training K seeds as one population
(`agents.population`: one process, the K networks batched), for several K, beside K independent
single-seed lean runs side by side (K processes, each one torch thread) where that is cheap.

A row's rate is the median over its updates (the first, a warm-up, left out) of the steps the
update trained, rollout and update included, evaluations not, summed over the seeds: what a
sweep's cells advance per second. The population runs in this process with `--threads` torch
threads; the independent runs use K processes, so K cores on a CPU.

    python bench/population_throughput.py [--device auto|cpu|cuda] [--ks 1 8 32 128] [--updates 5]
        [--num-envs 512] [--rollout-steps 32] [--hidden 256] [--method routing] [--algorithm reinforce]
        [--max-independent N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from oversight_cli.machine import describe
from oversight_cli.sweep import WORKER_ENVIRONMENT

OVERSIGHT = 0.1


def _config(seed: int, settings: dict[str, Any], updates: int):
    """A run of `updates` updates that never evaluates nor checkpoints before its end."""
    from agents.config import TrainConfig

    return TrainConfig(oversight_prob=OVERSIGHT, seed=seed, steps=updates * settings["num_envs"] * settings["rollout_steps"],
                       eval_every_steps=10**12, checkpoint_every_steps=10**12, eval_episodes=64, final_eval_episodes=64,
                       **settings)


def _median_rate(run_dir: Path, tag: str) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    rates = [e.value for e in events.Scalars(tag)]
    return statistics.median(rates[1:] or rates)


def population_rate(k: int, settings: dict[str, Any], updates: int, threads: int) -> float:
    """Env-steps/s of all K seeds together, trained as one population (in a worker process)."""
    import torch

    from agents.population import train_population

    torch.set_num_threads(threads)
    configs = [_config(seed, settings, updates) for seed in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"s{c.seed}" for c in configs]
        for d in dirs:
            d.mkdir()
        train_population(configs, dirs, progress=False)
        return _median_rate(dirs[0], "speed/population_steps_per_second")


def single_rate(seed: int, settings: dict[str, Any], updates: int, threads: int) -> float:
    """Env-steps/s of one single-seed lean run (in a worker process)."""
    import torch

    from agents.lean_trainer import train_lean

    torch.set_num_threads(threads)
    config = _config(seed, settings, updates)
    with tempfile.TemporaryDirectory() as tmp:
        train_lean(config, Path(tmp), progress=False)
        return _median_rate(Path(tmp), "speed/steps_per_second")


def in_workers(function: Callable[..., float], calls: list[tuple]) -> list[float]:
    """`function(*args)` for each `args` of `calls`, each in its own fresh process, all at once,
    in the environment a sweep's workers get."""
    os.environ.update(WORKER_ENVIRONMENT)
    with ProcessPoolExecutor(len(calls), mp_context=get_context("spawn")) as pool:
        return [future.result() for future in [pool.submit(function, *args) for args in calls]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train (default auto)")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 128], help="population sizes (default 1 8 32 128)")
    parser.add_argument("--updates", type=int, default=5, help="updates per run, the first a warm-up (default 5)")
    parser.add_argument("--num-envs", type=int, default=512, help="environments per seed (default 512)")
    parser.add_argument("--rollout-steps", type=int, default=32, help="steps per rollout window (default 32)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden width of the networks (default 256)")
    parser.add_argument("--method", default="routing", help="the method trained (default routing)")
    parser.add_argument("--algorithm", default="reinforce", help="reinforce (default) or ppo")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the population's process (default 1)")
    parser.add_argument("--max-independent", type=int, default=os.cpu_count() or 1,
                        help="largest K run as K independent processes beside the population (default: the cores)")
    args = parser.parse_args()

    import torch

    from agents.config import TrainConfig

    settings = {"device": args.device, "num_envs": args.num_envs, "rollout_steps": args.rollout_steps, "hidden": args.hidden,
                "method": args.method, "algorithm": args.algorithm, "bf16": False}
    device = TrainConfig(**settings).torch_device()
    print(describe())
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'} ({device}); "
          f"{args.method} {args.algorithm}, {args.num_envs} envs x {args.rollout_steps} steps per seed, hidden {args.hidden}, "
          f"fp32, {args.updates} updates per run; population: one process, {args.threads} torch thread(s)")
    print(f"{'K':>5} {'population steps/s':>19} {'per seed':>10} {'K independent runs':>19} {'population / independent':>25}")
    for k in args.ks:
        (together,) = in_workers(population_rate, [(k, settings, args.updates, args.threads)])
        apart = None
        if k <= args.max_independent:
            apart = sum(in_workers(single_rate, [(seed, settings, args.updates, 1) for seed in range(k)]))
        shown = f"{apart:>19,.0f} {together / apart:>24.2f}x" if apart else f"{'(not run)':>19} {'':>25}"
        print(f"{k:>5} {together:>19,.0f} {together / k:>10,.0f} {shown}", flush=True)


if __name__ == "__main__":
    main()
