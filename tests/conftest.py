"""Test settings: headless rendering, one torch thread (small networks are far faster so), and SB3's
logs kept out of the system temp directory."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # MiniGrid's "human" mode opens a pygame window
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# On a GPU, `OVERSIGHT_DETERMINISTIC=1` (with CUBLAS_WORKSPACE_CONFIG=:4096:8) makes every
# nondeterministic CUDA kernel an error that names it: how to find what makes a resume inexact
# there (bench/gpu_session.sh runs the resume tests so).
if os.environ.get("OVERSIGHT_DETERMINISTIC") == "1":
    torch.use_deterministic_algorithms(True)


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_a_temporary_directory(tmp_path_factory):
    """SB3 makes a log directory in the system temp directory for every model trained without
    one (`SB3-<date>`); keep the tests' inside pytest's own temporary directory."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))


@pytest.fixture(autouse=True, scope="session")
def _event_files_named_in_the_order_they_are_made():
    """Tensorboard reads a run's event files in name order: the second each was made in, the host,
    the process, then a per-process counter. A run killed in a test and resumed in the same process
    and second is read in the order it was written only if the counter keeps its number of digits
    (…9 sorts after …10, and the resumed run's purge of the dead run's last events would come
    first). A real resume is another process; here the counter starts at a million, so it never
    gains a digit within a test session."""
    from tensorboard.summary.writer import event_file_writer

    event_file_writer._global_uid = event_file_writer.AtomicCounter(1_000_000)
