"""The lean trainer: rollout, returns and updates on the batched twin, readable top to bottom.

One loop serves every method (`agents.methods`) and two update rules: the paper's REINFORCE with
a learned value baseline (returns discounted within each rollout window) and PPO (GAE, clipped
surrogate). The network (`agents.networks`) and the loss (`agents.losses`) are the ones SB3's
`RoutedPPO` uses. A run lives in one directory: `config.json`, tensorboard events under `tb/`,
`checkpoint.pt` (everything needed to continue exactly where it stopped), `best.pt` (early
stopping) and `eval.json` (the final evaluation). Started again on the same directory, a run
continues from its last checkpoint; a finished run just returns its evaluation.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.config import TrainConfig
from agents.evaluator import run_episodes, training_evaluation
from agents.losses import LossSettings, policy_loss
from agents.methods import EARLY_STOPPING_HOLDOUT, ROUTES, get_method
from agents.networks import ActorCritic
from agents.files import save_atomic
from agents.seeding import independent_seeds
from oversight_env import make_batched
from routing import propagate_episode_labels


def train_lean(config: TrainConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train `config` in the prepared run directory `out_dir`, resuming from its checkpoint."""

    method = get_method(config.method)
    train_prob = config.oversight_prob * (1 - EARLY_STOPPING_HOLDOUT if method.early_stopping else 1)
    env_seed, init_seed, action_seed = independent_seeds(config.seed, 3)
    twin = make_batched(
        config.env_id, config.num_envs, seed=env_seed,
        **{**config.env_kwargs, "oversight_prob": train_prob, "reward": method.reward},
    )
    torch.manual_seed(init_seed)
    net = ActorCritic(twin.obs_shape, experts=method.experts, hidden=config.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    actions_rng = torch.Generator().manual_seed(action_seed)
    total_updates = max(1, method.training_steps(config.steps, config.oversight_prob) // config.batch_steps)
    state = {"update": 0, "validation_budget": 0.0, "best_score": -math.inf, "labels_since_eval": 0}

    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        actions_rng.set_state(saved["actions_rng"])
        obs = twin.load_state_dict(saved["twin"])
        state = saved["state"]
    else:
        obs = twin.observe()

    def checkpoint() -> None:
        save_atomic(
            {"model": net.state_dict(), "network_config": net.config, "optimizer": optimizer.state_dict(),
             "actions_rng": actions_rng.get_state(), "twin": twin.state_dict(), "state": state},
            checkpoint_path,
        )

    writer = SummaryWriter(out_dir / "tb", purge_step=state["update"] * config.batch_steps or None)
    updates_per_eval = max(1, config.eval_every_steps // config.batch_steps)
    updates_per_checkpoint = max(1, config.checkpoint_every_steps // config.batch_steps)
    bar = tqdm(total=total_updates * config.batch_steps, initial=state["update"] * config.batch_steps,
               unit="step", unit_scale=True, disable=not progress, desc=f"{config.method} p={config.oversight_prob}")
    T, B = config.rollout_steps, config.num_envs
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16)

    while state["update"] < total_updates:
        started = time.perf_counter()
        # ---- rollout: T steps of B environments, no gradient
        buf_obs = torch.empty(T, B, *twin.obs_shape)
        buf_actions = torch.empty(T, B, dtype=torch.long)
        buf_log_prob, buf_values, buf_rewards = torch.empty(T, B), torch.empty(T, B), torch.empty(T, B)
        buf_done = torch.empty(T, B, dtype=torch.bool)
        buf_label, buf_kept = torch.empty(T, B, dtype=torch.long), torch.empty(T, B, dtype=torch.long)
        ended = {"outcome": [], "overseen": [], "true_reward": []}
        with torch.no_grad(), autocast:
            for t in range(T):
                out = net(obs)
                probs = torch.softmax(out.logits.float(), dim=-1)
                actions = torch.multinomial(probs, 1, generator=actions_rng).squeeze(1)
                step = twin.step(actions)
                buf_obs[t], buf_actions[t] = obs, actions
                buf_log_prob[t] = torch.log(probs.gather(1, actions[:, None]).squeeze(1))
                buf_values[t], buf_rewards[t], buf_done[t] = out.value.float(), step.reward, step.done
                buf_label[t] = method.episode_labels(step.outcome, step.overseen)
                buf_kept[t] = method.episode_kept(step.outcome, step.overseen)
                for key in ended:
                    ended[key].append(getattr(step, key)[step.done_indices])
                obs = step.obs
            last_value = net(obs).value.float()

        # ---- labels, sample weights, returns and advantages
        labels = propagate_episode_labels(buf_done, buf_label) if method.uses_labels else torch.zeros(T, B, dtype=torch.long)
        weights = (propagate_episode_labels(buf_done, buf_kept) == 1).float() if method.filter_unobserved else torch.ones(T, B)
        not_done = (~buf_done).float()
        advantages, returns = torch.empty(T, B), torch.empty(T, B)
        if config.algorithm == "ppo":
            gae, next_value = torch.zeros(B), last_value
            for t in reversed(range(T)):
                delta = buf_rewards[t] + config.gamma * next_value * not_done[t] - buf_values[t]
                gae = delta + config.gamma * config.gae_lambda * not_done[t] * gae
                advantages[t], next_value = gae, buf_values[t]
            returns = advantages + buf_values
        else:
            running = last_value if config.bootstrap else torch.zeros(B)
            for t in reversed(range(T)):
                running = buf_rewards[t] + config.gamma * running * not_done[t]
                returns[t] = running
            advantages = returns - buf_values

        # ---- update
        progress = state["update"] / total_updates
        settings = LossSettings(config.algorithm, config.entropy_bonus(progress), config.vf_coef, config.gate_coef,
                                config.clip_range)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate_at(progress)
        flat = lambda x: x.reshape(T * B, *x.shape[2:])  # noqa: E731
        batch = [flat(x) for x in (buf_obs, buf_actions, advantages, returns, labels, weights, buf_log_prob)]
        if config.algorithm == "ppo":
            for _ in range(config.ppo_epochs):
                for idx in torch.randperm(T * B, generator=actions_rng).chunk(config.ppo_minibatches):
                    mb = [x[idx] for x in batch]
                    mb[2] = (mb[2] - mb[2].mean()) / (mb[2].std() + 1e-8)
                    stats = _gradient_step(net, method, settings, optimizer, autocast, mb)
        else:
            stats = _gradient_step(net, method, settings, optimizer, autocast, batch)
        state["update"] += 1
        env_steps = state["update"] * config.batch_steps
        bar.update(config.batch_steps)

        # ---- logging
        outcome, overseen = torch.cat(ended["outcome"]), torch.cat(ended["overseen"])
        state["labels_since_eval"] += int(overseen.sum())
        for key, value in stats.items():
            writer.add_scalar(key, value, env_steps)
        for code, name in ((1, "diamond"), (2, "ghost")):
            writer.add_scalar(f"train/p_{name}_overseen", float((overseen & (outcome == code)).float().mean()), env_steps)
            writer.add_scalar(f"train/p_{name}_unobserved", float((~overseen & (outcome == code)).float().mean()), env_steps)
        writer.add_scalar("train/p_timeout", float((outcome == 0).float().mean()), env_steps)
        writer.add_scalar("train/true_return", float(torch.cat(ended["true_reward"]).mean()), env_steps)
        for code, name in ROUTES:
            writer.add_scalar(f"route/fraction_{name}", float((labels == code).float().mean()), env_steps)
        if method.filter_unobserved:
            writer.add_scalar("route/fraction_kept", float(weights.mean()), env_steps)
        writer.add_scalar("loss/entropy_coef", settings.ent_coef, env_steps)
        writer.add_scalar("speed/steps_per_second", config.batch_steps / (time.perf_counter() - started), env_steps)

        # ---- periodic evaluation (and early stopping on held-out labels)
        last = state["update"] == total_updates
        if state["update"] % updates_per_eval == 0 or last:
            headline = training_evaluation(net, config, seed=10_000 + state["update"])
            for key, value in headline.items():
                writer.add_scalar(key, value, env_steps)
            bar.set_postfix(return_per_step=f"{headline['eval/discounted_return_per_step']:.3f}",
                            p_ghost_unobs=f"{headline['eval/p_ghost_when_unobserved']:.2f}")
            if method.early_stopping:
                _early_stopping_check(net, config, state, out_dir, writer, env_steps)
        if state["update"] % updates_per_checkpoint == 0 or last:
            checkpoint()
    bar.close()

    writer.close()
    if method.early_stopping and (out_dir / "best.pt").exists():
        net.load_state_dict(torch.load(out_dir / "best.pt", map_location="cpu", weights_only=False)["model"])
    return net, state["update"] * config.batch_steps


def _gradient_step(net, method, settings, optimizer, autocast, batch) -> dict[str, float]:
    obs, actions, advantages, returns, labels, weights, old_log_prob = batch
    with autocast:
        loss, stats = policy_loss(net, method, settings, obs, actions, advantages, returns, labels, weights, old_log_prob)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return stats


def _early_stopping_check(net, config, state, out_dir, writer, env_steps) -> None:
    """Score the policy on held-out labelled episodes paid for from the oversight budget: the
    holdout's share of labels, in proportion to the labels training saw since the last check."""
    state["validation_budget"] += state["labels_since_eval"] * EARLY_STOPPING_HOLDOUT / (1 - EARLY_STOPPING_HOLDOUT)
    state["labels_since_eval"] = 0
    n = int(state["validation_budget"])
    if n < 1:
        return
    state["validation_budget"] -= n
    episodes = run_episodes(net, config.env_id, n, seed=2_000_000 + state["update"],
                            oversight_prob=config.oversight_prob, env_kwargs=config.env_kwargs)
    score = float(episodes["true_reward"].mean())
    writer.add_scalar("early_stopping/validation_true_return", score, env_steps)
    writer.add_scalar("early_stopping/validation_episodes", n, env_steps)
    if score > state["best_score"]:
        state["best_score"] = score
        save_atomic({"model": net.state_dict(), "network_config": net.config, "update": state["update"], "score": score},
                    out_dir / "best.pt")
