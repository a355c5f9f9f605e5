"""Test settings: headless rendering, one torch thread (small networks are far faster so), and SB3's
logs kept out of the system temp directory."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # MiniGrid's "human" mode opens a pygame window
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_a_temporary_directory(tmp_path_factory):
    """SB3 makes a log directory in the system temp directory for every model trained without
    one (`SB3-<date>`); keep the tests' inside pytest's own temporary directory."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
