"""Where a result came from: the code's version, recorded with every final evaluation (and in a
sweep's log) so that a number can be traced to the commit that produced it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_version() -> str | None:
    """`git describe` of this checkout (a commit, "-dirty" when tracked files differ from it), or
    None when the package is not in a git checkout."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], check=False,
                                capture_output=True, text=True, cwd=Path(__file__).resolve().parent, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None
