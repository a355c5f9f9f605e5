"""Carrying running episodes into the next window, so that no step is trained before its
episode's label exists (the `routing_full_labels` method; `Method.carry_running_episodes`).

A step's label is known only when its episode ends. By default a window's steps train in that
window's update, so the steps of episodes still running at the window's end train unlabelled.
With carrying, those steps wait: they are put before the next window's steps (their episode
continues there), and they train in the first update after their episode ends, with its label
and its whole return. A carried step is one update older than the policy that trains on it.

Windows are dicts of (T, B, ...) tensors (the lean trainer's rollout buffers) with a `valid`
mask (T, B): steps that count (the carried steps of each environment are right-aligned, padding
before them is not valid; the last, partial window of a run has steps beyond the budget).
"""

from __future__ import annotations

import torch

Window = dict[str, torch.Tensor]


def episode_finished(done: torch.Tensor) -> torch.Tensor:
    """(T, B) bool: whether each step's episode ends within the window, at that step or later."""
    return done.int().flip(0).cummax(0).values.flip(0).bool()


def extend(carry: Window | None, window: Window, valid: torch.Tensor) -> tuple[Window, torch.Tensor]:
    """The carried steps (C rows) followed by `window` (T rows): (C + T, B, ...) tensors and their
    valid mask. Without a carry, the window itself."""
    if carry is None:
        return window, valid
    extended = {key: torch.cat([carry[key], value]) for key, value in window.items()}
    return extended, torch.cat([carry["valid"], valid])


def split(window: Window, valid: torch.Tensor) -> tuple[torch.Tensor, Window | None]:
    """Which steps of an (extended) window train now, (T, B) bool: the valid steps whose episode
    ends within it; and the carry for the next window: the other valid steps (each environment's
    running episode, the end of its steps), in the rows from the earliest of them to the window's
    end (None when there are none)."""
    finished = episode_finished(window["done"])
    waiting = valid & ~finished
    if not bool(waiting.any()):
        return valid & finished, None
    rows = len(waiting) - int(waiting.any(1).nonzero()[0])  # from the earliest waiting step to the end
    carry = {key: value[-rows:].clone() for key, value in window.items()}
    carry["valid"] = waiting[-rows:].clone()
    carry["done"][~carry["valid"]] = True  # padding before a carried episode belongs to no episode
    return valid & finished, carry
