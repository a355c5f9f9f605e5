"""One episode of a trained policy, recorded at the run's final evaluation (`episode.json`) so that a
report draws what the policy does without loading it: the reset seed, the expert ablated and the
actions taken. Replaying the actions from the same seed (`analysis.render.replay`) gives the same
episode, since an environment's randomness (placement, oversight) comes from its reset seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.config import TrainConfig
from agents.evaluator import evaluating
from agents.networks import ActorCritic
from oversight_env import make_oversight_env
from oversight_env.env_ids import import_env_module

EPISODE = "episode.json"
EPISODE_SEED = 0  # the reset seed of every recorded episode

Policy = Callable[[Any, np.ndarray], int]  # (environment, observation) -> action


def network_policy(net: ActorCritic, ablate: str | None, seed: int, greedy: bool = False) -> Policy:
    """`net` as a policy of one environment, without the `ablate` expert, its actions drawn with a
    generator seeded `seed` (or the most probable one when `greedy`)."""
    generator = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device

    def act(env: Any, obs: np.ndarray) -> int:
        with torch.no_grad(), evaluating(net, ablate):
            logits = net(torch.as_tensor(obs, device=device)[None]).logits.float().cpu()
        if greedy:
            return int(logits.argmax())
        return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))

    return act


def episode_env(config: dict[str, Any], render_mode: str | None = None) -> Any:
    """The environment of a run's `config` (its JSON form, as eval.json keeps it) in which episodes
    are recorded and replayed: the run's oversight level, scored with the true reward."""
    for module in config.get("imports", []):
        import_env_module(module, "imports")
    return make_oversight_env(config["env_id"], **{**config.get("env_kwargs", {}), "oversight_prob": config["oversight_prob"],
                                                   "reward": "true"}, render_mode=render_mode)


def record_episode(net: ActorCritic, config: TrainConfig, ablate: str | None) -> dict[str, Any]:
    """One episode of the evaluated policy on `config`'s environment from reset seed `EPISODE_SEED`:
    `{"seed", "ablate", "actions"}`, what `episode.json` holds."""
    env = episode_env(config.to_json())
    act = network_policy(net, ablate, EPISODE_SEED)
    obs, _ = env.reset(seed=EPISODE_SEED)
    actions, done = [], False
    while not done:
        actions.append(act(env, obs))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        done = terminated or truncated
    env.close()
    return {"seed": EPISODE_SEED, "ablate": ablate, "actions": actions}
