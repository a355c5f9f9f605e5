"""Test settings: headless rendering and one torch thread (small networks are far faster so)."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # MiniGrid's "human" mode opens a pygame window
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import torch  # noqa: E402

torch.set_num_threads(1)
