"""Entry point of the `oversight` command: parses arguments and turns bad input into one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents.scripted import POLICIES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oversight", description="A testbed for goal misgeneralization under sparse oversight."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="play a few episodes with a scripted policy, print them and save PNG renderings"
    )
    demo.add_argument("--env", default="OversightGrid/DiamondGhost-5x5-v0", help="a registered environment id")
    demo.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5)")
    demo.add_argument("--oversight", type=float, default=0.3, help="oversight probability (default 0.3)")
    demo.add_argument(
        "--policy", choices=sorted(POLICIES), default="nearest", help="scripted policy (default: nearest terminal)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="runs/demo", help="directory for the PNG files (default runs/demo)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from oversight_cli.demo import run_demo

            run_demo(
                env_id=args.env,
                episodes=args.episodes,
                oversight_prob=args.oversight,
                policy=args.policy,
                seed=args.seed,
                out_dir=args.out,
            )
    except (ValueError, OSError) as error:
        print(f"oversight {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
