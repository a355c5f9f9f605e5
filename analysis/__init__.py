"""Analysis: what an experiment's results say, as tables, figures and pages.

- `report`: `oversight report`, the markdown that ties an experiment's tables and figures together;
  `metrics`: the registry of what is measured; `loading`: the cells (or the tracked
  `results_tidy.csv`, `tidy`) as rows; `tables`: summaries, comparisons, diagnostics;
  `results_page`: docs/results.md's generated tables.
- `statistics`: intervals over seeds as rliable recommends; `aggregate`: scores normalised across
  environments; `ladder`: results against the budget.
- `figures`, `zoo_figures`, `filmstrips`, `render`: figures, one panel per environment, the
  episodes recorded at evaluation, episodes as GIFs and filmstrips.
- `sweep_log`, `machine`: how long an experiment took, and on what machine.

It reads what the agents wrote (run directories, `metrics.jsonl`, `eval.json`) and imports no
command-line code; `oversight_cli` is above it.
"""
