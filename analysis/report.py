"""`oversight report RUN_DIR`: the report of an experiment, as markdown with its tables and figures.

The pieces live beside it: `analysis.loading` reads the cells (or the tidy table where they are
gone), `analysis.metrics` says what is measured, `analysis.tables` computes and formats the tables,
`analysis.figures` draws, `analysis.filmstrips` draws the recorded episodes. This module writes
the files and the markdown that ties them together. Writes into RUN_DIR:
- `results.csv`: one row per cell and evaluated policy variant (the final evaluation).
- `summary.csv` and the table in `report.md`: per method and oversight level, over seeds, the
  mean and the interquartile mean, each with a 95% bootstrap confidence interval, of the evaluated policy's
  return per step and of P(proxy | proxy cell unobserved).
- `learning_curves.csv`: the periodic evaluations logged during training (each cell's
  `metrics.jsonl`), never tensorboard's event files.
- `diagnostics.csv` and tables in `report.md`: do a routed network's experts separate (the gate
  on each route's samples, the KL between the two experts' policies, the labelled episodes each
  expert saw) at the end of training; how accurate a learned reward model is, on held-out
  overseen endings and on unobserved ones.
- `comparison.csv` and a table: routing against each other method, per oversight level and over
  all levels: the difference of means and the probability of improvement, with intervals
  (`analysis.statistics`: stratified bootstrap, as rliable recommends).
- `return_vs_oversight.png`, `proxy_when_unobserved_vs_oversight.png`, `learning_curves.png`,
  `performance_profile.png`, and `episode_<method>.png`: the episode each method's evaluated
  policy played at its final evaluation.
- `report.md`, which embeds them, and lists the expected cells that have not finished (the sweep's
  `experiment.json` names every cell) and the cells whose learning curves are incomplete.

A report pools seeds: it refuses cells that differ in anything but method, oversight level and
seed (another environment, budget or setting), and two cells of the same method, level and seed.
An experiment of several environments (`[[envs]]`) gets this report in each environment's
directory and an index `report.md` above them (`write_index`): their tables, one panel per
environment (`environments.png`) and, with `oracle_all_labels` runs, the aggregate over
environments (`aggregate.csv`, `aggregate.png`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from agents.files import atomic_write, write_csv
from agents.methods import report_reference
from agents.run_dir import EVALUATION, read_json
from analysis.figures import method_colors, plot_learning_curves, plot_performance_profile, plot_vs_oversight
from analysis.filmstrips import policy_filmstrips
from analysis.loading import load_experiment, read_cells, result_rows
from analysis.metrics import HEADLINE, METRICS, TEST_HEADLINE
from analysis.statistics import MIN_RUNS, RESAMPLES
from analysis.sweep_log import sweep_log_text
from analysis.tables import (
    ALL_LEVELS,
    COMPARISON_COLUMNS,
    DIAGNOSTIC_COLUMNS,
    SUMMARY_COLUMNS,
    comparison_rows,
    comparison_table,
    diagnostics_table,
    markdown_table,
    overview_table,
    result_columns,
    reward_model_table,
    summary_rows,
)
from analysis.tidy import TIDY, read_tidy, tidy_rows, write_tidy
from oversight_env.spec import invalid_argument

HEADLINE_FIGURES = ("return_vs_oversight.png", "proxy_when_unobserved_vs_oversight.png")  # one per HEADLINE metric


def _comparison_section(comparisons: list[dict]) -> str:
    if not comparisons:
        return ""
    reference = comparisons[0]["reference"]
    return f"""
## {reference} against each other method

