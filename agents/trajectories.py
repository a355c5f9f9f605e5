"""What a learned reward model keeps of each running episode from one rollout window to the next.

Episodes outlive rollout windows: one that ends in this window began in an earlier one. A reward
model that scores an unobserved episode needs two things from its earlier steps:

- the rewards the overseer already paid it (`paid_before`): the model predicts the episode's whole
  true return, and an episode's last reward is what makes the paid total come to it (in
  `AbsentSupervisor` the penalty for the shortcut is paid on the tile, not at the end);
- for a model of whole trajectories (`reward_model_trajectory`), a summary of what the agent saw
  on the way (`summaries`): per step, the observation planes and the planes under the agent (what
  it stood on), averaged over the episode's observations, its last one included; with the last
  observation itself beside them. A linear layer over the mean of per-step features is the mean
  of a linear per-step model: a pooled per-step model whose per-step features are fixed, so that
  no episode's frames need keeping.

`RunningEpisodes` holds those sums per environment; it is part of a run's checkpoint, and the
batched twin's state is too, so a resumed run continues the same episodes with the same sums.
"""

from __future__ import annotations

import torch


def step_features(obs: torch.Tensor, agent_plane: int) -> torch.Tensor:
    """(..., 2C, H, W): the planes of `obs` (..., C, H, W), then each plane masked to the agent's cell."""
    agent = obs[..., agent_plane:agent_plane + 1, :, :]
    return torch.cat([obs, obs * agent], dim=-3)


class RunningEpisodes:
    """Per environment, the rewards paid so far in its running episode and, once `summaries` is
    called, the sums of its per-step features (`step_features`) and its step count."""

    def __init__(self, envs: int, agent_plane: int = 0):
        self.agent_plane = agent_plane
        self.paid = torch.zeros(envs)
        self.feature_sums: torch.Tensor | None = None  # (envs, 2C, H, W), made at the first window
        self.steps = torch.zeros(envs)

    def paid_before(self, rewards: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """(T, N): the rewards each step's episode paid before that step, across windows; `rewards`
        (T, N) are those the environments paid in this window, `done` where episodes ended."""
        self.paid = self.paid.to(rewards.device)
        before = torch.empty_like(rewards)
        for t in range(len(rewards)):
            before[t] = self.paid
            self.paid = torch.where(done[t], torch.zeros_like(self.paid), self.paid + rewards[t])
        return before

    def summaries(self, obs: torch.Tensor, final_obs: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """(T, N, 3C, H, W): at each step where an episode ended, its summary (the mean per-step
        features of its observations, the last one `final_obs` included, then the last
        observation); zeros elsewhere. `obs` (T, N, C, H, W) are the observations acted on."""
        steps, envs = done.shape
        shape = obs.shape[2:]
        if self.feature_sums is None:
            self.feature_sums = torch.zeros(envs, 2 * shape[0], *shape[1:], device=obs.device)
        self.feature_sums, self.steps = self.feature_sums.to(obs.device), self.steps.to(obs.device)
        out = torch.zeros(steps, envs, 3 * shape[0], *shape[1:], device=obs.device)
        for t in range(steps):
            self.feature_sums += step_features(obs[t], self.agent_plane)
            self.steps += 1
            ended = done[t].nonzero().squeeze(1)
            if len(ended):
                last = final_obs[t, ended]
                mean = (self.feature_sums[ended] + step_features(last, self.agent_plane)) / (self.steps[ended] + 1).view(-1, 1, 1, 1)
                out[t, ended] = torch.cat([mean, last], dim=1)
                self.feature_sums[ended] = 0.0
                self.steps[ended] = 0.0
        return out
