"""The machine and software a run used: printed at the top of every benchmark (speeds compare only
within one run on one CPU) and recorded with every piece of a sweep (`sweeps.json`), because the
same seed need not give the same run on another machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# CPU features that change what a small network's training costs, or which kernels it runs.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of `CPU_FLAGS` the CPU has (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS if flag in present]
    except OSError:
        pass
    return []


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


def machine_record() -> dict[str, Any]:
    """The machine and software, as JSON: CPU, cores, CPU flags, Python, torch, numpy, OS, code."""
    import numpy
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "code": code_version()}


def describe() -> str:
    """One line for the top of a benchmark's output."""
    import torch

    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    return (f"CPU: {cpu_model()} ({os.cpu_count()} cores); torch {torch.__version__}, "
            f"oneDNN bf16 {'supported' if bf16 else 'not supported (emulated)'}")
