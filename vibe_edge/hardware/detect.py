"""Describe the machine vibe-edge runs on: usable cores, memory, CUDA GPUs, Jetson boards.

Every probe tolerates a missing file or command: a container without /proc/cpuinfo details, a
machine without nvidia-smi, a board without a device tree. What cannot be read falls back to a
cruder source (psutil, os.cpu_count) rather than failing, because the plan built from it only
chooses defaults.

The parsers are plain functions of text so tests can feed them other machines' files.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["CPU_FEATURES", "GpuInfo", "HardwareInfo", "detect_hardware"]

# The SIMD features llama.cpp's CPU kernels care about.
CPU_FEATURES = frozenset({"avx", "avx2", "avx512f", "fma", "f16c", "neon", "sve", "dotprod"})
# /proc/cpuinfo flag -> our name (Arm names NEON "asimd" and dot-product "asimddp").
_FLAG_NAMES = {"avx": "avx", "avx2": "avx2", "avx512f": "avx512f", "fma": "fma", "f16c": "f16c",
               "asimd": "neon", "neon": "neon", "sve": "sve", "asimddp": "dotprod"}
_NVIDIA_SMI_TIMEOUT_S = 5.0
_MIB = 1024 * 1024
# CUDA compute capability of Jetson GPUs, by the marketing name in the device-tree model.
_JETSON_CC = (("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("nano", "5.3"), ("tx1", "5.3"))


@dataclass(frozen=True)
class GpuInfo:
    name: str
    total_bytes: int
    free_bytes: int
    compute_capability: str | None = None  # "7.5" on a T4; None when unknown

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "total_bytes": self.total_bytes, "free_bytes": self.free_bytes,
                "compute_capability": self.compute_capability}


@dataclass(frozen=True)
class HardwareInfo:
    """The machine as the plan sees it. Core counts are those this process may use."""

    os: str                      # platform.system(): "Linux", "Darwin", "Windows"
    machine: str                 # "x86_64", "aarch64"
    cpu_model: str
    physical_cores: int
    logical_cores: int
    cpu_features: frozenset[str]
    ram_total_bytes: int         # after any cgroup (container) limit
    ram_available_bytes: int
    gpu_offload_supported: bool  # this llama.cpp build can offload layers to a GPU
    gpus: tuple[GpuInfo, ...] = ()
    jetson_model: str | None = None
    unified_memory: bool = False  # the GPU's memory is system RAM (Jetson)
    notes: tuple[str, ...] = field(default=())  # what detection could not read, for `doctor`

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os, "machine": self.machine, "cpu_model": self.cpu_model,
            "physical_cores": self.physical_cores, "logical_cores": self.logical_cores,
            "cpu_features": sorted(self.cpu_features),
            "ram_total_bytes": self.ram_total_bytes, "ram_available_bytes": self.ram_available_bytes,
            "gpu_offload_supported": self.gpu_offload_supported,
            "gpus": [g.to_dict() for g in self.gpus],
            "jetson_model": self.jetson_model, "unified_memory": self.unified_memory,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareInfo:
        return cls(
            os=data["os"], machine=data["machine"], cpu_model=data.get("cpu_model", "unknown"),
            physical_cores=int(data["physical_cores"]), logical_cores=int(data["logical_cores"]),
            cpu_features=frozenset(data.get("cpu_features", ())),
            ram_total_bytes=int(data["ram_total_bytes"]),
            ram_available_bytes=int(data["ram_available_bytes"]),
            gpu_offload_supported=bool(data.get("gpu_offload_supported", False)),
            gpus=tuple(GpuInfo(**g) for g in data.get("gpus", ())),
            jetson_model=data.get("jetson_model"), unified_memory=bool(data.get("unified_memory", False)),
            notes=tuple(data.get("notes", ())),
        )

    @property
    def best_gpu(self) -> GpuInfo | None:
        """The GPU with the most free memory (llama.cpp's main device should be that one)."""
        return max(self.gpus, key=lambda g: g.free_bytes, default=None)


def detect_hardware(*, gpu_offload_supported: bool | None = None, root: Path = Path("/"),
                    run: Callable[[list[str]], str | None] | None = None) -> HardwareInfo:
    """Probe this machine. `root` and `run` exist for tests (a fake filesystem, a fake nvidia-smi)."""
    notes: list[str] = []
    cpuinfo = _read(root / "proc/cpuinfo")
    allowed = _allowed_cpus()
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    quota = _cgroup_cpu_quota(root)
    if quota is not None and quota < logical:
        notes.append(f"container CPU quota limits vibe-edge to {quota} cores")
        logical = quota

    physical = _physical_cores(cpuinfo or "", allowed)
    if physical is None:
        physical = psutil.cpu_count(logical=False) or logical
    physical = max(1, min(physical, logical))

    total, available = _memory(root, notes)

    jetson = _jetson_model(root)
    run = run or _run_command
    gpus = _parse_nvidia_smi(run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free,compute_cap",
                                  "--format=csv,noheader,nounits"]) or "")
    if jetson:
        # Jetson's GPU allocates from system RAM; nvidia-smi (when present) reports no memory.
        cc = next((cc for key, cc in _JETSON_CC if key in jetson.lower()), None)
        gpus = (GpuInfo(name=f"{jetson} (integrated)", total_bytes=total, free_bytes=available,
                        compute_capability=cc),)

    if gpu_offload_supported is None:
        gpu_offload_supported = _llama_cpp_offload()
        if gpu_offload_supported is None:
            notes.append("llama_cpp is not importable: GPU offload support unknown, assumed absent")
            gpu_offload_supported = False

    return HardwareInfo(
        os=platform.system(), machine=platform.machine(), cpu_model=_cpu_model(cpuinfo or ""),
        physical_cores=physical, logical_cores=max(1, logical),
        cpu_features=_cpu_features(cpuinfo or ""), ram_total_bytes=total,
        ram_available_bytes=available, gpu_offload_supported=gpu_offload_supported, gpus=gpus,
        jetson_model=jetson, unified_memory=jetson is not None, notes=tuple(notes),
    )


