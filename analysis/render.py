"""`oversight render`: episodes of any environment as a GIF, under a trained policy or a scripted one.

The source is a run directory (or a checkpoint in one): its trained network plays its own
environment, whole or with an expert ablated (`--ablate`), scored with the true reward; or an
environment id: a scripted policy plays it (`agents.scripted`: nearest, intended, random; an
environment registered with `register_partial_oversight` has only random). Each frame is
MiniGrid's picture of the whole grid, overseen cells highlighted, with a caption; the last frame of
an episode says how it ended. `replay` draws an episode recorded at a run's final evaluation
(`agents.episodes`) from its actions. `filmstrip` lays frames side by side in a PNG (the report's
"What the policies do" and `oversight demo` use it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw

from agents.episodes import Policy, episode_env, network_policy
from agents.files import atomic_write
from agents.policies import load_policy
from agents.scripted import POLICIES
from oversight_env import make_oversight_env
from oversight_env.spec import invalid_argument

Frame = tuple[np.ndarray, str]  # an RGB picture and its caption
MAX_FRAMES = 12  # frames of an episode in a filmstrip


def record(
    source: str | Path,
    episodes: int = 3,
    policy: str = "nearest",
    ablate: str | None = None,
    seed: int = 0,
    oversight_prob: float | None = None,
    greedy: bool = False,
) -> tuple[list[list[Frame]], str]:
    """Play `episodes` episodes from `source` (a run directory or checkpoint, or an environment
    id); return each episode's frames and a title saying what played."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise invalid_argument("episodes", episodes, "expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise invalid_argument("seed", seed, "expected an integer >= 0")
    if Path(source).exists():
        net, config = load_policy(source)
        experts = net.actor.expert_names if net.actor.gate is not None else ()
        if ablate is not None and ablate not in experts:
            raise invalid_argument("ablate", ablate, f"expected one of the run's experts {list(experts)}")
        env_id, kwargs = config.env_id, {**config.env_kwargs, "oversight_prob": config.oversight_prob}
        title = f"{config.method} at {100 * config.oversight_prob:g}% oversight" + (f", without {ablate}" if ablate else "")
        act = network_policy(net, ablate, seed, greedy)
    else:
        if ablate is not None:
            raise invalid_argument("ablate", ablate, "only a trained routed policy (a run directory) has experts to ablate")
        if policy not in POLICIES:
            raise invalid_argument("policy", policy, f"expected one of {sorted(POLICIES)}")
        env_id, kwargs, title, act = str(source), {}, f"scripted policy '{policy}'", None
        if ":" not in env_id and env_id not in gym.registry:  # "module:id" names its own missing module
            raise invalid_argument("source", env_id, "no such run directory or checkpoint, nor a registered environment id")
    if oversight_prob is not None:
        kwargs["oversight_prob"] = oversight_prob
    env = make_oversight_env(env_id, **{**kwargs, "reward": "true"}, render_mode="rgb_array")
    if act is None:
        act = _scripted_policy(env, policy, seed)
    recorded = [episode_frames(env, act, seed + episode, f"episode {episode + 1}") for episode in range(episodes)]
    env.close()
    return recorded, f"{env_id}: {title}"


def episode_frames(env: Any, act: Policy, seed: int, name: str) -> list[Frame]:
    """The frames of one episode of `env` (made with render_mode "rgb_array") from reset `seed`
    under the policy `act`, captioned; the last says how the episode ended."""
    obs, _ = env.reset(seed=seed)
    frames = [(env.render(), f"{name}, start")]
    done, steps = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(act(env, obs))
        done, steps = terminated or truncated, steps + 1
        caption = f"step {steps}"
        if done:
            seen = "overseen" if info["overseen"] else "unobserved"
            caption = "timed out" if info["outcome"] == "none" else f"{info['outcome']} ({seen}), step {steps}"
        frames.append((env.render(), caption))
    return frames


def replay(config: dict[str, Any], episode: dict[str, Any]) -> list[Frame]:
    """The frames of an episode recorded at a run's final evaluation (`agents.episodes`), its
    actions replayed from its seed on the environment of the run's `config` (eval.json's)."""
    env = episode_env(config, render_mode="rgb_array")
    actions = iter(episode["actions"])
    try:
        frames = episode_frames(env, lambda env, obs: next(actions), episode["seed"], "episode")
    except StopIteration:
        frames = None
    finally:
        env.close()
    if frames is None or next(actions, None) is not None:
        raise invalid_argument("episode", f"{len(episode['actions'])} actions", "the recorded episode does not replay "
                               "on this environment (it ends elsewhere): was the environment changed?")
    return frames


def _scripted_policy(env: Any, policy: str, seed: int):
    rng = np.random.default_rng(seed)
    if not hasattr(env, "layout"):  # a wrapped environment: no layout to plan on
        if policy != "random":
            raise invalid_argument("policy", policy, "an environment registered with register_partial_oversight "
                                   "has only the 'random' scripted policy")
        return lambda env, obs: int(rng.integers(env.action_space.n))
    return lambda env, obs: POLICIES[policy](env.layout, env.state, rng)


def write_gif(episodes: list[list[Frame]], path: str | Path, title: str, fps: float = 4.0) -> Path:
    """Every frame of every episode, captioned (`title` on top), as an animated GIF at `path`."""
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 60:
        raise invalid_argument("fps", fps, "expected a number of frames per second in (0, 60]")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for frame, caption in (f for episode in episodes for f in episode):
        height, width = frame.shape[:2]
        canvas = Image.new("RGB", (max(width, 320), height + 36), "white")
        canvas.paste(Image.fromarray(frame), ((canvas.width - width) // 2, 18))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 2), title[: canvas.width // 6], fill="black")
        draw.text((4, height + 20), caption, fill="black")
        images.append(canvas)
    with atomic_write(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def filmstrip(frames: list[Frame], path: str | Path, title: str) -> Path:
    """One episode's frames side by side in a PNG (at most `MAX_FRAMES`: the first ones and the last)."""
    if len(frames) > MAX_FRAMES:
        frames = frames[: MAX_FRAMES - 1] + frames[-1:]
    fig, axes = plt.subplots(1, len(frames), figsize=(1.6 * len(frames), 2.0), squeeze=False)
    for ax, (frame, caption) in zip(axes[0], frames):
        ax.imshow(frame)
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
