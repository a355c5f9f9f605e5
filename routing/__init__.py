"""Gradient routing (Cloud et al. 2024, arXiv 2410.04332), independent of any RL trainer.

- `route(x, mask)`: the forward value is unchanged; gradient flows only where the mask allows.
- `RoutedMixture`: named experts mixed by a gate in hidden space, then a shared head; a
  per-sample label decides which parts of the network each sample may update.
- `gate_loss`: binary cross-entropy of the gate toward each labelled sample's expert.
- `propagate_episode_labels`: an end-of-episode label, copied back to every step of its episode.
- `ablated(model, name)`: a context manager that removes a named expert from every mixture.
- `routed_backward(losses, parameters)`: parameter-level routing: each loss's gradient reaches
  only its own parameters; `RoutedMixture.frozen_for(label)` names what a label may not update.

Labels are integers: `UNLABELLED` (0) lets a sample update everything; label k (1-based) routes
it to the k-th expert of the mixture.
"""

from routing.labels import UNLABELLED, propagate_episode_labels
from routing.masks import route
from routing.mixture import MixtureOutput, RoutedMixture, ablated, gate_loss
from routing.parameters import routed_backward

__all__ = ["UNLABELLED", "MixtureOutput", "RoutedMixture", "ablated", "gate_loss", "propagate_episode_labels", "route",
           "routed_backward"]