Each cell: the difference of mean return per step ({reference} minus the method) with its 95%
bootstrap interval over seeds ("better" or "worse" when the interval excludes 0, "no clear
difference" otherwise, "too few seeds" with fewer than {MIN_RUNS} seeds on a side: no interval);
then P(>), the probability of improvement: the chance that a run of
{reference} scores above a run of the method (ties count half; 0.5: no difference), with its 95%
bootstrap interval. The row "{ALL_LEVELS}" pools every oversight level both methods have, each
level a stratum resampled within itself (stratified bootstrap; {RESAMPLES:,} resamples
throughout). With few seeds the percentile bootstrap is narrower than it should be: read
borderline verdicts as hints.

{comparison_table(comparisons)}
"""


def _test_placement_section(summary: list[dict]) -> str:
    if not any(r["metric"] in TEST_HEADLINE for r in summary):
        return ""
    return f"""
## Under the test placement

The environment places some objects differently in training and at test (a distribution
shift). The same policies on fresh episodes drawn from the test placement:

{markdown_table(summary, TEST_HEADLINE)}
"""


def _filmstrip_section(strips: list[tuple[str, str]]) -> str:
    if not strips:
        return ""
    pictures = "\n\n".join(f"![{method}]({name})" for method, name in strips)
    return f"""
## What the policies do

The episode each method's evaluated policy (routed methods with the proxy expert ablated) played
at the final evaluation of its cell of lowest oversight level and seed, recorded there
(`episode.json`) and replayed here; light cells are overseen. More with
`oversight render RUN_DIR/<cell> --out episodes.gif`.

{pictures}
"""


def _diagnostics_section(diagnostics: list[dict[str, Any]]) -> str:
    table = diagnostics_table(diagnostics)
    if not table:
        return ""
    return f"""
## Do the experts separate? (routed methods)

At the end of training, mean over seeds: the gate (the intended expert's weight) on training
samples labelled intended, labelled proxy and unlabelled (averaged over the last tenth of the run;
routing wants 1, 0 and in between); the gate along fresh episodes of the whole policy that ended at
an unobserved intended and at an unobserved proxy (the last evaluation; routing wants near 1 and
near 0: a gate that sorts labelled samples but not these has learned to read the oversight marks,
not the behaviour); the KL divergence from the intended-only to the proxy-only
policy on the first states of fresh episodes (0: the experts act alike); and the labelled
episodes each expert saw. Per seed in `diagnostics.csv`.

{table}
"""


def _reward_model_section(diagnostics: list[dict[str, Any]]) -> str:
    table = reward_model_table(diagnostics)
    if not table:
        return ""
    return f"""
## How good is the reward model? (`reward_model`, `routing_reward_model`)

At the last evaluation, mean over seeds: the model's accuracy (which terminal an episode ended at)
on the overseen endings held out from its fit (every fifth), which is what an overseer could
measure, and on the unobserved endings of training since the evaluation before, which only the
testbed knows; a gap between them is a model that looks right and is not (a spoofed ending, a
shortcut that leaves no trace). Then the overseen endings it has learned from, and, for
`routing_reward_model`, the unobserved episodes it labelled (sure at 0.9). Per seed in
`diagnostics.csv`.

{table}
"""


MISSING_TEXT = """Cells the experiment expects that have no readable final evaluation: they are left out of every
table above. Run the sweep again to train them (part-way cells continue from their checkpoint)."""
INCOMPLETE_TEXT = """Cells whose tensorboard events are missing or damaged: their rows in `learning_curves.csv` stop
early or are absent (their final evaluations above are unaffected)."""


def _list_section(title: str, lines: list[str], text: str) -> str:
    if not lines:
        return ""
    items = "\n".join(f"- {line}" for line in lines)
    return f"\n## {title}\n\n{text}\n\n{items}\n"


def write_index(run_dir: Path, reference: str | None = None) -> Path:
    """The report of an experiment of several environments: each environment's own report in its
    directory (those with a finished cell), and `report.md` here with each one's table and a link."""
    from analysis.zoo_figures import plot_environment_panels

    record = read_json(run_dir / "experiment.json")
    sections, env_rows, summaries = [], {}, {}
    for env in record["envs"]:
        env_dir = run_dir / env["name"]
        if not any(env_dir.glob(f"**/{EVALUATION}")) and not (env_dir / TIDY).exists():
            sections.append(f"## {env['name']}\n\n`{env['id']}`: no finished cell yet.\n")
            continue
        finished, tidy = read_cells(env_dir)[0], env_dir / TIDY
        env_rows[env["name"]] = result_rows(finished) if finished else read_tidy(tidy)[0] if tidy.exists() else []
        write_report(env_dir, reference if reference in {r["method"] for r in env_rows[env["name"]]} else None)
        summary = summaries[env["name"]] = summary_rows(env_rows[env["name"]])
        kwargs = f" {env['kwargs']}" if env["kwargs"] else ""
        sections.append(f"## {env['name']}\n\n`{env['id']}`{kwargs}: [its report]({env['name']}/report.md)\n\n"
                        f"{markdown_table(summary)}\n")
    text = f"# Report: {run_dir.name}\n\n{record['description']}\n\n"
    # One colour per method in both figures, though the aggregate may lack some methods.
    colors = method_colors(sorted({r["method"] for rows in env_rows.values() for r in rows}))
    every_method = {r["method"] for rows in env_rows.values() for r in rows}
    text += _aggregate_section(run_dir, record, env_rows, reference or report_reference(sorted(every_method)), colors)
    text += _overview_section(summaries)
    if summaries:
        plot_environment_panels(summaries, run_dir / "environments.png", colors)
        text += ("## Each environment\n\n![each environment](environments.png)\n\nOne panel per environment and "
                 "metric; per oversight level, every method's mean over seeds with its 95% bootstrap interval "
                 "(n seeds in the tables below); hollow: the test placement, where an environment has one.\n\n")
    text += ("One report per environment; each table as in them (mean [95% CI] / IQM [95% CI] over seeds). In every "
             "environment *intended* names the intended outcome and *proxy* the proxy (DiamondGhost's names; what "
             "each is elsewhere, a tamper button or a hoard of keys, is in its docstring and the README's "
             "Environments table).\n\n")
    text += "\n".join(sections) + "\n" + sweep_log_text(run_dir)
    with atomic_write(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    return run_dir / "report.md"


def _overview_section(summaries: dict[str, list[dict]]) -> str:
    if not summaries:
        return ""
    return ("## At a glance\n\nPer method, environment and oversight level: the mean over seeds of the return per "
            "step / of P(proxy | proxy unobserved); in bold, each column's best return among the methods without the "
            "oracles' labels; *test*: under the environment's test placement. Intervals and seed counts: each "
            "environment's table below.\n\n" + overview_table(summaries) + "\n\n")


def _aggregate_section(run_dir: Path, record: dict, env_rows: dict[str, list[dict]], reference: str,
                       colors: dict[str, Any]) -> str:
    """Scores normalised per environment and aggregated (`analysis.aggregate`), when the
    experiment has `oracle_all_labels` runs to normalise by; `aggregate.csv` beside."""
    from analysis.aggregate import (
        AGGREGATE_COLUMNS,
        UPPER,
        aggregate_rows,
        aggregate_table,
        normalised_scores,
        random_policy_score,
        scoring_kwargs,
    )
    from analysis.zoo_figures import plot_aggregate

    if not any(r["method"] == UPPER for rows in env_rows.values() for r in rows):
        return (f"Add the method `{UPPER}` to the spec to see scores normalised per environment and aggregated "
                "over them.\n\n")
    entries = {env["name"]: env for env in record["envs"]}
    scored = {name: scoring_kwargs(entries[name]["id"], entries[name]["kwargs"]) for name in env_rows}
    random = {(name, level): random_policy_score(entries[name]["id"], scored[name], level, episodes=4096)
              for name, rows in env_rows.items() for level in sorted({r["oversight"] for r in rows})}
    shifted = sorted(name for name in env_rows if scored[name] != entries[name]["kwargs"])
    normalised = normalised_scores(env_rows, random)
    if not normalised:
        return f"No environment has `{UPPER}` runs that beat a random policy: nothing to normalise by.\n\n"
    methods = {m for by_method in normalised.values() for m in by_method}
    reference = reference if reference in methods else min(methods)
    rows = aggregate_rows(normalised, reference)
    write_csv(run_dir / "aggregate.csv", rows, AGGREGATE_COLUMNS)
    plot_aggregate(rows, reference, run_dir / "aggregate.png", colors)
    left_out = sorted(set(random) - set(normalised))
    left_out_note = "" if not left_out else (
        "Left out, because `" + UPPER + "` has no runs there or does not beat the random policy there: "
        + ", ".join(f"{name} at {level:g}" for name, level in left_out) + ".\n")
    test_note = "" if not shifted else (
        "; " + ", ".join(shifted) + " scored under its test placement, where the intended object and the proxy part")
    return f"""## Across environments

Each run's score normalised on its environment: 0 is a uniformly random policy (fresh episodes),
1 the mean of `{UPPER}` (the true reward of every episode for the whole budget) at that level{test_note}.
Per method: the interquartile mean over all its runs (n runs in {len(normalised)} strata, each an
environment at an oversight level) with a 95% stratified bootstrap interval ({RESAMPLES:,}
resamples, each stratum within itself), the plain mean, and the probability that a run of
`{reference}` scores above a run of the method (ties half), averaged over the strata both have,
with its interval.
{left_out_note}
{aggregate_table(rows, reference)}

![across environments](aggregate.png)

"""


def write_report(run_dir: str | Path, reference: str | None = None) -> Path:
    """Write every table and figure of `run_dir` and return the path of `report.md`; print each
    missing cell and each incomplete learning curve to stderr (report.md lists them too). The
    comparison sets `reference` against every other method (None: `routing`, when the experiment
    has it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise invalid_argument("run_dir", str(run_dir), "no such directory")
    experiment = run_dir / "experiment.json"
    if experiment.exists() and "envs" in read_json(experiment):
        return write_index(run_dir, reference)
    experiment = load_experiment(run_dir)
    finished, rows, curves, diagnostics = experiment.finished, experiment.rows, experiment.curves, experiment.diagnostics
    missing, incomplete = experiment.missing, experiment.incomplete
    methods = sorted({r["method"] for r in rows})
    if reference is not None and reference not in methods:
        raise invalid_argument("reference", reference, f"expected a method of the experiment: one of {methods}")
    if finished:
        write_tidy(run_dir / TIDY, tidy_rows(finished, rows, curves, diagnostics))
    summary = summary_rows(rows)
    cells = len({(r["method"], r["oversight"], r["seed"]) for r in rows})
    for line in missing:
        print(f"report: missing cell {line}", file=sys.stderr)
    for line in incomplete:
        print(f"report: incomplete learning curve {line}", file=sys.stderr)
    write_csv(run_dir / "results.csv", rows, result_columns())
    write_csv(run_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv(run_dir / "learning_curves.csv", curves, ["method", "oversight", "seed", "env_steps", "metric", "value"])
    write_csv(run_dir / "diagnostics.csv", diagnostics, DIAGNOSTIC_COLUMNS)
    comparisons = comparison_rows(rows, reference)
    write_csv(run_dir / "comparison.csv", comparisons, COMPARISON_COLUMNS)
    for metric, name in zip(HEADLINE, HEADLINE_FIGURES):
        plot_vs_oversight(summary, metric, METRICS[metric].label, run_dir / name)
    plot_learning_curves(curves, run_dir / "learning_curves.png")
    plot_performance_profile(rows, run_dir / "performance_profile.png")
    strips = policy_filmstrips(run_dir, finished)
    spec = run_dir / "experiment.json"
    description = read_json(spec)["description"] + "\n\n" if spec.exists() else ""
    missing_note = f" ({len(missing)} missing: see below)" if missing else ""
    text = f"""# Report: {run_dir.name}

{description}{cells} finished cells{missing_note}{"" if finished else f" (read from {TIDY}: the cells are not here)"}. Each cell's policy is evaluated on fresh episodes with the ground-truth
reward: routed methods with the proxy expert ablated, the others whole (`results.csv` has every
variant). *Return per step* is the mean discounted (0.97) return per step over each
environment's first episode; *P(proxy | proxy unobserved)* is how often the agent takes the proxy
when the proxy's cell is not watched: goal misgeneralization. Each entry: the mean over seeds with
its 95% percentile bootstrap interval ({RESAMPLES:,} resamples of the seeds), then the
interquartile mean (IQM: the mean of the middle half of the seeds, robust to an outlying one)
with its own bootstrap interval; n (seeds) in its column.

{markdown_table(summary)}
{_test_placement_section(summary)}{_comparison_section(comparisons)}{_diagnostics_section(diagnostics)}{_reward_model_section(diagnostics)}{_list_section("Missing cells", missing, MISSING_TEXT)}{_list_section("Incomplete learning curves", incomplete, INCOMPLETE_TEXT)}
![return per step vs oversight](return_vs_oversight.png)

![P(proxy | proxy unobserved) vs oversight](proxy_when_unobserved_vs_oversight.png)

![learning curves](learning_curves.png)

![performance profile](performance_profile.png)

The performance profile: for each method, the fraction of its runs (every oversight level and
seed; n in the legend) whose return per step exceeds τ; shaded, a 95% stratified bootstrap band
(each level resampled within itself). A curve above another is better at every threshold.
{_filmstrip_section(strips)}
{sweep_log_text(run_dir)}Files: `{TIDY}` (every result, curve point and diagnostic as rows, with each cell's config hash
and commit: what the tables and figures are rebuilt from), `results.csv` (every cell and variant),
`summary.csv`, `comparison.csv`, `learning_curves.csv`, `diagnostics.csv`; tensorboard:
`tensorboard --logdir {run_dir}`.
"""
    with atomic_write(run_dir / "report.md") as tmp:
        tmp.write_text(text)
    return run_dir / "report.md"
