"""Environment throughput: the MiniGrid environment against the batched twin, in one run.

By default, one table over every built-in environment: env-steps per second of one MiniGrid
environment (`OversightGridEnv`, random actions, reset when done) and of its twin at 4096
environments (autoreset included), and their ratio (the zoo's goal: >= 100x).

With `--env ID`, that environment at batch sizes 1, 64, 512 and 4096:
  - MiniGrid: that many `OversightGridEnv`s in gymnasium's SyncVectorEnv (autoreset), and
  - twin: one `BatchedOversightEnv` of that batch size (autoreset included),
each one's ratio to a single MiniGrid environment measured in the same run, and the twin's ratio
to the MiniGrid environments at the same batch size.

    python bench/env_throughput.py [--env all|ID] [--seconds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import oversight_env
from analysis.machine import describe

BATCH_SIZES = (1, 64, 512, 4096)


def steps_per_second(step, batch: int, seconds: float) -> float:
    """Call `step()` (which advances `batch` environments) until `seconds` pass; return env-steps/s."""
    step()  # warm-up
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls * batch / elapsed


def minigrid_rate(env_id: str, batch: int, seconds: float) -> float:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(batch)])
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 4, size=batch) for _ in range(64)]
    counter = iter(range(10**12))
    rate = steps_per_second(lambda: envs.step(actions[next(counter) % 64]), batch, seconds)
    envs.close()
    return rate


def twin_rate(env_id: str, batch: int, seconds: float) -> float:
    twin = oversight_env.make_batched(env_id, batch, seed=0)
    generator = torch.Generator().manual_seed(0)
    actions = [torch.randint(0, 4, (batch,), generator=generator) for _ in range(64)]
    counter = iter(range(10**12))
    return steps_per_second(lambda: twin.step(actions[next(counter) % 64]), batch, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="all", help="all (default: every built-in environment at 4096) or one id")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per cell")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.env == "all":
        every_environment(args.seconds, args.threads)
        return

    rows = [(batch, minigrid_rate(args.env, batch, args.seconds), twin_rate(args.env, batch, args.seconds))
            for batch in BATCH_SIZES]
    baseline = rows[0][1]
    print(describe())
    print(f"{args.env}, torch threads {args.threads}; ratio = x single MiniGrid env ({baseline:,.0f} steps/s)")
    print(f"{'batch':>6} | {'MiniGrid steps/s':>17} | {'ratio':>6} | {'twin steps/s':>13} | {'ratio':>7} | twin/MiniGrid")
    for batch, minigrid, twin in rows:
        print(
            f"{batch:>6} | {minigrid:>17,.0f} | {minigrid / baseline:>6.2f} | {twin:>13,.0f} | "
            f"{twin / baseline:>7.1f} | {twin / minigrid:>13.1f}"
        )


def every_environment(seconds: float, threads: int) -> None:
    print(describe())
    print(f"torch threads {threads}; twin at 4096 environments; ratio = twin / one MiniGrid environment")
    print(f"{'environment':<44} | {'MiniGrid steps/s':>16} | {'twin steps/s':>13} | {'ratio':>6}")
    for env_id in oversight_env.BUILTIN_ENV_IDS:
        single, twin = minigrid_rate(env_id, 1, seconds), twin_rate(env_id, 4096, seconds)
        print(f"{env_id:<44} | {single:>16,.0f} | {twin:>13,.0f} | {twin / single:>6.0f}")


if __name__ == "__main__":
    main()
