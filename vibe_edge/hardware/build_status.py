"""The installed llama.cpp build beside the CPU it runs on (`vibe-edge doctor`).

A wheel copied from another machine, or built natively on a CPU with more instruction sets than
this one, dies with SIGILL at the first prompt; llama.cpp's AMX kernels die the same way on the
CPUs that have them. Both are visible before anything runs: llama_print_system_info() lists what
the build was compiled for, /proc/cpuinfo what the CPU has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from vibe_edge.hardware import llama_build

# scripts/build_llama.py writes which build it installed into the environment's prefix.
BUILD_RECORD = "vibe-edge-llama-build.json"


def llama_build_status(cpuinfo_path: str | None = None) -> dict[str, Any]:
    """What the build uses, what the CPU lacks of it, and a verdict: ok, warning, error, unknown."""
    record = _read_record()
    try:
        from vibe_edge.engine.selfcheck import build_info  # imports llama_cpp

        info = build_info()
    except Exception as exc:  # not installed, or an old build: say so, do not crash doctor
        return {**record, "status": "unknown", "compiled": [],
                "message": f"llama.cpp is not usable here ({type(exc).__name__}: {exc}); "
                           "install it with: bash scripts/install.sh"}
    flags = llama_build.read_cpu_flags(cpuinfo_path or "/proc/cpuinfo")
    check = llama_build.check_build(llama_build.parse_system_info(info), flags)
    status = check.to_dict()
    if not flags:
        status.update(status="unknown", message="the CPU's flags could not be read (no "
                                                "/proc/cpuinfo): the build was not checked")
    return {**record, **status, "system_info": info}


def _read_record() -> dict[str, Any]:
    try:
        data = json.loads((Path(sys.prefix) / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    keep = ("mode", "cmake_args", "key", "self_check")
    return {k: data[k] for k in keep if k in data} if isinstance(data, dict) else {}
