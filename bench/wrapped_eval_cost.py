"""What a run on a Python-stepped environment spends on training and on its final evaluation.

An environment made partial-oversight by `register_partial_oversight` has no batched twin: its
episodes are stepped one by one in Python, so evaluating it costs far more than a twin's. This
times one short routed run on MiniGrid's DistShift1 (registered here as the README registers an
environment of one's own) and prints the seconds of training and of the final evaluation, with the
episodes per variant it used (the default for such an environment unless `--episodes` says).

    python bench/wrapped_eval_cost.py [--steps 50000] [--episodes N]
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch
from minigrid.wrappers import FullyObsWrapper

from agents import TrainConfig, lean_trainer
from analysis.machine import describe
from oversight_env import register_partial_oversight
from oversight_env.stock import LAVA_PLANE_NAMES, LAVA_PLANES, lava_or_goal

ENV_ID = "Bench/DistShift1-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--episodes", type=int, help="final evaluation episodes per variant (default: the environment's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe())
    register_partial_oversight(ENV_ID, lambda **kw: FullyObsWrapper(gym.make("MiniGrid-DistShift1-v0", **kw)),
                               lava_or_goal, observation=LAVA_PLANES, plane_names=LAVA_PLANE_NAMES, oversight_prob=0.1)
    train_module = importlib.import_module("agents.train")  # the module (agents.train is its function too)
    seconds: dict[str, float] = {}

    def timed(name, function):
        def wrapper(*a, **k):
            started = time.perf_counter()
            result = function(*a, **k)
            seconds[name] = time.perf_counter() - started
            return result
        return wrapper

    lean_trainer.train_lean = timed("training", lean_trainer.train_lean)
    train_module.write_evaluation = timed("final evaluation", train_module.write_evaluation)
    extra = {} if args.episodes is None else {"final_eval_episodes": args.episodes}
    config = TrainConfig(env_id=ENV_ID, method="routing", steps=args.steps, **extra)
    with tempfile.TemporaryDirectory() as tmp:
        train_module.train(config, Path(tmp) / "run", progress=False)
    print(f"{ENV_ID} (MiniGrid-DistShift1-v0, stepped in Python), routing, {args.steps:,} steps, "
          f"{config.final_eval_episodes} final episodes per variant, {config.eval_episodes} per periodic evaluation")
    for name, value in seconds.items():
        print(f"  {name}: {value:.1f} s")


if __name__ == "__main__":
    main()
