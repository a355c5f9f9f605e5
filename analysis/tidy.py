"""An experiment's results as one tidy table, `results_tidy.csv`: one row per cell, policy variant
and metric of the final evaluations (`kind` final), per cell, step and metric of the learning
curves (curve), and per cell and end-of-training diagnostic (diagnostic); each row with its cell's
config hash and the commit that produced it.

A report writes it beside its other tables from the cells, and rebuilds every table and figure
from it alone where the cells are gone: an experiment's tracked results are this one file (the
filmstrips, which replay the episodes the cells recorded, need the cells).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from agents.files import write_csv
from agents.legacy_names import modern_name
from analysis.metrics import FINAL_METRICS
from oversight_env.spec import invalid_argument

TIDY = "results_tidy.csv"
TIDY_COLUMNS = ["kind", "method", "oversight", "seed", "variant", "env_steps", "metric", "value", "config_hash", "commit"]
KEY = ("method", "oversight", "seed")


def final_values() -> list[str]:
    """The final evaluation's columns that are values (the others say which cell and variant a row is)."""
    return ["evaluated", *(m.name for m in FINAL_METRICS)]


def config_hash(config: dict[str, Any]) -> str:
    """A short hash of a cell's whole config: equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tidy_rows(finished: dict[str, dict[str, Any]], rows: list[dict[str, Any]], curves: list[dict[str, Any]],
              diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tidy rows of an experiment: its result rows (`report.result_rows`), learning curves and
    diagnostics, each tagged with its cell's config hash and commit (`finished`: the cells' eval.json)."""
    provenance = {}
    for report in finished.values():
        config = report["config"]
        provenance[(config["method"], config["oversight_prob"], config["seed"])] = (
            config_hash(config), report.get("code") or "")

    def tagged(row: dict[str, Any]) -> dict[str, Any]:
        hashed, commit = provenance.get(tuple(row[k] for k in KEY), ("", ""))
        return {**row, "config_hash": hashed, "commit": commit}

    out = []
    for row in rows:
        for metric in final_values():
            out.append(tagged({"kind": "final", **{k: row[k] for k in KEY}, "variant": row["variant"],
                               "env_steps": row["env_steps"], "metric": metric, "value": float(row[metric])}))
    for row in curves:
        out.append(tagged({"kind": "curve", **{k: row[k] for k in KEY}, "variant": "", "env_steps": row["env_steps"],
                           "metric": row["metric"], "value": row["value"]}))
    for row in diagnostics:
        out.append(tagged({"kind": "diagnostic", **{k: row[k] for k in KEY}, "variant": "", "env_steps": "",
                           "metric": row["metric"], "value": row["value"]}))
    return out


def read_tidy(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The result rows, learning curves and diagnostics a `results_tidy.csv` holds, as a report
    builds them from cells (old names read as today's, `agents.legacy_names`); a one-line error naming
    the file when it is not such a table."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != TIDY_COLUMNS:
                raise invalid_argument("file", str(path), f"expected the columns {TIDY_COLUMNS}")
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise invalid_argument("file", str(path), f"cannot be read as a table ({error})") from None
    results: dict[tuple, dict[str, Any]] = {}
    curves, diagnostics = [], []
    try:
        for line in lines:
            line = {**line, "variant": modern_name(line["variant"]), "metric": modern_name(line["metric"])}
            key = {"method": line["method"], "oversight": float(line["oversight"]), "seed": int(line["seed"])}
            value = float(line["value"])
            if line["kind"] == "final":
                row = results.setdefault((*key.values(), line["variant"]),
                                         {**key, "variant": line["variant"], "env_steps": int(line["env_steps"])})
                row[line["metric"]] = bool(value) if line["metric"] == "evaluated" else (
                    int(value) if line["metric"] == "episodes" else value)
            elif line["kind"] == "curve":
                curves.append({**key, "env_steps": int(float(line["env_steps"])), "metric": line["metric"], "value": value})
            elif line["kind"] == "diagnostic":
                diagnostics.append({**key, "metric": line["metric"], "value": value})
            else:
                raise ValueError(f"unknown kind {line['kind']!r}")
    except (ValueError, KeyError) as error:
        raise invalid_argument("file", str(path), f"holds a row that is not a result ({error})") from None
    rows = list(results.values())
    for row in rows:
        for metric in final_values():
            row.setdefault(metric, math.nan)
    return rows, curves, diagnostics


def write_tidy(path: Path, rows: list[dict[str, Any]]) -> None:
    write_csv(path, rows, TIDY_COLUMNS)
