"""Which llama.cpp build fits a CPU: the cmake options llama-cpp-python is compiled with.

llama.cpp's default build is `GGML_NATIVE=ON` (`-march=native`): whatever the build machine has,
the compiler may use, including instructions another machine lacks (a wheel copied elsewhere
dies with SIGILL) and, on Intel CPUs with AMX, llama.cpp's AMX kernels, which crash (see
AMX_ENABLED). So the install asks for an explicit instruction set instead: the fastest one this
CPU has, option by option, read from /proc/cpuinfo.

Stdlib only and no package-relative imports: scripts/build_llama.py loads this file by path
before the virtual environment holds anything, and `vibe-edge doctor` imports it to compare the
installed build with the CPU. Every function is a plain function of text, so tests can feed it
other machines' /proc/cpuinfo.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shlex
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The one llama-cpp-python version vibe-edge drives (pyproject.toml pins the same).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# Build modes (VIBE_EDGE_LLAMA_BUILD): "auto" = the fastest explicit ISA this CPU has;
# "conservative" = the baseline every x86-64 machine of the last decade runs (AVX2/FMA/F16C),
# or plain ARMv8 NEON; "native" = llama.cpp's own -march=native default (no AMX guard).
BUILD_MODES = ("auto", "conservative", "native")
DEFAULT_BUILD_MODE = "auto"

# llama.cpp's AMX kernels are off, whatever the CPU: on Sapphire Rapids-class Xeons they execute
# `tilezero` in ggml_backend_amx_mul_mat without a valid tile state and die with SIGILL on the
# first batch of more than one token (upstream llama.cpp PR #26954, open at llama-cpp-python
# 0.3.36: the XTILEDATA permission is requested on the main thread only and the tile config
# store is optimized away). Turn this back on when a fixed llama.cpp is pinned; a user can
# already force it with CMAKE_ARGS="-DGGML_AMX_INT8=ON ..." (their options win).
AMX_ENABLED = False
AMX_OPTIONS = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")

# x86-64: llama.cpp option -> the /proc/cpuinfo flags it compiles for (all must be present),
# and the options it only makes sense on top of.
_X86_OPTIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("GGML_SSE42", ("sse4_2",), ()),
    ("GGML_AVX", ("avx",), ()),
    ("GGML_F16C", ("f16c",), ("GGML_AVX",)),
    ("GGML_FMA", ("fma",), ("GGML_AVX",)),
    ("GGML_BMI2", ("bmi2",), ()),
    ("GGML_AVX2", ("avx2",), ("GGML_AVX",)),
    ("GGML_AVX_VNNI", ("avx_vnni",), ("GGML_AVX2",)),
    # GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), ("GGML_AVX2",)),
    ("GGML_AVX512_VBMI", ("avx512vbmi",), ("GGML_AVX512",)),
    ("GGML_AVX512_VNNI", ("avx512_vnni",), ("GGML_AVX512",)),
    ("GGML_AVX512_BF16", ("avx512_bf16",), ("GGML_AVX512",)),
    ("GGML_AMX_TILE", ("amx_tile",), ("GGML_AVX512",)),
    ("GGML_AMX_INT8", ("amx_int8", "amx_tile"), ("GGML_AVX512",)),
    ("GGML_AMX_BF16", ("amx_bf16", "amx_tile"), ("GGML_AVX512",)),
)
# The conservative x86-64 set: Haswell (2013) and every AMD Zen have it.
_X86_CONSERVATIVE = ("GGML_SSE42", "GGML_AVX", "GGML_F16C", "GGML_FMA", "GGML_AVX2")

# AArch64: /proc/cpuinfo "Features" -> the -march extension llama.cpp uses it through.
# SVE stays off: ggml's NEON kernels are the well-trodden path on the boards we target (Jetson
# Orin and Raspberry Pi 5 have no SVE anyway) and SVE-capable servers run NEON at full speed.
_ARM_EXTENSIONS = (("asimddp", "dotprod"), ("asimdhp", "fp16"), ("i8mm", "i8mm"))
_ARM_CONSERVATIVE_ARCH = "armv8-a"

# What llama_print_system_info() says the build uses -> the /proc/cpuinfo flag that must exist.
_COMPILED_NEEDS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2",
    "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
    "NEON": "asimd", "DOTPROD": "asimddp", "MATMUL_INT8": "i8mm", "FP16_VA": "asimdhp",
    "SVE": "sve", "SME": "sme",
}


def is_x86(machine: str) -> bool:
    return machine.lower() in ("x86_64", "amd64", "i686", "i386")


def is_arm64(machine: str) -> bool:
    return machine.lower() in ("aarch64", "arm64")


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo text ("flags" on x86, "Features" on Arm).

    All cores report the same flags on the machines we target; the first block that lists
    any is taken."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features") and value.strip():
            return frozenset(value.split())
    return frozenset()


def read_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_cpu_flags(fh.read())
    except OSError:
        return frozenset()


@dataclass(frozen=True)
class BuildChoice:
    """The llama.cpp options one build uses, and why."""

    mode: str
    machine: str
    options: tuple[str, ...]            # -D... arguments vibe-edge chose
    user_args: tuple[str, ...] = ()     # the user's CMAKE_ARGS, appended after ours: theirs win
    reasons: tuple[str, ...] = field(default=())

    @property
    def cmake_args(self) -> str:
        return shlex.join(self.options + self.user_args)

    @property
    def cuda(self) -> bool:
        return any(re.match(r"-DGGML_CUDA=(ON|1|TRUE|YES)$", a, re.I) for a in self.user_args)

    def describe(self) -> str:
        return f"{self.mode} build for {self.machine}: {self.cmake_args or '(llama.cpp defaults)'}"

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "machine": self.machine, "cmake_args": self.cmake_args,
                "options": list(self.options), "user_args": list(self.user_args),
                "reasons": list(self.reasons)}


def choose_build(flags: Iterable[str], machine: str, *, mode: str = DEFAULT_BUILD_MODE,
                 user_cmake_args: str = "") -> BuildChoice:
    """The options to build llama-cpp-python with for a CPU with these flags."""
    if mode not in BUILD_MODES:
        raise ValueError(f"unknown build mode {mode!r}: use one of {', '.join(BUILD_MODES)}")
    flags = frozenset(flags)
    user = tuple(shlex.split(user_cmake_args))
    if mode == "native":
        return BuildChoice(mode, machine, (), user, ("llama.cpp's own -march=native build, as asked "
                                                     "(no guard against AMX)",))
    if not flags:
        # macOS has no /proc/cpuinfo, and some containers hide it: nothing to choose from.
        return BuildChoice(mode, machine, (), user, ("the CPU's flags could not be read: llama.cpp's "
                                                     "own default build",))
    if is_x86(machine):
        return _x86_choice(flags, machine, mode, user)
    if is_arm64(machine):
        return _arm_choice(flags, machine, mode, user)
    # Anything else (riscv, ppc64le, s390x): no explicit table; llama.cpp's defaults.
    return BuildChoice(mode, machine, (), user,
                       (f"no explicit instruction-set table for {machine}: llama.cpp's defaults",))


def _x86_choice(flags: frozenset[str], machine: str, mode: str,
                user: tuple[str, ...]) -> BuildChoice:
    enabled: list[str] = []
    reasons: list[str] = []
    for option, needs, requires in _X86_OPTIONS:
        on = all(f in flags for f in needs) and all(r in enabled for r in requires)
        if mode == "conservative" and option not in _X86_CONSERVATIVE:
            on = False
        if option in AMX_OPTIONS and not AMX_ENABLED:
            if on:
                reasons.append(f"{option} off although the CPU has it: llama.cpp's AMX kernels "
                               "crash (SIGILL, upstream PR #26954)")
            on = False
        if on:
            enabled.append(option)
    if mode == "conservative":
        reasons.append("conservative set: SSE4.2/AVX/AVX2/FMA/F16C only")
    options = ["-DGGML_NATIVE=OFF"]
    options += [f"-D{option}={'ON' if option in enabled else 'OFF'}" for option, _, _ in _X86_OPTIONS]
    reasons.insert(0, "instruction sets: " + (", ".join(o.removeprefix("GGML_") for o in enabled)
                                             or "none beyond x86-64 baseline"))
    return BuildChoice(mode, machine, tuple(options), user, tuple(reasons))


def _arm_choice(flags: frozenset[str], machine: str, mode: str,
                user: tuple[str, ...]) -> BuildChoice:
    extensions = [] if mode == "conservative" else [ext for flag, ext in _ARM_EXTENSIONS if flag in flags]
    # dotprod and fp16 arithmetic are ARMv8.2 extensions (Cortex-A76/A78: Pi 5, Jetson Orin);
    # i8mm needs 8.6 hardware but is accepted as an extension of 8.2 by GCC and clang.
    arch = "armv8.2-a" if extensions else _ARM_CONSERVATIVE_ARCH
    arch_flag = "+".join([arch, *extensions])
    reasons = [f"-march={arch_flag}" + (" (conservative: plain NEON)" if mode == "conservative" else "")]
    options = ("-DGGML_NATIVE=OFF", f"-DGGML_CPU_ARM_ARCH={arch_flag}")
    return BuildChoice(mode, machine, options, user, tuple(reasons))


# -- the wheel cache key ------------------------------------------------------------------------

def cache_key(choice: BuildChoice, flags: Iterable[str], python_tag: str,
              version: str = LLAMA_CPP_PYTHON_VERSION) -> str:
    """A name for the wheel this build produces: any change of version, options, CPU or Python
    gives another name, so a wheel built for one machine or option set is never reused for
    another (pip's own cache is keyed by the package alone)."""
    identity = {"llama-cpp-python": version, "python": python_tag, "machine": choice.machine,
                "cmake_args": choice.cmake_args, "mode": choice.mode, "cpu_flags": sorted(set(flags))}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{version}-{choice.mode}-{python_tag}-{digest}"


# -- what the installed build uses, against the CPU ---------------------------------------------

def parse_system_info(text: str) -> frozenset[str]:
    """The features llama_print_system_info() reports as compiled in ("AVX2 = 1 | ...")."""
    return frozenset(m.group(1) for m in re.finditer(r"([A-Z0-9_]+) = 1\b", text))


@dataclass(frozen=True)
class BuildCheck:
    compiled: frozenset[str]
    missing: tuple[str, ...]  # compiled-in features this CPU lacks: the build will crash here
    amx_active: bool

    @property
    def status(self) -> str:
        return "error" if self.missing else "warning" if self.amx_active else "ok"

    def message(self) -> str:
        if self.missing:
            return (f"this llama.cpp build uses {', '.join(self.missing)}, which this CPU lacks: it "
                    "will crash (Illegal instruction). Rebuild for this machine: bash scripts/install.sh")
        if self.amx_active:
            return ("this llama.cpp build has AMX kernels on, which crash on the first multi-token "
                    "batch (upstream PR #26954). Rebuild without them: bash scripts/install.sh")
        return "the llama.cpp build matches this CPU"

    def to_dict(self) -> dict[str, object]:
        return {"compiled": sorted(self.compiled), "missing_on_cpu": list(self.missing),
                "amx_active": self.amx_active, "status": self.status, "message": self.message()}


def check_build(compiled: Iterable[str], cpu_flags: Iterable[str]) -> BuildCheck:
    compiled = frozenset(compiled)
    cpu = frozenset(cpu_flags)
    missing = tuple(sorted(f for f in compiled if f in _COMPILED_NEEDS and cpu
                           and _COMPILED_NEEDS[f] not in cpu))
    return BuildCheck(compiled, missing, any(f.startswith("AMX") for f in compiled))


# -- the self-check, in a subprocess ------------------------------------------------------------

SELF_CHECK_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SelfCheckResult:
    ok: bool
    returncode: int | None
    signal_name: str | None  # "SIGILL" when the build used an instruction the CPU lacks
    output: str              # the last lines it printed, for the report

    def describe(self) -> str:
        if self.ok:
            return "self-check passed"
        if self.signal_name:
            return f"self-check died by {self.signal_name}"
        if self.returncode is None:
            return "self-check timed out"
        return f"self-check failed (exit {self.returncode})"


def run_self_check(argv: Sequence[str], *, timeout: float = SELF_CHECK_TIMEOUT_S) -> SelfCheckResult:
    """Run a check program in its own process: a crash is a result, not the end of the caller."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") + (exc.stderr or "")
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        return SelfCheckResult(False, None, None, _tail(out))
    rc = done.returncode
    sig = None
    if rc < 0:
        sig = _signal_name(-rc)
    elif rc > 128 and rc - 128 in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
        sig = _signal_name(rc - 128)  # through a shell: 128 + signal number
    return SelfCheckResult(rc == 0, rc, sig, _tail(done.stdout + done.stderr))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def this_machine() -> str:
    return platform.machine()
