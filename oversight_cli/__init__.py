"""The `oversight` command and the experiment orchestration behind it: the demo, training and
evaluation of single runs, experiment specs, sweeps over their cells (local processes or Ray), and
reports with tables and figures."""
