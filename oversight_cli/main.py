"""Entry point of the `oversight` command (demo, train, eval, sweep, report, results, ladder, render): parses arguments and
turns bad input into one line.

The `oversight train` flags are generated from `TrainConfig`'s fields, so every setting a run
records can be set from the command line, with the field's own help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agents.config import ALGORITHMS, PRESETS, TRAINERS, TrainConfig, evaluation_episodes, resolve_device
from agents.scripted import POLICIES
from oversight_env.env_ids import short_name
from oversight_env.spec import check_probability, invalid_argument

DEFAULT_ENV = "OversightGrid/DiamondGhost-5x5-v0"


class UsageError(Exception):
    """A command line argparse cannot parse; main() prints it as one line."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Formatter(argparse.HelpFormatter):
    """Keeps the line breaks of descriptions and epilogs, wrapping each line to the terminal with
    a hanging indent under its second column ("  name   text...")."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            column = re.match(r"\s*\S+\s{2,}", line)
            hang = " " * (column.end() if column else len(line) - len(line.lstrip()))
            lines.append(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + hang) if line else "")
        return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), like every other error, and
    which takes flags by their exact names only: with flags generated from TrainConfig, a new
    field would otherwise turn an abbreviation someone relies on into an ambiguous one."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")


def package_version() -> str:
    """The installed version of this project."""
    try:
        return version("oversight-testbed")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `oversight` command line: one subcommand per task."""
    parser = _Parser(prog="oversight", description="A testbed for goal misgeneralization under sparse oversight.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_train(commands)
    _add_eval(commands)
    _add_sweep(commands)
    report = commands.add_parser("report", help="write results.csv, summary, figures and report.md of an experiment")
    report.add_argument("run_dir", help="an experiment directory written by `oversight sweep`")
    report.add_argument("--reference", help="the method the comparison sets against every other one "
                        "(default: routing, when the experiment has it)")
    render = commands.add_parser("render", help="episodes as a GIF, under a trained policy (a run directory) or a scripted one")
    render.add_argument("source", help="a run directory or checkpoint, or an environment id")
    render.add_argument("--out", required=True, help="the GIF to write (the first episode also goes to a PNG filmstrip beside it)")
    render.add_argument("--episodes", type=int, default=3, help="episodes (default 3)")
    render.add_argument("--policy", default="nearest", help="scripted policy for an environment id: nearest (default), intended, random")
    render.add_argument("--ablate", help="play the trained routed policy without this expert, e.g. proxy")
    render.add_argument("--oversight", type=float, help="oversight probability (default: the run's, or the environment's)")
    render.add_argument("--greedy", action="store_true", help="take the most probable action instead of sampling")
    render.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    render.add_argument("--fps", type=float, default=4.0, help="frames per second (default 4)")
    results = commands.add_parser("results", help="rewrite docs/results.md's tables from the tracked results")
    results.add_argument("--page", default=None, help="the page to rewrite (default: docs/results.md of this checkout)")
    ladder = commands.add_parser("ladder", help="draw several experiments together: each method's result against the budget")
    ladder.add_argument("run_dirs", nargs="+", metavar="run_dir", help="experiment directories, e.g. one per budget")
    ladder.add_argument("--out", required=True, help="directory for ladder.csv, ladder.png and ladder.md")
    ladder.add_argument("--oversight", type=float, help="the oversight level to draw (needed when the cells have several)")
    ladder.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="only these seeds' cells (default: every finished cell), so that every rung has the same seeds")
    return parser


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="play a few episodes with a scripted policy, print them, save PNGs")
    demo.add_argument("--env", default=DEFAULT_ENV, help=f"a registered environment id (default {DEFAULT_ENV})")
    demo.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5)")
    demo.add_argument("--oversight", type=float, default=0.3, help="oversight probability (default 0.3)")
    demo.add_argument("--policy", choices=sorted(POLICIES), default="nearest", help="scripted policy (default: nearest terminal)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    demo.add_argument("--out", default="runs/demo", help="directory for the PNG files (default runs/demo)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    from agents.methods import METHODS

    methods = "\n".join(f"  {m.name:22} {m.summary.split('. ')[0].rstrip('.')}" for m in METHODS.values())
    train = commands.add_parser(
        "train", help="train one method on one environment; resumes from the output directory's checkpoint",
        description="Train one method on one environment. The run lives in one directory: started again, it "
        "resumes from the last checkpoint, or reports the result if it has finished. Settings left unset take "
        "the preset's value.",
        epilog=f"methods (README.md describes each):\n{methods}\n\n"
        "examples:\n  oversight train --method naive --oversight 0.3 --steps 1e6\n"
        "  oversight train --preset paper --env-kwargs '{\"max_steps\": 16}'",
        formatter_class=_Formatter,
    )
    add_train_flags(train)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser("eval", help="evaluate a trained run or checkpoint with the ground-truth reward")
    ev.add_argument("run", help="a run directory, or a checkpoint (.pt / .zip) inside one")
    ev.add_argument("--ablate", action="append", help="evaluate the policy without this expert (repeatable; default: every expert)")
    ev.add_argument("--episodes", type=int, default=8192, help="evaluation episodes, each from a fresh reset (default 8192)")
    ev.add_argument("--oversight", type=float, help="oversight probability (default: the run's)")
    ev.add_argument("--greedy", action="store_true", help="take the most probable action instead of sampling")
    ev.add_argument("--seed", type=int, default=123, help="seed of the evaluation episodes (default 123)")
    ev.add_argument("--device", default="auto", help="auto (CUDA when present, the default), cpu or cuda")
    ev.add_argument("--json", help="also write the results to this JSON file")


def _add_sweep(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser("sweep", help="train every (method, oversight, seed) cell of an experiment spec, then report")
    sweep.add_argument("spec", help="an experiment spec, e.g. runs/quick.toml")
    sweep.add_argument("--out", help="experiment directory (default runs/<spec name>)")
    sweep.add_argument("--backend", default="local", help="local (worker processes, default) or ray")
    sweep.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    sweep.add_argument("--address", help="Ray cluster address (default: start Ray locally)")
    sweep.add_argument("--population", choices=("auto", "on", "off"), default="auto",
                       help="train the cells of each method that differ only in seed and oversight level together, as "
                       "the members of one program (default auto: on when the cells' device resolves to CUDA; on a "
                       "CPU one process per cell)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--wandb", metavar="PROJECT", help="also log every cell to this Weights & Biases project "
                       "(pip install wandb)")


# ---------------------------------------------------------------------- train flags from TrainConfig
# Short names users already know; each field also gets its generated --field-name.
ALIASES = {"env_id": "--env", "imports": "--import", "oversight_prob": "--oversight", "learning_rate": "--lr",
           "eval_every_steps": "--eval-every", "checkpoint_every_steps": "--checkpoint-every"}

# Help sections, in order; a field not listed here lands in "other settings", never nowhere.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "what to train": ("env_id", "env_kwargs", "imports", "method", "oversight_prob", "steps", "seed"),
    "trainer and network": ("trainer", "algorithm", "hidden", "zero_biases", "num_envs", "rollout_steps", "device", "bf16"),
    "optimizer": ("learning_rate", "anneal_lr", "adam_eps", "max_grad_norm"),
    "loss": ("gamma", "gae_lambda", "ent_coef", "ent_coef_final", "vf_coef", "gate_coef", "clip_range",
             "ppo_epochs", "ppo_minibatches", "bootstrap"),
    "evaluation and checkpoints": ("eval_every_steps", "eval_episodes", "final_eval_episodes", "checkpoint_every_steps"),
}

# Fields the default run directory spells out; any other setting that differs from the preset
# goes into a short hash, so two different runs never share a directory.
_NAMED_IN_RUN_DIR = ("env_id", "method", "oversight_prob", "seed", "steps", "trainer", "algorithm")


def parse_integer(name: str, text: str) -> int:
    """`text` as an integer: 3000000, 3_000_000 and 3e6 all work; 3.5 does not."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise invalid_argument(name, text, "expected an integer, e.g. 3000000, 3_000_000 or 3e6")
    return int(number)


def parse_number(name: str, text: str) -> float:
    """`text` as a float (TrainConfig refuses the infinite and NaN ones, naming the field)."""
    try:
        return float(text)
    except ValueError:
        raise invalid_argument(name, text, "expected a number, e.g. 0.001 or 1e-3") from None


def parse_json_object(name: str, text: str) -> dict[str, Any]:
    """`text` as a JSON object, e.g. '{"max_steps": 16}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid_argument(name, text, f"not valid JSON ({error}); expected an object such as '{{\"max_steps\": 16}}'") from None
    if not isinstance(value, dict):
        raise invalid_argument(name, text, 'expected a JSON object such as \'{"max_steps": 16}\'')
    return value


def _field_parser(field: dataclasses.Field, annotation: Any) -> tuple[Callable[[str, str], Any] | None, str]:
    """How to read a field's flag: (parser of the text, or None for a --x/--no-x switch; metavar)."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    base = typing.get_origin(base) or base
    parsers: dict[Any, tuple[Callable[[str, str], Any] | None, str]] = {
        bool: (None, ""), int: (parse_integer, "N"), float: (parse_number, "X"),
        str: (lambda _name, text: text, field.name.split("_")[-1].upper()), dict: (parse_json_object, "JSON"),
        list: (lambda _name, texts: list(texts), "MODULE"),  # a repeatable flag (action="append")
    }
    if base not in parsers:
        raise TypeError(f"TrainConfig.{field.name}: no command-line flag for type {annotation}")
    parse, metavar = parsers[base]
    if optional and parse is not None:
        inner = parse
        parse, metavar = (lambda name, text: None if text.lower() == "none" else inner(name, text)), f"{metavar}|none"
    return parse, metavar


def _default_help(name: str) -> str:
    """The field's default in each preset, e.g. "default 0.001; paper: 5e-05"."""
    field = TrainConfig.__dataclass_fields__[name]
    if field.default is dataclasses.MISSING:  # a default_factory: show what it gives here
        text = f"default here: {_show(field.default_factory())}"  # type: ignore[misc]
    else:
        text = f"default {_show(field.default)}"
    for preset, settings in PRESETS.items():
        if name in settings and settings[name] != field.default:
            text += f"; {preset}: {_show(settings[name])}"
    if name == "algorithm":
        text += "; ppo with --trainer sb3"
    return text


def _show(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def train_flag_fields() -> dict[str, list[str]]:
    """Each TrainConfig field and its flags: its alias (if any), then --field-name."""
    flags = {}
    for field in dataclasses.fields(TrainConfig):
        generated = "--" + field.name.replace("_", "-")
        flags[field.name] = [ALIASES[field.name], generated] if field.name in ALIASES else [generated]
    return flags


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Add `--preset`, `--out`, `--quiet` and one flag per TrainConfig field to `parser`."""
    from agents.methods import METHODS

    run = parser.add_argument_group("run")
    run.add_argument("--preset", default="fast", metavar="{" + ",".join(PRESETS) + "}",
                     help="where unset settings come from: fast (default: chosen by measurement) or paper (the published settings)")
    run.add_argument("--out", help="run directory (default runs/<env>_<method>_p<oversight>_s<seed>, then "
                     "_<preset> unless fast, _steps<budget>, _<trainer>, _<algorithm> unless the preset's, "
                     "and a hash of any other setting changed)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project (pip install wandb)")
    hints = typing.get_type_hints(TrainConfig)
    flags = train_flag_fields()
    listed = {name for names in FLAG_GROUPS.values() for name in names}
    groups = {title: parser.add_argument_group(title) for title in FLAG_GROUPS}
    other = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in listed]
    metavars = {"trainer": "{" + ",".join(TRAINERS) + "}", "algorithm": "{" + ",".join(ALGORITHMS) + "}"}
    for title, names in [*FLAG_GROUPS.items(), ("other settings", tuple(other))]:
        group = groups.get(title) or parser.add_argument_group(title)
        for name in names:
            field = TrainConfig.__dataclass_fields__[name]
            parse, metavar = _field_parser(field, hints[name])
            help_text = field.metadata.get("help", "")
            if name == "method":
                help_text += f": one of {', '.join(METHODS)}"
            help_text += f" [{_default_help(name)}]"
            if parse is None:
                group.add_argument(*flags[name], dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            elif metavar == "MODULE":
                group.add_argument(*flags[name], dest=name, metavar=metavar, action="append", default=None,
                                   help=help_text + " (repeatable)")
            else:
                group.add_argument(*flags[name], dest=name, metavar=metavars.get(name, metavar), default=None, help=help_text)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings given on the command line, read by each field's type; unset
    flags are left out, so the preset fills them."""
    hints = typing.get_type_hints(TrainConfig)
    settings: dict[str, Any] = {}
    for field in dataclasses.fields(TrainConfig):
        text = getattr(args, field.name, None)
        if text is None:
            continue
        parse, _ = _field_parser(field, hints[field.name])
        settings[field.name] = text if parse is None else parse(field.name, text)
    if settings.get("trainer") == "sb3" and "algorithm" not in settings:
        settings["algorithm"] = "ppo"  # the sb3 trainer runs PPO only
    return settings


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The validated config of `oversight train`: the preset, overridden by the flags given."""
    return TrainConfig.from_preset(args.preset, **train_settings(args))


def default_run_dir(config: TrainConfig, preset: str) -> Path:
    """`runs/<env>_<method>_p<oversight>_s<seed>`, then `_<preset>` unless "fast", `_steps<budget>`,
    `_<trainer>` and `_<algorithm>` unless the preset's, and a short hash of every other setting
    that differs from the preset, so that two different runs never share a directory."""
    name = f"{short_name(config.env_id)}_{config.method}_p{config.oversight_prob:g}_s{config.seed}"
    defaults = preset_values(preset)
    if preset != "fast":
        name += f"_{preset}"
    if config.steps != defaults["steps"]:
        name += f"_steps{_short_count(config.steps)}"
    if config.trainer != defaults["trainer"]:
        name += f"_{config.trainer}"
    if config.algorithm != defaults["algorithm"] and not (config.trainer == "sb3" and config.algorithm == "ppo"):
        name += f"_{config.algorithm}"
    # Unset evaluation episodes resolve by environment: their resolved defaults are no change.
    defaults.update({k: v for k, v in evaluation_episodes(config.env_id).items() if defaults[k] is None})
    changed = {k: v for k, v in config.to_json().items() if k not in _NAMED_IN_RUN_DIR and v != defaults[k]}
    if changed:
        name += "_" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / name


def preset_values(preset: str) -> dict[str, Any]:
    """Every TrainConfig field's value in `preset`, without building (and validating) a config."""
    values = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
              for f in dataclasses.fields(TrainConfig)}
    return {**values, **PRESETS[preset]}


def _short_count(n: int) -> str:
    """10000000 -> "10M", 20000 -> "20k", 1024 -> "1024"."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


# ---------------------------------------------------------------------- commands
def run_train(args: argparse.Namespace) -> None:
    """`oversight train`: validate everything, then train (or report the finished run)."""
    import torch

    from agents.evaluator import summarize
    from agents.run_dir import CONFIG, EVALUATION, is_finished, read_json
    from agents.train import train

    torch.set_num_threads(1)  # small networks: one thread is much faster than two on 2 cores
    config = train_config(args)  # validates everything before any file is written
    out = Path(args.out) if args.out else default_run_dir(config, args.preset)
    if is_finished(out) and read_json(out / CONFIG) == config.to_json():
        print(f"already finished: {out} (delete {out / EVALUATION} to evaluate it again)")
    report = train(config, out, progress=not args.quiet)
    print(summarize(report))
    print(f"run directory: {out} (tensorboard --logdir {out.parent})")


def _check_eval_args(args: argparse.Namespace) -> None:
    """Refuse bad `oversight eval` arguments before anything is loaded or evaluated."""
    if args.episodes < 1:
        raise invalid_argument("episodes", args.episodes, "expected an integer >= 1")
    if args.seed < 0:
        raise invalid_argument("seed", args.seed, "expected an integer >= 0")
    if args.oversight is not None:
        check_probability("oversight", args.oversight)
    resolve_device(args.device)
    if args.json:
        from agents.run_dir import CONFIG, EVALUATION

        parent = Path(args.json).parent
        if not parent.is_dir():
            raise invalid_argument("json", args.json, f"no such directory: {parent}")
        if Path(args.json).is_dir():
            raise invalid_argument("json", args.json, "that is a directory: expected a file name")
        if Path(args.json).name == EVALUATION and (parent / CONFIG).exists():
            raise invalid_argument("json", args.json, f"that is a run's {EVALUATION}, which marks it finished; "
                                   "write this evaluation to another file")


def run_eval(args: argparse.Namespace) -> None:
    """`oversight eval`: evaluate a run's policy, with and without each expert."""
    import torch

    from agents.evaluator import evaluate, format_table
    from agents.files import write_json_atomic
    from agents.policies import load_policy

    torch.set_num_threads(1)
    _check_eval_args(args)
    net, config = load_policy(args.run)
    net.to(resolve_device(args.device))
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
        write_json_atomic(Path(args.json), results)
        print(f"wrote {args.json}")


def use_wandb(project: str | None) -> None:
    """Log every run started from here (worker processes too) to the Weights & Biases `project`."""
    if project is None:
        return
    import importlib.util

    from agents.logger import WANDB_PROJECT

    if importlib.util.find_spec("wandb") is None:
        raise invalid_argument("wandb", project, "wandb is not installed: pip install wandb")
    os.environ[WANDB_PROJECT] = project


def run_command(args: argparse.Namespace) -> None:
    """Run the parsed subcommand."""
    use_wandb(getattr(args, "wandb", None))
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

        path = run_sweep(load_spec(args.spec), args.out, args.backend, args.workers, args.address, not args.quiet,
                         args.population)
        print(f"report: {path}")
    elif args.command == "report":
        from analysis.report import write_report

        print(f"report: {write_report(args.run_dir, args.reference)}")
    elif args.command == "render":
        from analysis.render import filmstrip, record, write_gif

        episodes, title = record(args.source, args.episodes, args.policy, args.ablate, args.seed, args.oversight, args.greedy)
        gif = write_gif(episodes, args.out, title, args.fps)
        strip = filmstrip(episodes[0], gif.with_suffix(".png"), title)
        print(f"wrote {gif} ({sum(map(len, episodes))} frames) and {strip}")
    elif args.command == "results":
        from analysis.results_page import MAP_FIGURE, PAGE, draw_map, holds_the_map, update_page

        page = Path(args.page) if args.page else PAGE
        if not page.is_file():
            raise invalid_argument("page", str(page), "no such file")
        changed = update_page(page)
        print(f"{page}: " + (f"rewrote {', '.join(changed)}" if changed else "every table agrees with the data"))
        if holds_the_map(page):
            draw_map(page.parent / MAP_FIGURE.name)
            print(f"drew {page.parent / MAP_FIGURE.name}")
    elif args.command == "ladder":
        from analysis.ladder import write_ladder

        print(f"ladder: {write_ladder(args.run_dirs, args.out, args.oversight, args.seeds)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `oversight` with `argv`; returns the exit status (2: bad input, one line on stderr)."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # named here rather than by the top-level parser, so the message names the command
            raise UsageError(f"oversight {args.command}", f"unrecognized arguments: {' '.join(extra)} (see oversight {args.command} --help)")
    except UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help and --version
        return int(done.code or 0)
    try:
        run_command(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"oversight {args.command}: error: {error}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oversight {args.command}: interrupted; run it again with the same arguments to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
