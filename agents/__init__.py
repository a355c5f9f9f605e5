"""Agents for partial-oversight environments: the gradient-routed network and every baseline, the
trainers that train them, and the evaluator that scores them with the true reward.

The public API, importable from `agents`: `TrainConfig` and `PRESETS` (every setting of a run),
`METHODS` / `get_method` (the compared methods), `train` / `train_members` (train a run, or the
members of one program, with resume), `evaluate` (score a network with the true reward, with and
without each expert), `load_policy` (a trained network read back) and `ActorCritic` (the network).

- `config.TrainConfig`: every setting of a run (the CLI and specs are generated from it).
- `methods`: each compared method as a strategy object with hooks (routing, its controls, naive,
  filtering, the oracle, naive with early stopping, the reward model).
- `networks.ActorCritic`: the network, defined once; `batch.build_batch`: a rollout window's
  labels, weights, returns and advantages; `losses.update`: the loss and the update.
- `lean_trainer.train_members` (K runs as one program over a member axis; `train_lean` is K = 1)
  and `sb3.RoutedPPO` / `sb3.train_sb3`: the two trainers, on the same batch function and loss;
  `stacked`, `member_update`: the member axis's networks and update; `train`: the entry points
  with resume and the final evaluation.
- `evaluator`, `metrics`: first-episode evaluation with ablation, and its statistics.
- `run_dir`: the run-directory protocol (storage only); `policies`: trained networks read back;
  `files`: atomic writes; `scripted`: reference policies.
"""

from agents.config import PRESETS, TrainConfig
from agents.evaluator import evaluate
from agents.methods import METHODS, get_method
from agents.networks import ActorCritic
from agents.policies import load_policy
from agents.scripted import POLICIES, nearest_terminal_action, random_action
from agents.train import train, train_members

__all__ = [
    "METHODS",
    "POLICIES",
    "PRESETS",
    "ActorCritic",
    "TrainConfig",
    "evaluate",
    "get_method",
    "load_policy",
    "nearest_terminal_action",
    "random_action",
    "train",
    "train_members",
]
