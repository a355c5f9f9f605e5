"""The machine a benchmark ran on, printed at its top: speeds compare only within one run on one CPU."""

from __future__ import annotations

import os
import platform


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


def describe() -> str:
    import torch

    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    return (f"CPU: {cpu_model()} ({os.cpu_count()} cores); torch {torch.__version__}, "
            f"oneDNN bf16 {'supported' if bf16 else 'not supported (emulated)'}")
