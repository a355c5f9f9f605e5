"""GPU throughput: env-steps per second of K members (`agents.lean_trainer.train_members`: K runs
as one program on one twin of K x N environments, the K networks stacked), for several K, in three
parts, each summed over the K members:

- env: the twin of K members x `--num-envs` environments stepped with random actions (drawn on the
  device), over `--env-steps` steps after a few warm-up steps;
- network: the K networks stacked (`agents.stacked.StackedNetworks`, the method's experts), forward
  passes without gradient on (K, num_envs) observations (a rollout step's), and forward+backward
  (the sum of logits and values as the loss) on (K, num_envs x rollout_steps) (an update's), in
  samples per second;
- trainer: `train_members` of K configs (seeds 0..K-1, 10% oversight) in a fresh worker process,
  the median over its updates (the first, a warm-up, left out) of the rate it logs
  (`speed/member_steps_per_second`, or `speed/steps_per_second` for K = 1: rollout and update,
  evaluations not); "run s" is the worker's whole `train_members` call (set-up, updates, the final
  evaluations and checkpoints). Where K <= `--max-independent` (default: the cores on a CPU, none
  on CUDA), also K independent lone runs in K processes side by side (one torch thread each),
  their rates summed, and the ratio of the members' rate to theirs.

A row is printed as each K finishes; a part that runs out of CUDA memory reads "out of memory" and
the next K is tried. The env and network parts run in this process with `--threads` torch threads,
the trainer in a worker with as many. The figures depend on the machine (printed first) and on
what else runs on it: compare only rows of one run.

    python bench/gpu_throughput.py [--device auto|cpu|cuda] [--ks 1 16 64 256 512] [--method routing]
        [--algorithm reinforce] [--env OversightGrid/DiamondGhost-5x5-v0] [--updates 5] [--num-envs 512]
        [--rollout-steps 32] [--hidden 256] [--env-steps 64] [--bf16] [--threads 1] [--max-independent N]
        [--skip env network trainer]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from analysis.machine import describe
from oversight_cli.sweep import WORKER_ENVIRONMENT

OVERSIGHT = 0.1
WARMUP_STEPS = 3  # env steps and forward passes before the timed ones
BACKWARD_REPEATS = 3  # timed forward+backward passes (after one warm-up)
PARTS = ("env", "network", "trainer")
OUT_OF_MEMORY = "out of memory"


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is CUDA running out of memory (cuBLAS and friends say so in a RuntimeError)."""
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or (isinstance(error, RuntimeError) and "out of memory" in str(error))


