"""What every figure of the reports shares: a method's colour, and saving a figure atomically
(headless: matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from agents.files import atomic_write  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Lay `fig` out, write it to `path` as a PNG (whole or not at all) and close it."""
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def method_colors(methods: list[str]) -> dict[str, Any]:
    """A colour per method, in the order given."""
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}
