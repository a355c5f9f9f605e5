"""Parameter-level gradient routing: each loss updates only the parameters it is allowed to.

Activation-level routing (`routing.masks.route`) stops gradients at chosen activations, so what a
sample may update depends on where the stop sits in the network. Parameter-level routing names
the parameters instead: each group of samples has its own loss and its own set of parameters,
and its gradient reaches that set only (the selective gradient masking of arXiv 2512.05648).
Parameters no loss may reach keep no gradient (`.grad` stays None), so optimizers such as Adam
leave them and their moments untouched in that step.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from torch import nn


def routed_backward(losses: Mapping[Hashable, torch.Tensor], parameters: Mapping[Hashable, Sequence[nn.Parameter]]) -> None:
    """For each key, add the gradient of `losses[key]` with respect to `parameters[key]` (and to
    nothing else) to those parameters' `.grad`. One backward pass per loss; the graph is kept
    until the last. A loss that depends on no parameter (e.g. a gate loss without labelled
    samples, a constant zero) adds nothing."""
    missing = [key for key in losses if key not in parameters]
    if missing:
        raise ValueError(f"losses {missing} are invalid: no parameters are named for them")
    keys = [key for key in losses if losses[key].requires_grad]
    for i, key in enumerate(keys):
        params = list(parameters[key])
        grads = torch.autograd.grad(losses[key], params, retain_graph=i < len(keys) - 1, allow_unused=True)
        for param, grad in zip(params, grads):
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad
