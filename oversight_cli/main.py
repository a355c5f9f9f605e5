"""Entry point of the `oversight` command (demo, train, eval, sweep, report): parses arguments and
turns bad input into one line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.methods import METHODS
from agents.scripted import POLICIES

DEFAULT_ENV = "OversightGrid/DiamondGhost-5x5-v0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oversight", description="A testbed for goal misgeneralization under sparse oversight."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="play a few episodes with a scripted policy, print them, save PNGs")
    demo.add_argument("--env", default=DEFAULT_ENV, help="a registered environment id")
    demo.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5)")
    demo.add_argument("--oversight", type=float, default=0.3, help="oversight probability (default 0.3)")
    demo.add_argument("--policy", choices=sorted(POLICIES), default="nearest", help="scripted policy (default: nearest terminal)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="runs/demo", help="directory for the PNG files (default runs/demo)")

    train = commands.add_parser(
        "train", help="train one method on one environment; resumes from the output directory's checkpoint",
        description="Train one method; methods: " + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()),
    )
    train.add_argument("--env", default=DEFAULT_ENV, help=f"a registered environment id (default {DEFAULT_ENV})")
    train.add_argument("--method", default="routing", help=f"one of {', '.join(METHODS)} (default routing)")
    train.add_argument("--oversight", type=float, default=0.1, help="oversight probability (default 0.1)")
    train.add_argument("--preset", default="fast", help="fast (default: settings chosen by measurement) or paper (the published settings)")
    train.add_argument("--steps", type=int, help="environment-step budget (default: the preset's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="run directory (default runs/<env>_<method>_p<oversight>_s<seed>)")
    train.add_argument("--trainer", default="lean", help="lean (default) or sb3 (RoutedPPO; PPO only)")
    train.add_argument("--algorithm", help="reinforce (default for lean) or ppo (default for sb3)")
    train.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    train.add_argument("--num-envs", type=int, help="parallel environments (default: the preset's)")
    train.add_argument("--hidden", type=int, help="width of the experts' and the gate's hidden layers (default: the preset's)")
    train.add_argument("--eval-every", type=int, help="environment steps between evaluations (default: the preset's)")
    train.add_argument("--eval-episodes", type=int, help="episodes of the final evaluation (default 8192)")
    train.add_argument("--ent-coef", type=float, help="entropy bonus at the start (default: the preset's)")
    train.add_argument("--ent-coef-final", type=float, help="entropy bonus at the end, reached linearly (default: the preset's)")
    train.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, help="decay the learning rate linearly to 0")
    train.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bfloat16 autocast for forward passes")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    sweep = commands.add_parser("sweep", help="train every (method, oversight, seed) cell of an experiment spec, then report")
    sweep.add_argument("spec", help="an experiment spec, e.g. runs/quick.toml")
    sweep.add_argument("--out", help="experiment directory (default runs/<spec name>)")
    sweep.add_argument("--backend", default="local", help="local (worker processes, default) or ray")
    sweep.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    sweep.add_argument("--address", help="Ray cluster address (default: start Ray locally)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="write results.csv, summary, figures and report.md of an experiment")
    report.add_argument("run_dir", help="an experiment directory written by `oversight sweep`")

    ev = commands.add_parser("eval", help="evaluate a trained run or checkpoint with the ground-truth reward")
    ev.add_argument("run", help="a run directory, or a checkpoint (.pt / .zip) inside one")
    ev.add_argument("--ablate", action="append", help="evaluate the policy without this expert (repeatable; default: every expert)")
    ev.add_argument("--episodes", type=int, default=8192, help="evaluation episodes, each from a fresh reset (default 8192)")
    ev.add_argument("--oversight", type=float, help="oversight probability (default: the run's)")
    ev.add_argument("--greedy", action="store_true", help="take the most probable action instead of sampling")
    ev.add_argument("--seed", type=int, default=123)
    ev.add_argument("--json", help="also write the results to this JSON file")
    return parser


def run_train(args: argparse.Namespace) -> None:
    import torch

    from agents.config import TrainConfig
    from agents.run_dir import summarize
    from agents.train import train

    torch.set_num_threads(1)  # small networks: one thread is much faster than two on 2 cores
    options = {"steps": args.steps, "learning_rate": args.lr, "num_envs": args.num_envs, "hidden": args.hidden,
               "eval_every_steps": args.eval_every, "final_eval_episodes": args.eval_episodes,
               "ent_coef": args.ent_coef, "ent_coef_final": args.ent_coef_final, "bf16": args.bf16,
               "anneal_lr": args.anneal_lr, "algorithm": args.algorithm or ("ppo" if args.trainer == "sb3" else None)}
    config = TrainConfig.from_preset(
        args.preset, env_id=args.env, method=args.method, oversight_prob=args.oversight, seed=args.seed,
        trainer=args.trainer, **{k: v for k, v in options.items() if v is not None},
    )
    out = Path(args.out or f"runs/{args.env.split('/')[-1]}_{args.method}_p{args.oversight:g}_s{args.seed}")
    report = train(config, out, progress=not args.quiet)
    print(summarize(report))
    print(f"run directory: {out} (tensorboard --logdir {out.parent})")


def run_eval(args: argparse.Namespace) -> None:
    import torch

    from agents.evaluator import evaluate, format_table
    from agents.run_dir import load_policy

    torch.set_num_threads(1)
    net, config = load_policy(args.run)
    experts = net.actor.expert_names if net.actor.gate is not None else ()
    for name in args.ablate or []:
        if name not in experts:
            raise ValueError(f"ablate={name!r} is invalid: this policy's experts that can be ablated are {list(experts)}")
    variants = [None, *(args.ablate if args.ablate else experts)]
    oversight = config.oversight_prob if args.oversight is None else args.oversight
    results = evaluate(net, config.env_id, args.episodes, seed=args.seed, variants=variants,
                       oversight_prob=oversight, env_kwargs=config.env_kwargs, gamma=config.gamma, greedy=args.greedy)
    policy = "greedy" if args.greedy else "sampled"
    print(f"{config.method} on {config.env_id}, oversight {oversight:g}, {args.episodes} episodes, {policy} actions")
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from oversight_cli.demo import run_demo

            run_demo(env_id=args.env, episodes=args.episodes, oversight_prob=args.oversight, policy=args.policy,
                     seed=args.seed, out_dir=args.out)
        elif args.command == "train":
            run_train(args)
        elif args.command == "eval":
            run_eval(args)
        elif args.command == "sweep":
            from oversight_cli.spec import load_spec
            from oversight_cli.sweep import run_sweep

            path = run_sweep(load_spec(args.spec), args.out, args.backend, args.workers, args.address, not args.quiet)
            print(f"report: {path}")
        elif args.command == "report":
            from oversight_cli.report import write_report

            print(f"report: {write_report(args.run_dir)}")
    except (ValueError, OSError, RuntimeError) as error:
        print(f"oversight {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oversight {args.command}: interrupted; run it again with the same arguments to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
