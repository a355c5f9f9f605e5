"""A frozen reference training loop: the published experiment's shape in plain torch, no project code.

It is the yardstick of `train_throughput.py`: the project's trainers get faster, this loop does not
(it imports nothing from the project and is not to be optimised), so a ratio against it measures
the project's speed-ups. Written once from the published description (Cloud et al. 2024, Sec 4.3):

- DiamondGhost 5x5: agent, ghost and diamond on distinct random cells, each terminal overseen
  with probability p, observation planes (agent, ghost, diamond, oversight), four clamped moves,
  episodes end on a terminal or after 32 steps, auto-reset; routing trains on the `outcome` reward.
- The routed network: two experts (MLP 100 -> 256 -> 256, ReLU after each layer), a gate (1x1
  conv, MLP 100 -> 256 -> 256 -> 1, sigmoid), a shared linear head; a linear critic (1x1 conv to
  16 channels, 400 -> 256 -> 32 -> 1).
- 512 environments x 32 steps, returns discounted (0.97) within the window, REINFORCE with the
  value baseline, entropy 0.1, value 0.5, gate loss 0.01, Adam lr 5e-5, fp32; labels of overseen
  episodes route gradients to their expert.

    python bench/reference_loop.py [--steps 2000000]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F

SIZE, ENVS, WINDOW, MAX_STEPS, GAMMA = 5, 512, 32, 32, 0.97
MOVES = torch.tensor([[0, -1], [1, 0], [0, 1], [-1, 0]])  # up, right, down, left as (dx, dy)


class Envs:
    """`ENVS` DiamondGhost environments as tensors (cells are y * SIZE + x)."""

    def __init__(self, oversight: float, generator: torch.Generator):
        self.p, self.g = oversight, generator
        self.agent = torch.zeros(ENVS, dtype=torch.long)
        self.ghost, self.diamond = torch.zeros_like(self.agent), torch.zeros_like(self.agent)
        self.watched = torch.zeros(ENVS, 2, dtype=torch.bool)  # ghost, diamond
        self.t = torch.zeros_like(self.agent)
        self.reset(torch.ones(ENVS, dtype=torch.bool))

    def reset(self, which: torch.Tensor) -> None:
        n = int(which.sum())
        cells = torch.rand(n, SIZE * SIZE, generator=self.g).argsort(dim=1)[:, :3]
        self.agent[which], self.ghost[which], self.diamond[which] = cells[:, 0], cells[:, 1], cells[:, 2]
        self.watched[which] = torch.rand(n, 2, generator=self.g) < self.p
        self.t[which] = 0

    def observe(self) -> torch.Tensor:
        obs = torch.zeros(ENVS, 4, SIZE * SIZE)
        rows = torch.arange(ENVS)
        obs[rows, 0, self.agent] = 1
        obs[rows, 1, self.ghost] = 1
        obs[rows, 2, self.diamond] = 1
        obs[rows, 3, self.ghost] = self.watched[:, 0].float()
        obs[rows, 3, self.diamond] = self.watched[:, 1].float()
        return obs.view(ENVS, 4, SIZE, SIZE)

    def step(self, actions: torch.Tensor):
        xy = torch.stack([self.agent % SIZE, self.agent // SIZE], dim=1) + MOVES[actions]
        xy = xy.clamp(0, SIZE - 1)
        self.agent = xy[:, 1] * SIZE + xy[:, 0]
        self.t += 1
        at_ghost, at_diamond = self.agent == self.ghost, self.agent == self.diamond
        done = at_ghost | at_diamond | (self.t >= MAX_STEPS)
        label = torch.where(at_diamond & self.watched[:, 1], 1, torch.where(at_ghost & self.watched[:, 0], 2, 0))
        reward = (at_ghost | at_diamond).float()  # the `outcome` reward routing trains on
        self.reset(done)
        return reward, done, label


def mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        n = 4 * SIZE * SIZE
        self.diamond, self.ghost = nn.Sequential(nn.Flatten(), mlp(n, 256, 256)), nn.Sequential(nn.Flatten(), mlp(n, 256, 256))
        self.gate = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(n, 256), nn.ReLU(), nn.Linear(256, 256),
                                  nn.ReLU(), nn.Linear(256, 1))
        self.head = nn.Linear(256, 4)
        self.critic = nn.Sequential(nn.Conv2d(4, 16, 1), nn.Flatten(), nn.Linear(16 * SIZE * SIZE, 256), nn.Linear(256, 32),
                                    nn.Linear(32, 1))

    def forward(self, obs: torch.Tensor, label: torch.Tensor | None = None):
        d, h, logit = self.diamond(obs), self.ghost(obs), self.gate(obs).squeeze(-1)
        g = torch.sigmoid(logit)
        if label is not None:  # gradient routing: overseen samples update only their expert
            d = torch.where((label == 2)[:, None], d.detach(), d)
            h = torch.where((label == 1)[:, None], h.detach(), h)
            g = torch.where(label == 0, g, g.detach())
        return self.head(g[:, None] * d + (1 - g[:, None]) * h), self.critic(obs).squeeze(-1), logit


def train(steps: int, oversight: float = 0.1, seed: int = 0) -> float:
    """Train `steps` environment steps; returns the wall time in seconds."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    envs, net = Envs(oversight, generator), Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-5)
    start = time.perf_counter()
    for _ in range(max(1, steps // (ENVS * WINDOW))):
        obs_buf, act_buf = torch.empty(WINDOW, ENVS, 4, SIZE, SIZE), torch.empty(WINDOW, ENVS, dtype=torch.long)
        rew_buf, done_buf, label_buf = torch.empty(WINDOW, ENVS), torch.empty(WINDOW, ENVS), torch.empty(WINDOW, ENVS, dtype=torch.long)
        with torch.no_grad():
            for t in range(WINDOW):
                obs = envs.observe()
                logits, _, _ = net(obs)
                actions = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(1)
                rew_buf[t], done_buf[t], label_buf[t] = envs.step(actions)
                obs_buf[t], act_buf[t] = obs, actions
        returns, labels = torch.empty(WINDOW, ENVS), torch.empty(WINDOW, ENVS, dtype=torch.long)
        running, running_label = torch.zeros(ENVS), torch.zeros(ENVS, dtype=torch.long)
        for t in reversed(range(WINDOW)):
            running = rew_buf[t] + GAMMA * running * (1 - done_buf[t])
            running_label = torch.where(done_buf[t].bool(), label_buf[t], running_label)
            returns[t], labels[t] = running, running_label
        obs, act, ret, lab = obs_buf.flatten(0, 1), act_buf.flatten(), returns.flatten(), labels.flatten()
        logits, value, gate_logit = net(obs, lab)
        log_probs = F.log_softmax(logits, -1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        advantage = (ret - value).detach()
        loss = (-log_probs.gather(1, act[:, None]).squeeze(1) * advantage - 0.1 * entropy + 0.5 * (value - ret) ** 2).mean()
        labelled = lab > 0
        if bool(labelled.any()):
            loss = loss + 0.01 * F.binary_cross_entropy_with_logits(gate_logit[labelled], (lab[labelled] == 1).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds = train(args.steps)
    print(f"frozen reference loop: {args.steps:,} steps in {seconds:.1f} s = {args.steps / seconds:,.0f} env-steps/s")


if __name__ == "__main__":
    main()
