"""The report's pictures of what the policies do: per method, the episode its evaluated policy played
at the final evaluation of its cell of lowest oversight level and seed (`episode.json`, recorded by
`agents.episodes`), replayed from its actions and drawn as a PNG filmstrip. Nothing here loads a
policy: a cell that recorded no episode (trained before 2026-12-07) gets no picture, said so."""

from __future__ import annotations

import sys
from pathlib import Path

from agents.episodes import EPISODE
from agents.run_dir import read_json
from analysis.loading import Evaluations
from analysis.render import filmstrip, replay


def policy_filmstrips(run_dir: Path, finished: Evaluations) -> list[tuple[str, str]]:
    """Draw each method's filmstrip in `run_dir`; (method, file name) of each one drawn."""
    first: dict[str, tuple[float, int, str]] = {}
    for cell, report in finished.items():
        config = report["config"]
        if not (run_dir / cell / EPISODE).exists():
            continue
        key = (config["oversight_prob"], config["seed"], cell)
        first[config["method"]] = min(first.get(config["method"], key), key)
    for method in sorted({report["config"]["method"] for report in finished.values()} - set(first)):
        print(f"report: no filmstrip of {method}: none of its cells recorded an episode ({EPISODE}; "
              "`oversight render CELL` plays one)", file=sys.stderr)
    strips = []
    for method, (oversight, seed, cell) in sorted(first.items()):
        config = finished[cell]["config"]
        try:
            episode = read_json(run_dir / cell / EPISODE)
            frames = replay(config, episode)
        except (ValueError, KeyError, TypeError) as error:  # a damaged or stale recording: no picture, said so
            print(f"report: no filmstrip of {cell}: {error}", file=sys.stderr)
            continue
        ablated = f", without {episode['ablate']}" if episode.get("ablate") else ""
        title = f"{config['env_id']}: {method} at {100 * oversight:g}% oversight{ablated}, seed {seed} (light cells are overseen)"
        name = f"episode_{method}.png"
        filmstrip(frames, run_dir / name, title)
        strips.append((method, name))
    return strips
