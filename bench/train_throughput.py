"""Training throughput and steps-to-threshold, every trainer on the same routed network, in one run.

Part 1 prints env-steps per second of training (rollout + update; evaluations excluded) for
  (a) SB3 RoutedPPO on MiniGrid environments (DummyVecEnv, 8 envs x 256 steps),
  (b) SB3 RoutedPPO on the batched twin (512 envs x 32 steps),
  (c) the lean trainer with PPO and with REINFORCE, each in fp32 and bf16, at the fast defaults,
  (d) the lean trainer with the "paper" preset (512 envs x 32 steps, one REINFORCE update per
      batch, fp32), which moves with every change to the lean trainer,
  (e) the frozen reference loop (`bench/reference_loop.py`: the published shape in plain torch, no
      project code), which does not,
and each one's ratio to (e). Every row is one process with one torch thread; a sweep runs one
such process per core.

Part 2 prints the whole-run time of a routed cell at the defaults (`train()`: rollouts, updates,
periodic and final evaluations; `--whole-run-steps`, default 2M) against the frozen reference
loop training the same number of steps.

Part 3 prints steps-to-threshold: environment steps until the routing agent's ablated policy
(the evaluated one) first reaches `--threshold` mean discounted return per step at 10% oversight,
for the fast defaults and for the paper preset (capped at `--paper-steps`; the paper trained
330M). Both runs go side by side in two one-thread processes.

    python bench/train_throughput.py [--seconds 15] [--whole-run-steps 2000000] [--skip-whole-run]
                                     [--threshold 0.45] [--paper-steps 3000000] [--skip-threshold]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

# Modules beside this script (its directory is on sys.path when it runs).
import reference_loop

from analysis.machine import describe
from oversight_cli.sweep import WORKER_ENVIRONMENT

ENV_ID = "OversightGrid/DiamondGhost-5x5-v0"
OVERSIGHT = 0.1


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def sb3_rate(on_twin: bool, seconds: float) -> float:
    """Env-steps/s of RoutedPPO's `learn` (4 epochs, 4 minibatches), after one warm-up rollout."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.sb3 import RoutedPPO
    from agents.sb3_env import make_twin_vec_env

    kwargs = {"oversight_prob": OVERSIGHT, "reward": "outcome"}
    if on_twin:
        env, n_steps = make_twin_vec_env(ENV_ID, 512, seed=0, **kwargs), 32
    else:
        env, n_steps = DummyVecEnv([lambda: gym.make(ENV_ID, **kwargs) for _ in range(8)]), 256
    batch = env.num_envs * n_steps
    model = RoutedPPO(env, method="routing", n_steps=n_steps, batch_size=batch // 4, n_epochs=4, seed=0, device="cpu")
    with tempfile.TemporaryDirectory() as logs:
        os.environ["SB3_LOGDIR"] = logs  # SB3 otherwise leaves an empty SB3-<date> directory per `learn`
        model.learn(batch)  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.learn(batch, reset_num_timesteps=False)
            steps += batch
        rate = steps / (time.perf_counter() - start)
        del os.environ["SB3_LOGDIR"]
    return rate


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(env step, value) of one scalar a run logged (its `metrics.jsonl`)."""
    from agents.logger import METRICS, read_metrics

    return [(r["step"], r["value"]) for r in read_metrics(run_dir / METRICS)[0] if r["tag"] == tag]


def lean_rate(preset: str, seconds: float, **settings) -> float:
    """Median env-steps/s over the updates of a lean-trainer run of about `seconds`, read back
    from the run's own `speed/steps_per_second` log (evaluations are not in it)."""
    from agents.config import TrainConfig
    from agents.train import train

    config = TrainConfig.from_preset(preset, method="routing", oversight_prob=OVERSIGHT, eval_every_steps=10**12,
                                     final_eval_episodes=64, eval_episodes=64, **settings)
    batches = max(3, round(seconds * 30_000 / config.batch_steps))  # ~30k steps/s: a first guess
    config = dataclasses.replace(config, steps=batches * config.batch_steps)
    with tempfile.TemporaryDirectory() as tmp:
        train(config, Path(tmp) / "run", progress=False)
        rates = [value for _, value in _scalars(Path(tmp) / "run", "speed/steps_per_second")][1:]  # 1st: warm-up
    return statistics.median(rates)


def reference_rate(seconds: float) -> float:
    """Env-steps/s of the frozen reference loop over about `seconds` (after a one-batch warm-up)."""
    batch = reference_loop.ENVS * reference_loop.WINDOW
    reference_loop.train(batch)
    steps = max(3, round(seconds * 25_000 / batch)) * batch
    return steps / reference_loop.train(steps)


def whole_run_seconds(steps: int) -> float:
    """Wall time of `train()` for a routed cell at the defaults: everything a sweep cell does."""
    from agents.config import TrainConfig
    from agents.train import train

    config = TrainConfig(method="routing", oversight_prob=OVERSIGHT, steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(config, Path(tmp) / "run", progress=False)
        return time.perf_counter() - start


def steps_to_threshold(preset: str, steps: int | None, threshold: float, out: str) -> tuple[int | None, float, int]:
    """(first env step at which the evaluated policy reached `threshold` or None, best value, steps run)."""
    _one_thread()
    from agents.config import TrainConfig
    from agents.train import train

    budget = {} if steps is None else {"steps": steps}
    config = TrainConfig.from_preset(preset, method="routing", oversight_prob=OVERSIGHT, eval_every_steps=250_000,
                                     final_eval_episodes=64, **budget)
    train(config, Path(out), progress=False)
    curve = _scalars(Path(out), "eval/discounted_return_per_step")
    reached = next((step for step, value in curve if value >= threshold), None)
    return reached, max(value for _, value in curve), config.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per throughput row")
    parser.add_argument("--threshold", type=float, default=0.45, help="ablated routing's return per step to reach")
    parser.add_argument("--paper-steps", type=int, default=3_000_000, help="step cap of the paper preset's run")
    parser.add_argument("--whole-run-steps", type=int, default=2_000_000, help="steps of the whole-run comparison")
    parser.add_argument("--skip-whole-run", action="store_true", help="no whole-run comparison")
    parser.add_argument("--skip-threshold", action="store_true", help="no steps-to-threshold runs")
    args = parser.parse_args()
    _one_thread()

    rows = [
        ("(a) SB3 RoutedPPO, MiniGrid envs (8 x 256)", lambda: sb3_rate(False, args.seconds)),
        ("(b) SB3 RoutedPPO, batched twin (512 x 32)", lambda: sb3_rate(True, args.seconds)),
        ("(c) lean PPO fp32", lambda: lean_rate("fast", args.seconds, algorithm="ppo", bf16=False)),
        ("(c) lean PPO bf16", lambda: lean_rate("fast", args.seconds, algorithm="ppo", bf16=True)),
        ("(c) lean REINFORCE fp32", lambda: lean_rate("fast", args.seconds, bf16=False)),
        ("(c) lean REINFORCE bf16", lambda: lean_rate("fast", args.seconds, bf16=True)),
        ("(d) lean trainer, paper preset", lambda: lean_rate("paper", args.seconds)),
        ("(e) frozen reference loop", lambda: reference_rate(args.seconds)),
    ]
    print(describe())
    print(f"training throughput, routed network, {ENV_ID}, oversight {OVERSIGHT}, one process, one torch thread")
    rates = {}
    for name, measure in rows:
        rates[name] = measure()
        print(f"  measured {name}: {rates[name]:,.0f} steps/s", flush=True)
    baseline = rates[rows[-1][0]]
    print(f"\n{'trainer':<44} {'env-steps/s':>12} {'vs (e)':>8}")
    for name, rate in rates.items():
        print(f"{name:<44} {rate:>12,.0f} {rate / baseline:>7.2f}x")

    if not args.skip_whole_run:
        steps = args.whole_run_steps
        ours, frozen = whole_run_seconds(steps), reference_loop.train(steps)
        print(f"\nwhole run, {steps:,} steps, routing at {OVERSIGHT:.0%} oversight, one thread:")
        print(f"  train() at the defaults (evaluations included): {ours:7.1f} s")
        print(f"  frozen reference loop (no evaluations):         {frozen:7.1f} s")
        print(f"  speed-up: {frozen / ours:.2f}x")
    if args.skip_threshold:
        return
    print(f"\nsteps to threshold: routing (proxy expert ablated) at {OVERSIGHT:.0%} oversight reaching "
          f"{args.threshold} discounted return per step (evaluated every 250k steps, 2048 episodes)")
    os.environ.update(WORKER_ENVIRONMENT)  # what the sweep's workers get
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        start = time.perf_counter()
        runs = {preset: pool.submit(steps_to_threshold, preset, steps, args.threshold, f"{tmp}/{preset}")
                for preset, steps in (("fast", None), ("paper", args.paper_steps))}
        results = {preset: future.result() for preset, future in runs.items()}
        print(f"(both runs side by side: {time.perf_counter() - start:.0f} s)")
    print(f"{'settings':<10} {'steps to threshold':>20} {'best value':>11} {'steps run':>11}")
    for preset, (reached, best, ran) in results.items():
        shown = f"{reached / 1e6:.2f}M" if reached is not None else f"> {ran / 1e6:.1f}M"
        print(f"{preset:<10} {shown:>20} {best:>11.3f} {ran / 1e6:>10.1f}M")


if __name__ == "__main__":
    main()