def free_memory() -> None:
    """Hand this process's cached CUDA memory back (a no-op without CUDA)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_for(method_name: str, target: int) -> int:
    """The comparison budget under which `method_name` trains exactly `target` steps at OVERSIGHT
    (the oracle trains oversight x steps)."""
    from agents.methods import get_method

    method = get_method(method_name)
    guess = round(target * 10**9 / method.training_steps(10**9, OVERSIGHT))
    for steps in sorted(range(max(1, guess - 20), guess + 21), key=lambda s: abs(s - guess)):
        if method.training_steps(steps, OVERSIGHT) == target:
            return steps
    raise ValueError(f"no budget makes {method_name} train {target} steps at oversight {OVERSIGHT}")


# ---- env and network: in this process


def env_rate(k: int, args: argparse.Namespace, device) -> float:
    """Env-steps/s of the twin of K members x num_envs environments, random actions."""
    import torch

    import oversight_env
    from agents.methods import get_method

    twin = oversight_env.make_batched(args.env, args.num_envs, device=device, seeds=list(range(k)),
                                      oversight_probs=[OVERSIGHT] * k, reward=get_method(args.method).reward)
    rows = k * args.num_envs

    def step() -> None:
        twin.step(torch.randint(0, twin.n_actions, (rows,), device=device))

    for _ in range(WARMUP_STEPS):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(args.env_steps):
        step()
    synchronize(device)
    return args.env_steps * rows / (time.perf_counter() - started)


def network_rates(k: int, args: argparse.Namespace, device) -> tuple[float, float]:
    """Samples/s of K stacked networks: forward without gradient on (K, num_envs) observations
    (a rollout step's), forward+backward on (K, num_envs x rollout_steps) (an update's)."""
    import torch

    import oversight_env
    from agents.methods import ROUTES, get_method
    from agents.networks import ActorCritic, planes_shown
    from agents.stacked import StackedNetworks

    method = get_method(args.method)
    shapes = oversight_env.make_batched(args.env, 1, seed=0)  # the observation's shape and planes
    obs_shape, n_actions = tuple(shapes.obs_shape), shapes.n_actions
    torch.manual_seed(0)
    nets = StackedNetworks([
        ActorCritic(obs_shape, n_actions, experts=method.experts, hidden=args.hidden,
                    gate_planes=planes_shown(shapes.plane_names, method.gate_hides),
                    gate_from_policy=method.gate_from_policy).to(device)
        for _ in range(k)])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    obs = torch.rand(k, args.num_envs, *obs_shape, device=device)
    with torch.no_grad(), autocast:
        for _ in range(WARMUP_STEPS):
            nets(obs)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(args.rollout_steps):
            nets(obs)
        synchronize(device)
    forward = args.rollout_steps * k * args.num_envs / (time.perf_counter() - started)
    del obs

    batch = args.num_envs * args.rollout_steps
    obs = torch.rand(k, batch, *obs_shape, device=device)
    codes = torch.tensor([code for code, _ in ROUTES], device=device)
    labels = codes[torch.randint(0, len(codes), (k, batch), device=device)] if method.route_labels else None

    def forward_backward() -> None:
        for p in nets.params.values():
            p.grad = None
        with autocast:
            out = nets(obs, labels)
            loss = out.logits.float().sum() + out.value.float().sum()
        loss.backward()

    forward_backward()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(BACKWARD_REPEATS):
        forward_backward()
    synchronize(device)
    return forward, BACKWARD_REPEATS * k * batch / (time.perf_counter() - started)


# ---- the trainer: in worker processes


def _config(seed: int, settings: dict[str, Any], updates: int):
    """A run of `updates` full updates that never evaluates nor checkpoints before its end."""
    from agents.config import TrainConfig

    steps = steps_for(settings["method"], updates * settings["num_envs"] * settings["rollout_steps"])
    return TrainConfig(oversight_prob=OVERSIGHT, seed=seed, steps=steps, eval_every_steps=10**12,
                       checkpoint_every_steps=10**12, eval_episodes=64, final_eval_episodes=64, **settings)


def _median_rate(run_dir: Path, tag: str) -> float:
    from agents.logger import METRICS, read_metrics

    rates = [r["value"] for r in read_metrics(run_dir / METRICS)[0] if r["tag"] == tag]
    return statistics.median(rates[1:] or rates)


def members_rate(k: int, settings: dict[str, Any], updates: int, threads: int) -> tuple[float, float] | None:
    """Env-steps/s of K members trained as one program, and the seconds of the whole
    `train_members` call (in a worker process); None when CUDA runs out of memory."""
    import torch

    from agents.lean_trainer import train_members

    torch.set_num_threads(threads)
    configs = [_config(seed, settings, updates) for seed in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"s{c.seed}" for c in configs]
        for d in dirs:
            d.mkdir()
        started = time.perf_counter()
        try:
            train_members(configs, dirs, progress=False)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return None
        seconds = time.perf_counter() - started
        tag = "speed/member_steps_per_second" if k > 1 else "speed/steps_per_second"
        return _median_rate(dirs[0], tag), seconds


def lone_rate(seed: int, settings: dict[str, Any], updates: int) -> float:
    """Env-steps/s of one lone run with one torch thread (in a worker process)."""
    import torch

    from agents.lean_trainer import train_lean

    torch.set_num_threads(1)
    config = _config(seed, settings, updates)
    with tempfile.TemporaryDirectory() as tmp:
        train_lean(config, Path(tmp), progress=False)
        return _median_rate(Path(tmp), "speed/steps_per_second")


def in_workers(function: Callable[..., Any], calls: list[tuple]) -> list[Any]:
    """`function(*args)` for each `args` of `calls`, each in its own fresh process, all at once,
    in the environment a sweep's workers get."""
    os.environ.update(WORKER_ENVIRONMENT)
    with ProcessPoolExecutor(len(calls), mp_context=get_context("spawn")) as pool:
        return [future.result() for future in [pool.submit(function, *args) for args in calls]]


# ---- the table


COLUMNS = (("K", 5), ("env steps/s", 14), ("net fwd/s", 14), ("net fwd+bwd/s", 14), ("trainer steps/s", 15),
           ("per member", 13), ("run s", 7), ("K lone runs", 14), ("trainer/lone", 13))


def cell(value: float | str | None, width: int, style: str = ",.0f") -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}}" if isinstance(value, str) else f"{value:>{width}{style}}"


