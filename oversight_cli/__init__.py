"""The `oversight` command line: demo now; train, evaluate, sweep and report as they arrive."""
