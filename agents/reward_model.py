"""The learned reward model of the `reward_model` method (semi-supervised RL's first baseline).

`RewardModel` holds, for one training run, a small classifier of how an episode ended (INTENDED or
PROXY) from what an overseer would see: its last observation (`reward_model`), or a summary of
its whole trajectory (`reward_model_trajectory`, `agents.trajectories`), less the oversight map
(`agents.methods.LearnedReward` says why); and the data it learns from: the overseen episodes
seen so far, every fifth one held out to measure it. An unobserved episode's true return is then
the model's expectation: the sum over outcomes of the predicted probability times the mean return
of the overseen episodes that ended so, as the overseer paid them (its verdicts) (learned, not assumed: +1 and -1 in DiamondGhost,
0 for AbsentSupervisor's shortcut, penalty and goal together). The whole object is part of the
run's checkpoint.

What the last-frame model cannot do is the point of having it: in `Tampering` the last frame of a
pressed button is the last frame of a success, and in `AbsentSupervisor` the shortcut leaves no
trace in it (the trajectory model sees it, and the path to `Tampering-Blind`'s button, whose
last frames tell nothing).
"""

from __future__ import annotations

import torch
from torch import nn

from oversight_env.spec import Outcome

OUTCOMES = (Outcome.INTENDED, Outcome.PROXY)  # the classes, in order
HELD_OUT_EVERY = 5  # every fifth overseen episode measures the model instead of training it


class RewardModel:
    """A classifier of episode endings and its data; see the module docstring.

    Args:
        obs_shape: (C, H, W) of the observations.
        hidden: width of the classifier's hidden layer.
        capacity: the most recent labelled endings kept for training.
        steps, batch: gradient steps and their batch size per `fit`.
        learning_rate: Adam's.
    """

    def __init__(self, obs_shape: tuple[int, ...], hidden: int = 64, capacity: int = 50_000, steps: int = 8,
                 batch: int = 256, learning_rate: float = 1e-3, device: torch.device | str = "cpu"):
        inputs = 1
        for size in obs_shape:
            inputs *= size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, len(OUTCOMES))).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.capacity, self.steps, self.batch = capacity, steps, batch
        empty_obs = torch.zeros(0, *obs_shape, dtype=torch.float16)
        self.train_obs, self.train_labels = empty_obs, torch.zeros(0, dtype=torch.long)
        self.heldout_obs, self.heldout_labels = empty_obs.clone(), torch.zeros(0, dtype=torch.long)
        self.labelled = 0  # overseen endings seen
        self.reward_sum = torch.zeros(len(OUTCOMES), dtype=torch.float64)  # returns the overseer paid for overseen episodes, by class
        self.reward_count = torch.zeros(len(OUTCOMES), dtype=torch.float64)
        self.unobserved_correct = self.unobserved_total = 0  # since the last `accuracies`
        self.fits = 0  # seeds each fit's batches (a generator itself does not pickle)

    @staticmethod
    def classes(outcome: torch.Tensor) -> torch.Tensor:
        """Class indices (0 intended, 1 proxy) of Outcome codes (INTENDED or PROXY)."""
        return (outcome == Outcome.PROXY).long()

    def add(self, obs: torch.Tensor, outcome: torch.Tensor, paid_return: torch.Tensor) -> None:
        """Learn from overseen episodes: what the model judges of each, their outcomes (the overseer's
        verdicts) and their returns as the overseer paid them."""
        if not len(obs):
            return
        labels = self.classes(outcome).cpu()
        self.reward_sum.index_add_(0, labels, paid_return.double().cpu())
        self.reward_count.index_add_(0, labels, torch.ones(len(labels), dtype=torch.float64))
        heldout = (torch.arange(self.labelled, self.labelled + len(obs)) % HELD_OUT_EVERY) == 0
        self.labelled += len(obs)
        obs = obs.to("cpu", torch.float16)
        self.heldout_obs = torch.cat([self.heldout_obs, obs[heldout]])[-self.capacity:]
        self.heldout_labels = torch.cat([self.heldout_labels, labels[heldout]])[-self.capacity:]
        self.train_obs = torch.cat([self.train_obs, obs[~heldout]])[-self.capacity:]
        self.train_labels = torch.cat([self.train_labels, labels[~heldout]])[-self.capacity:]

    def fit(self) -> float | None:
        """`steps` gradient steps on random batches of the training endings; their mean loss."""
        if len(self.train_labels) == 0:
            return None
        device = next(self.net.parameters()).device
        generator = torch.Generator().manual_seed(self.fits)
        self.fits += 1
        losses = []
        for _ in range(self.steps):
            idx = torch.randint(len(self.train_labels), (min(self.batch, len(self.train_labels)),), generator=generator)
            logits = self.net(self.train_obs[idx].to(device, torch.float32))
            loss = nn.functional.cross_entropy(logits, self.train_labels[idx].to(device))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    @torch.no_grad()
    def probabilities(self, obs: torch.Tensor) -> torch.Tensor:
        """(n, 2): P(intended), P(proxy) of each ending."""
        return torch.softmax(self.net(obs.float()), dim=-1)

    def class_rewards(self) -> torch.Tensor:
        """(2,): the mean return of overseen episodes of each class, as the overseer paid them (0 before any)."""
        return (self.reward_sum / self.reward_count.clamp(min=1)).float()

    @torch.no_grad()
    def expected_reward(self, obs: torch.Tensor) -> torch.Tensor:
        """(n,): each episode's true return as the model expects it."""
        return self.probabilities(obs) @ self.class_rewards().to(obs.device)

    def score_unobserved(self, obs: torch.Tensor, outcome: torch.Tensor) -> None:
        """Count how often the model names the outcome of unobserved endings: the testbed knows them,
        the method never trains on them."""
        if len(obs):
            predicted = self.probabilities(obs).argmax(dim=-1)
            self.unobserved_correct += int((predicted == self.classes(outcome)).sum())
            self.unobserved_total += len(obs)

    @torch.no_grad()
    def accuracies(self) -> dict[str, float]:
        """Accuracy on held-out overseen endings and on the unobserved endings since the last call."""
        result = {}
        if len(self.heldout_labels):
            device = next(self.net.parameters()).device
            predicted = self.probabilities(self.heldout_obs.to(device)).argmax(dim=-1).cpu()
            result["heldout_accuracy"] = float((predicted == self.heldout_labels).float().mean())
        if self.unobserved_total:
            result["unobserved_accuracy"] = self.unobserved_correct / self.unobserved_total
            self.unobserved_correct = self.unobserved_total = 0
        return result
