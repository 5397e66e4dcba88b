"""Spotting CPUs where llama.cpp's AMX kernels can crash the whole process.

Measured on this project's 2-core VMs (Xeon with ``amx_tile`` in ``/proc/cpuinfo``): the kernel
lists AMX tile data as supported and grants ``ARCH_REQ_XCOMP_PERM``, llama.cpp therefore repacks
the weights into its AMX buffer type, and the first multi-token batch dies with SIGSEGV on
``ldtilecfg``. Nothing short of executing an AMX instruction tells a working AMX from a broken one,
and a crash takes every call in the process down with it, so ``auto`` avoids the AMX path wherever
the CPU advertises AMX. Token generation (batch of one) never used AMX; only prompt processing does.
"""

from __future__ import annotations

import platform
import sys
from functools import cache
from pathlib import Path


@cache
def cpu_advertises_amx() -> bool:
    """True if the CPU flags include ``amx_tile`` (Linux x86_64 only)."""
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_tile" in line.split()
    return False
