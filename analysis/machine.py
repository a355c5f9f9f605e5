"""The machine and software a run used: printed at the top of every benchmark (speeds compare only
within one run on one CPU) and recorded with every piece of a sweep (`sweeps.json`), because the
same seed need not give the same run on another machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from agents.provenance import code_version

# CPU features that change what a small network's training costs, or which kernels it runs.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO) as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what `platform` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_identity() -> str | None:
    """Family, model and stepping: they tell CPU generations apart where a virtual machine's model
    name does not ("AMD EPYC"), and a generation's kernels can round differently."""
    info = _cpuinfo()
    if "cpu family" not in info:
        return None
    return f"family {info['cpu family']} model {info.get('model')} stepping {info.get('stepping')}"


def cpu_caches() -> str | None:
    """The first core's cache sizes, e.g. "L1d 32K, L1i 32K, L2 1024K, L3 32768K" (Linux)."""
    sizes = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        sizes.append(f"L{level}{suffix} {size}")
    return ", ".join(sizes) or None


def cpu_flags() -> list[str]:
    """Which of `CPU_FLAGS` the CPU has (Linux; empty elsewhere)."""
    present = set(_cpuinfo().get("flags", "").split())
    return [flag for flag in CPU_FLAGS if flag in present]


def machine_record() -> dict[str, Any]:
    """The machine and software, as JSON: CPU (name, generation, caches, flags), cores, GPU, Python,
    torch, numpy, OS, code."""
    import numpy
    import torch

    return {"cpu": cpu_model(), "cpu_id": cpu_identity(), "caches": cpu_caches(), "cores": os.cpu_count(),
            "cpu_flags": cpu_flags(),
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
