"""Gradient routing, independent of any RL trainer: per-sample gradient masks, routed
mixture-of-experts layers with a gate, end-of-episode labels propagated to every step, and
ablation of a named module (Cloud et al. 2024, arXiv 2410.04332). Filled in by the routing issue.
"""