# -- probes ------------------------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _run_command(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _allowed_cpus() -> set[int] | None:
    # Containers and taskset pin a process to fewer CPUs than the machine has.
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cgroup_cpu_quota(root: Path) -> int | None:
    text = _read(root / "sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
    if text:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                return max(1, math.ceil(int(parts[0]) / int(parts[1])))
            except (ValueError, ZeroDivisionError):
                return None
    return None


def _parse_cpuinfo(text: str) -> list[dict[str, str]]:
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _physical_cores(cpuinfo: str, allowed: set[int] | None) -> int | None:
    """Distinct (physical id, core id) pairs among the CPUs we may run on; None if not listed."""
    pairs = set()
    for block in _parse_cpuinfo(cpuinfo):
        if "core id" not in block or "processor" not in block:
            continue
        try:
            cpu = int(block["processor"])
        except ValueError:
            continue
        if allowed is not None and cpu not in allowed:
            continue
        pairs.add((block.get("physical id", "0"), block["core id"]))
    return len(pairs) or None


def _cpu_features(cpuinfo: str) -> frozenset[str]:
    found: set[str] = set()
    for block in _parse_cpuinfo(cpuinfo):
        flags = block.get("flags") or block.get("features") or ""
        found.update(_FLAG_NAMES[f] for f in flags.split() if f in _FLAG_NAMES)
        if flags:
            break  # all cores report the same flags on the machines we target
    if platform.machine().lower() in ("aarch64", "arm64") and not cpuinfo:
        found.add("neon")  # every AArch64 CPU has NEON (macOS has no /proc/cpuinfo)
    return frozenset(found)


def _cpu_model(cpuinfo: str) -> str:
    for block in _parse_cpuinfo(cpuinfo):
        for key in ("model name", "hardware", "cpu model", "processor"):
            value = block.get(key, "")
            if value and not value.isdigit():
                return value
    return platform.processor() or platform.machine() or "unknown"


def _parse_meminfo(text: str) -> dict[str, int]:
    values = {}
    for line in text.splitlines():
        m = re.match(r"(\w+):\s+(\d+)\s*kB", line)
        if m:
            values[m.group(1)] = int(m.group(2)) * 1024
    return values


def _memory(root: Path, notes: list[str]) -> tuple[int, int]:
    info = _parse_meminfo(_read(root / "proc/meminfo") or "")
    if "MemTotal" in info:
        total = info["MemTotal"]
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
    else:
        vm = psutil.virtual_memory()
        total, available = int(vm.total), int(vm.available)
    limit, usage = _cgroup_memory(root)
    if limit is not None and limit < total:
        notes.append(f"container memory limit {limit / 2**30:.1f} GiB applies")
        total = limit
        available = min(available, max(0, limit - (usage or 0)))
    return total, min(available, total)


def _cgroup_memory(root: Path) -> tuple[int | None, int | None]:
    for limit_file, usage_file in (("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
                                   ("sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "sys/fs/cgroup/memory/memory.usage_in_bytes")):
        text = _read(root / limit_file)
        if text is None:
            continue
        text = text.strip()
        if text == "max" or not text.isdigit():
            return None, None
        # cgroup v1 reports "no limit" as a huge page-rounded number; treat >= 2^60 as none.
        limit = int(text)
        if limit >= 1 << 60:
            return None, None
        usage = (_read(root / usage_file) or "").strip()
        return limit, int(usage) if usage.isdigit() else None
    return None, None


def _parse_nvidia_smi(text: str) -> tuple[GpuInfo, ...]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0]:
            continue
        total, free = (_mib(p) for p in parts[1:3])
        cc = parts[3] if len(parts) > 3 and re.fullmatch(r"\d+\.\d+", parts[3]) else None
        gpus.append(GpuInfo(name=parts[0], total_bytes=total, free_bytes=free, compute_capability=cc))
    return tuple(gpus)


def _mib(text: str) -> int:
    try:
        return int(float(text)) * _MIB  # "[N/A]" on boards without dedicated memory -> 0
    except ValueError:
        return 0


def _jetson_model(root: Path) -> str | None:
    model = (_read(root / "proc/device-tree/model") or "").replace("\x00", "").strip()
    if "jetson" in model.lower():
        return model
    release = _read(root / "etc/nv_tegra_release")
    if release:
        return model or "NVIDIA Jetson"
    return None


def _llama_cpp_offload() -> bool | None:
    """What this llama.cpp build says, asked through the engine (the only code that loads it)."""
    try:
        from vibe_edge.engine import supports_gpu_offload  # noqa: PLC0415 - loads llama.cpp
    except ImportError:  # llama-cpp-python still compiling, or a broken install
        return None
    try:
        return supports_gpu_offload()
    except Exception:  # an old or broken build: treat as CPU-only rather than fail detection
        return False
