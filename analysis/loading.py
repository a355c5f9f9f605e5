"""Reading an experiment for its report: the finished cells (their `eval.json`), whether they may
be pooled as seeds, the cells still missing, and each cell's result rows, learning curves and
end-of-training diagnostics (from its `metrics.jsonl`; `curves.json` in cells tracked before it),
or the same from the experiment's tidy table where the cells are gone (`load_experiment`).
Tensorboard's event files are for looking at, never read here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.config import SETTINGS_ADDED_LATER
from agents.legacy_names import modern_keys
from agents.logger import METRICS, read_metrics
from agents.run_dir import CHECKPOINT, CONFIG, EVALUATION, SB3_CHECKPOINT, read_evaluation, read_json
from analysis.metrics import CURVE_TAGS, DIAGNOSTICS, FINAL_METRICS
from analysis.tidy import TIDY, read_tidy
from oversight_env.spec import invalid_argument

CURVES = "curves.json"  # learning curves and diagnostics of cells tracked before runs wrote metrics.jsonl
# What the cells of one report may differ in; anything else (environment, budget, settings) would
# pool incomparable runs as if they were seeds of one.
POOLED_OVER = frozenset({"method", "oversight_prob", "seed"})

Evaluations = dict[str, dict[str, Any]]  # cell directory, relative to the experiment's -> its eval.json


def read_cells(run_dir: Path) -> tuple[Evaluations, dict[str, str]]:
    """The final evaluation of every finished cell below `run_dir`, and the one-line error of each
    cell whose eval.json cannot be read (naming the file), both by cell directory."""
    finished, unreadable = {}, {}
    for path in sorted(run_dir.glob(f"**/{EVALUATION}")):
        cell = path.parent.relative_to(run_dir).as_posix()
        try:
            report = read_evaluation(path.parent)
            if not isinstance(report["config"], dict) or not POOLED_OVER <= set(report["config"]):
                raise ValueError(f"file={str(path)!r} is invalid: its config lacks {sorted(POOLED_OVER)}")
            finished[cell] = report
        except ValueError as error:
            unreadable[cell] = str(error)
    return finished, unreadable


_SETTING_NAMES = {"oversight_prob": "oversight", "learning_rate": "learning rate"}


def _describe(config: dict[str, Any], settings: list[str]) -> str:
    """E.g. "method naive, oversight 0.2, seed 0": the values of `settings` in `config`."""
    return ", ".join(f"{_SETTING_NAMES.get(s, s)} {config.get(s):{'g' if isinstance(config.get(s), float) else ''}}"
                     for s in settings)


def check_poolable(
    run_dir: Path | str, finished: Evaluations, pooled_over: frozenset[str] = POOLED_OVER, argument: str = "run_dir"
) -> None:
    """Refuse cells that differ in a setting outside `pooled_over` (by default: method, oversight
    and seed), and two cells with the same values of `pooled_over`: pooled as seeds, either would
    make the numbers lie. A setting one cell lacks and another has is a difference too, whichever
    comes first."""
    order = ["method", "oversight_prob", "seed", *sorted(pooled_over - POOLED_OVER)]
    settings = sorted({s for report in finished.values() for s in report["config"]})  # the union over every cell
    first: dict[str, tuple[str, Any]] = {}  # setting -> (the first cell, its value)
    seen: dict[tuple, str] = {}
    for cell, report in finished.items():
        config = report["config"]
        key = tuple(repr(config.get(s)) for s in order)
        if key in seen:
            raise invalid_argument(argument, str(run_dir), f"cells {seen[key]} and {cell} are both "
                                   f"{_describe(config, order)}; move one out to report the other")
        seen[key] = cell
        for setting in settings:
            if setting in pooled_over:
                continue
            value = config.get(setting, SETTINGS_ADDED_LATER.get(setting, "(unset)"))  # added since: its old value
            other, expected = first.setdefault(setting, (cell, value))
            if value != expected:
                differ_only = ", ".join(_SETTING_NAMES.get(s, s) for s in order)
                raise invalid_argument(argument, str(run_dir), f"its cells differ in {setting} ({other}: {expected!r}, "
                                       f"{cell}: {value!r}); a report pools cells that differ only in {differ_only}: "
                                       "report each setting's cells from a directory of their own")


def missing_cells(run_dir: Path, finished: Evaluations, unreadable: dict[str, str]) -> list[str]:
    """One line per cell that the sweep's `experiment.json` expects and that has no readable
    eval.json (saying how far it got), and per other cell whose eval.json cannot be read."""
    experiment = run_dir / "experiment.json"
    expected = read_json(experiment).get("cells", []) if experiment.exists() else []
    lines = []
    for cell in expected:
        path = cell["path"]
        if path in finished:
            continue
        what = f"{path} (method {cell['method']}, oversight {cell['oversight']:g}, seed {cell['seed']})"
        lines.append(f"{what}: {unreadable.get(path) or _progress(run_dir / path)}")
    named = {cell["path"] for cell in expected}
    lines += [f"{path}: {error}" for path, error in unreadable.items() if path not in named]
    return lines


def _progress(cell_dir: Path) -> str:
    if _has_checkpoint(cell_dir):
        return "part-way (it has a checkpoint; the sweep resumes it)"
    if (cell_dir / CONFIG).exists():
        return "started, no checkpoint yet"
    return "not started"


def _has_checkpoint(cell_dir: Path) -> bool:
    return (cell_dir / CHECKPOINT).exists() or (cell_dir / SB3_CHECKPOINT).exists()


def result_rows(finished: Evaluations) -> list[dict[str, Any]]:
    """One row per finished cell and policy variant: which it is, then every metric of
    `analysis.metrics.FINAL_METRICS`."""
    rows = []
    for report in finished.values():
        config = report["config"]
        for variant, s in report["variants"].items():
            rows.append({
                "method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"],
                "variant": variant, "evaluated": variant == report["evaluated_variant"], "env_steps": report["env_steps"],
                **{metric.name: metric.read(s) for metric in FINAL_METRICS},
            })
    return rows


def learning_curve_rows(
    run_dir: Path, finished: Evaluations
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """From every finished cell's `metrics.jsonl` (or, for results tracked before it existed, its
    `curves.json`; see `cell_curves`): its periodic evaluations (learning curves), its separation
    diagnostics at the end of training (`diagnostic_values`), and one line per cell whose rows are
    missing or damaged (its curve would be cut short)."""
    rows, diagnostics, incomplete = [], [], []
    for cell, report in finished.items():
        config = report["config"]
        key = {"method": config["method"], "oversight": config["oversight_prob"], "seed": config["seed"]}
        curves, problems = cell_curves(run_dir / cell)
        incomplete += [f"{cell}: {problem}" for problem in problems]
        rows.extend({**key, "env_steps": step, "metric": metric, "value": value}
                    for metric, points in curves["curves"].items() for step, value in points)
        diagnostics.extend({**key, "metric": metric, "value": value} for metric, value in curves["diagnostics"].items())
    return rows, diagnostics, incomplete


def cell_curves(cell_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """What a finished cell's logged rows give the report, `{"curves": {metric: [[step, value],
    ...]}, "diagnostics": {metric: value}}`, and what is wrong with them (one phrase per problem).

    Read from `metrics.jsonl` (`agents.logger`); a cell tracked before runs wrote it (`runs/zoo`)
    keeps the same in `curves.json`. Tensorboard's event files are for looking at, never read here."""
    metrics = cell_dir / METRICS
    if metrics.exists():
        rows, problems = read_metrics(metrics)
        return curves_from_rows(rows), problems
    saved = cell_dir / CURVES
    if saved.exists():
        curves = _saved_curves(saved)
        return (curves, []) if curves is not None else ({"curves": {}, "diagnostics": {}}, [f"{CURVES} is damaged"])
    return {"curves": {}, "diagnostics": {}}, [f"no {METRICS} (a run from before it was written keeps its curves "
                                               "only in tensorboard events, which reports do not read)"]


def curves_from_rows(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The learning curves and end-of-training diagnostics in a run's rows (`{"step", "tag", "value"}`)."""
    points: dict[str, list[list[float]]] = defaultdict(list)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    diagnostic_tags = {d.tag for d in DIAGNOSTICS}
    for row in rows:
        if row["tag"] in CURVE_TAGS:
            points[CURVE_TAGS[row["tag"]]].append([row["step"], row["value"]])
        if row["tag"] in diagnostic_tags:
            series[row["tag"]].append((row["step"], row["value"]))
    return {"curves": {metric: sorted(p) for metric, p in points.items()}, "diagnostics": diagnostic_values(series)}


def _saved_curves(saved: Path) -> dict[str, Any] | None:
    """A tracked `curves.json`'s curves and diagnostics (None when it is damaged)."""
    try:
        curves = read_json(saved)
    except ValueError:
        return None
    if not (isinstance(curves, dict) and isinstance(curves.get("curves"), dict)
            and isinstance(curves.get("diagnostics"), dict)):
        return None
    return modern_keys({"curves": curves["curves"], "diagnostics": curves["diagnostics"]})


def diagnostic_values(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The end-of-training value of each separation diagnostic in `series` (tag -> (step, value)
    pairs): per-update tags averaged over the last tenth of the run, per-evaluation tags (the
    reward model's among them) the last."""
    values = {}
    for d in DIAGNOSTICS:
        if not series.get(d.tag):
            continue
        if d.per_update:
            end = max(step for step, _ in series[d.tag])
            values[d.name] = float(np.mean([v for step, v in series[d.tag] if step >= 0.9 * end]))
        else:
            values[d.name] = max(series[d.tag])[1]
    return values


@dataclass
class Experiment:
    """What a report is made of: the finished cells (none when read from the tidy table), their
    result rows, learning-curve points and diagnostics, and one line per missing cell and per
    incomplete learning curve."""

    finished: Evaluations
    rows: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def load_experiment(run_dir: Path) -> Experiment:
    """The finished cells below `run_dir` (checked to be poolable as seeds) and what they give; where
    the cells are gone, the same from the experiment's tidy table (`analysis.tidy`); a one-line
    error when there is neither."""
    finished, unreadable = read_cells(run_dir)
    if finished:
        check_poolable(run_dir, finished)
        rows = result_rows(finished)
        curves, diagnostics, incomplete = learning_curve_rows(run_dir, finished)
        return Experiment(finished, rows, curves, diagnostics, missing_cells(run_dir, finished, unreadable), incomplete)
    if (run_dir / TIDY).exists():  # the tracked results of an experiment whose cells are gone
        return Experiment({}, *read_tidy(run_dir / TIDY))
    why = f" ({next(iter(unreadable.values()))})" if unreadable else f" (no eval.json below it, and no {TIDY})"
    raise invalid_argument("run_dir", str(run_dir), f"holds no finished cell{why}")
