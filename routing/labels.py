"""End-of-episode labels, propagated back to every step of the episode.

A step's label is known only once its episode ends. Within a rollout window of T steps, a step
takes the label its episode ends with, at that step or later in the window. Steps of episodes
still running when the window closes get `UNLABELLED`: they update every part of a routed
network, like unobserved episodes. When such an episode ends in the next window, its steps
there get its label; its steps in the earlier window were already used, unlabelled. (Holding them
back until the label arrives would mean training on stale, off-policy data.)
"""

from __future__ import annotations

import torch

UNLABELLED = 0


def propagate_episode_labels(done: torch.Tensor, final_label: torch.Tensor) -> torch.Tensor:
    """Labels for every step of a (T, B) rollout window.

    `done[t, b]` is True when environment b's episode ended at step t, and `final_label[t, b]`
    is that episode's label (read only where `done`). Returns (T, B) labels: each step gets the
    label of the first episode end at or after it in the same environment, or `UNLABELLED` if
    its episode has not ended by the end of the window.
    """
    if done.shape != final_label.shape or done.dim() != 2:
        raise ValueError(
            f"done {tuple(done.shape)} and final_label {tuple(final_label.shape)} are invalid: expected two (T, B) tensors"
        )
    labels = torch.empty_like(final_label)
    running = torch.full_like(final_label[0], UNLABELLED)
    for t in range(done.shape[0] - 1, -1, -1):
        running = torch.where(done[t], final_label[t], running)
        labels[t] = running
    return labels
