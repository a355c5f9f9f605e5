"""Analysis: what an experiment's results say, as tables, figures and pages.

- `report`: `oversight report` (every table and figure of an experiment, from its cells or its
  tracked `results_tidy.csv`); `tidy`: that table; `results_page`: docs/results.md's generated tables.
- `statistics`: intervals over seeds as rliable recommends; `aggregate`: scores normalised across
  environments; `ladder`: results against the budget.
- `figures`, `zoo_figures`, `render`: figures, one panel per environment, episodes as GIFs and
  filmstrips.
- `sweep_log`, `machine`: how long an experiment took, and on what machine.

It reads what the agents wrote (run directories, `metrics.jsonl`, `eval.json`) and imports no
command-line code; `oversight_cli` is above it.
"""
