"""Agents for partial-oversight environments: the gradient-routed network and every baseline, the
trainers that train them, and the evaluator that scores them with the true reward.

- `config.TrainConfig`: every setting of a run (the CLI and specs are generated from it).
- `methods`: each compared method as a strategy object with hooks (routing, its controls, naive,
  filtering, the oracle, naive with early stopping).
- `networks.ActorCritic`: the network, defined once; `batch.build_batch`: a rollout window's
  labels, weights, returns and advantages; `losses.update`: the loss and the update.
- `lean_trainer.train_members` (K runs as one program over a member axis; `train_lean` is K = 1)
  and `sb3.RoutedPPO` / `sb3.train_sb3`: the two trainers, on the same batch function and loss;
  `stacked`: the member axis's networks and update; `train.train` / `train.train_members`: the
  entry points with resume.
- `evaluator`, `metrics`: first-episode evaluation with ablation, and its statistics.
- `run_dir`: the run-directory protocol; `files`: atomic writes; `scripted`: reference policies.
"""

from agents.scripted import POLICIES, nearest_terminal_action, random_action

__all__ = ["POLICIES", "nearest_terminal_action", "random_action"]
