"""`oversight demo`: play a few episodes with a scripted policy, print what happened, save PNGs.

It shows the whole environment contract in a minute: the oversight map, the training (proxy)
reward against the true reward, and the episode facts every evaluation will split by.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.files import make_output_dir
from agents.scripted import POLICIES
from analysis.render import filmstrip
from oversight_env import make_oversight_env
from oversight_env.spec import invalid_argument, render_text


def run_demo(
    env_id: str = "OversightGrid/DiamondGhost-5x5-v0",
    episodes: int = 5,
    oversight_prob: float = 0.3,
    policy: str = "nearest",
    seed: int = 0,
    out_dir: str | Path = "runs/demo",
) -> dict[str, int]:
    """Play `episodes` episodes, print each, write `grid.png` and `episode_0.png` to `out_dir`;
    return how many episodes ended in each outcome."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise invalid_argument("episodes", episodes, "expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise invalid_argument("seed", seed, "expected an integer >= 0")
    if policy not in POLICIES:
        raise invalid_argument("policy", policy, f"expected one of {sorted(POLICIES)}")
    env = make_oversight_env(env_id, oversight_prob=oversight_prob, render_mode="rgb_array")
    if not hasattr(env, "layout"):
        raise invalid_argument("env", env_id, "the demo's scripted policies plan on a grid layout; for an environment "
                               "registered with register_partial_oversight use `oversight render ID --policy random`")
    out = make_output_dir(out_dir, argument="out_dir")
    act = POLICIES[policy]
    rng = np.random.default_rng(seed)
    cfg = env.config
    print(
        f"{env_id}: oversight_prob={cfg.oversight_prob}, training reward '{cfg.reward}', "
        f"policy '{policy}', {episodes} episode(s). [X] marks an overseen cell.\n"
    )
    counts = {"intended": 0, "proxy": 0, "none": 0}
    frames: list[tuple[np.ndarray, str]] = []
    total_reward = total_true = 0.0
    for episode in range(episodes):
        _, facts = env.reset(seed=seed + episode)
        print(f"episode {episode}: nearer terminal {facts['nearer']}")
        print(render_text(env.layout, env.state))
        if episode == 0:
            frames.append((env.render(), "start"))
        done, steps, ret, true = False, 0, 0.0, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(env.layout, env.state, rng))
            done, steps, ret, true = terminated or truncated, steps + 1, ret + reward, true + info["true_reward"]
            if episode == 0:
                frames.append((env.render(), f"step {steps}"))
        counts[info["outcome"]] += 1
        total_reward, total_true = total_reward + ret, total_true + true
        seen = "overseen" if info["overseen"] else "unobserved"
        ending = "timed out" if info["outcome"] == "none" else f"reached the {info['terminal']} ({seen})"
        print(f"  -> {ending} after {steps} steps: training reward {ret:+g}, true reward {true:+g}\n")
        if episode == 0:
            frames[-1] = (frames[-1][0], f"{info['terminal']}, {seen}" if terminated else "timeout")
    env.close()
    print(
        f"outcomes: {counts['intended']} intended, {counts['proxy']} proxy, {counts['none']} timeout; "
        f"mean training reward {total_reward / episodes:+.2f}, mean true reward {total_true / episodes:+.2f}"
    )
    plt.imsave(out / "grid.png", frames[0][0])
    filmstrip(frames, out / "episode_0.png", title=f"{env_id}, episode 0 (light cells are overseen)")
    print(f"wrote {out / 'grid.png'} and {out / 'episode_0.png'}")
    return counts
