"""The routing primitive: a per-sample gradient mask that leaves the forward value unchanged."""

from __future__ import annotations

import torch


def route(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` in the forward pass; in the backward pass, each sample's gradient scaled by its mask.

    `mask` has one entry per sample (shape (B,), bool or weights in [0, 1]): 1 lets the gradient
    through to whatever produced `x`, 0 stops it (`x * m + x.detach() * (1 - m)`).
    """
    if mask.shape != x.shape[:1]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} is invalid: expected one entry per sample, ({x.shape[0]},)")
    m = mask.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return x * m + x.detach() * (1 - m)