def measure(k: int, args: argparse.Namespace, device, settings: dict[str, Any]) -> str:
    """The row of K: every part not skipped, "out of memory" where CUDA ran out."""
    values: dict[str, Any] = {}

    def guarded(names: tuple[str, ...], part: Callable[[], Any]) -> None:
        try:
            result = part()
        except Exception as error:
            if device.type != "cuda" or not is_out_of_memory(error):
                raise
            result = None
        free_memory()
        if result is None:
            values.update(dict.fromkeys(names, OUT_OF_MEMORY))
        else:
            values.update(zip(names, result if isinstance(result, tuple) else (result,)))

    if "env" not in args.skip:
        guarded(("env",), lambda: env_rate(k, args, device))
    if "network" not in args.skip:
        guarded(("forward", "backward"), lambda: network_rates(k, args, device))
    if "trainer" not in args.skip:
        (result,) = in_workers(members_rate, [(k, settings, args.updates, args.threads)])
        values.update(dict(zip(("trainer", "seconds"), result)) if result else dict.fromkeys(("trainer",), OUT_OF_MEMORY))
        values["lone"] = (sum(in_workers(lone_rate, [(seed, settings, args.updates) for seed in range(k)]))
                          if k <= args.max_independent else "(not run)")
    trainer, lone = values.get("trainer"), values.get("lone")
    per_member = trainer / k if isinstance(trainer, float) else None
    ratio = f"{trainer / lone:.2f}x" if isinstance(trainer, float) and isinstance(lone, float) else None
    widths = [width for _, width in COLUMNS]
    return " ".join([f"{k:>{widths[0]}}", cell(values.get("env"), widths[1]), cell(values.get("forward"), widths[2]),
                     cell(values.get("backward"), widths[3]), cell(trainer, widths[4]), cell(per_member, widths[5]),
                     cell(values.get("seconds"), widths[6], ".1f"), cell(lone, widths[7]), cell(ratio, widths[8])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run (default auto)")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 16, 64, 256, 512],
                        help="numbers of members (default 1 16 64 256 512)")
    parser.add_argument("--method", default="routing", help="the method trained (default routing)")
    parser.add_argument("--algorithm", default="reinforce", help="reinforce (default) or ppo")
    parser.add_argument("--env", default="OversightGrid/DiamondGhost-5x5-v0",
                        help="the environment (default OversightGrid/DiamondGhost-5x5-v0)")
    parser.add_argument("--updates", type=int, default=5, help="updates per trainer run, the first a warm-up (default 5)")
    parser.add_argument("--num-envs", type=int, default=512, help="environments per member (default 512)")
    parser.add_argument("--rollout-steps", type=int, default=32, help="steps per rollout window (default 32)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden width of the networks (default 256)")
    parser.add_argument("--env-steps", type=int, default=64, help="timed steps of the env part (default 64)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the networks and the trainer (default fp32)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process and the trainer's (default 1)")
    parser.add_argument("--max-independent", type=int, default=None,
                        help="largest K also run as K independent lone runs (default: the cores on a CPU, 0 on CUDA)")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="parts left out")
    args = parser.parse_args()
    for name in ("updates", "num_envs", "rollout_steps", "hidden", "env_steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.ks) < 1:
        parser.error("--ks must be at least 1")

    import torch

    from agents.config import TrainConfig

    torch.set_num_threads(args.threads)
    settings = {"env_id": args.env, "device": args.device, "num_envs": args.num_envs, "rollout_steps": args.rollout_steps,
                "hidden": args.hidden, "method": args.method, "algorithm": args.algorithm, "bf16": args.bf16}
    try:
        device = TrainConfig(**settings).torch_device()  # checks the settings too
    except ValueError as error:
        parser.error(str(error))
    if args.max_independent is None:
        args.max_independent = 0 if device.type == "cuda" else os.cpu_count() or 1
    print(describe())
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'} ({device}); torch {torch.__version__}")
    print(f"{args.env}, {args.method} {args.algorithm}, {args.num_envs} envs x {args.rollout_steps} steps per member, "
          f"hidden {args.hidden}, {'bf16' if args.bf16 else 'fp32'}; env: {args.env_steps} steps; trainer: {args.updates} "
          f"updates per run; {args.threads} torch thread(s); K lone runs up to K = {args.max_independent}"
          + (f"; skipped: {' '.join(args.skip)}" if args.skip else ""))
    print("rates are env-steps (samples for the network) per second, summed over the K members", flush=True)
    print(" ".join(f"{name:>{width}}" for name, width in COLUMNS), flush=True)
    for k in args.ks:
        print(measure(k, args, device, settings), flush=True)


if __name__ == "__main__":
    main()
