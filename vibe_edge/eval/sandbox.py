"""Run untrusted Python (a model's solution plus its unit tests) in a separate, fenced process.

What it does, every run:
- a separate process (`python -I`: no user site, no PYTHON* variables), in a fresh temporary
  working directory that is deleted afterwards, with a clean environment (PATH, HOME and TMPDIR
  pointing at that directory, LANG): none of the caller's variables (API keys, tokens) reach it;
  standard input is /dev/null;
- a wall-clock timeout (the whole process group is killed) and a CPU-time limit;
- limits on address space (memory), size of any file written, number of processes, open files;
  no core dumps; output goes to files in the work directory (so an endless print is bounded by
  the file-size limit, not by the caller's memory) and only its tail is kept.

What it does where the kernel allows an unprivileged process (Linux with user namespaces; the
development machines and CI have them):
- no network: a new network namespace with no usable interface;
- a read-only view of the whole filesystem except the work directory;
- the process limit holds even when the caller is root (root is otherwise exempt from it);
- every process the candidate started is killed with it (a PID namespace).

What it does not stop: reading files the caller can read (the filesystem is read-only, not
hidden), using the CPU and memory allowed up to the limits, and kernel exploits. It is a fence
for buggy or runaway code, not a security boundary for hostile code; run untrusted evaluations
in a VM or container for that. `SandboxResult.isolation` records which protections were in
force for each run, and `probe_isolation()` says what this machine gives.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_CPU_S",
    "DEFAULT_FILE_BYTES",
    "DEFAULT_MAX_PROCESSES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_WALL_S",
    "SandboxLimits",
    "SandboxResult",
    "probe_isolation",
    "run_python",
]

DEFAULT_WALL_S = 15.0
DEFAULT_CPU_S = 10
DEFAULT_MEMORY_BYTES = 1024 * 2**20
DEFAULT_FILE_BYTES = 16 * 2**20
DEFAULT_MAX_PROCESSES = 32
OUTPUT_TAIL_BYTES = 4096

_CHILD = Path(__file__).with_name("_sandbox_child.py")
_PROGRAM = "program.py"


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = DEFAULT_WALL_S
    cpu_s: int = DEFAULT_CPU_S
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    file_bytes: int = DEFAULT_FILE_BYTES
    max_processes: int = DEFAULT_MAX_PROCESSES
    isolate: bool = True  # namespaces where available (tests turn it off to see the difference)


@dataclass
class SandboxResult:
    """status: "passed" (ran to its end), "failed" (an exception, a failed assert, a non-zero
    exit, an early exit), "timeout" (wall clock), "killed" (a signal: CPU or file-size limit,
    out of memory), "error" (the sandbox itself could not start)."""

    status: str
    detail: str
    returncode: int | None
    wall_s: float
    stdout: str = ""
    stderr: str = ""
    isolation: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


def _clean_env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - OUTPUT_TAIL_BYTES))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return ("..." + text) if size > OUTPUT_TAIL_BYTES else text


def _describe_signal(number: int) -> str:
    names = {signal.SIGXCPU: "CPU time limit", signal.SIGKILL: "killed (CPU or memory limit)",
             signal.SIGXFSZ: "file size limit", signal.SIGSEGV: "segmentation fault"}
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"{name}: {names[number]}" if number in names else name


def run_python(source: str, limits: SandboxLimits = SandboxLimits(), *,
               python: str = sys.executable) -> SandboxResult:
    """Run `source` as a program in the sandbox and say how it ended. Never raises for
    anything the program does; "error" only when the sandbox itself cannot start."""
    with tempfile.TemporaryDirectory(prefix="vibe-edge-sandbox-") as workdir:
        work = Path(workdir)
        (work / _PROGRAM).write_text(source, encoding="utf-8")
        read_end, write_end = os.pipe()
        config = {"workdir": workdir, "program": str(work / _PROGRAM), "marker_fd": write_end,
                  "isolate": limits.isolate,
                  "limits": {"cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes,
                             "file_bytes": limits.file_bytes, "max_processes": limits.max_processes}}
        started = time.monotonic()
        try:
            with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
                proc = subprocess.Popen([python, "-I", str(_CHILD), json.dumps(config)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        cwd=workdir, env=_clean_env(workdir), pass_fds=(write_end,),
                                        start_new_session=True)
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            return SandboxResult("error", f"could not start the sandbox: {exc}", None, 0.0)
        os.close(write_end)
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc)
        wall = time.monotonic() - started
        with os.fdopen(read_end, "rb") as marker:
            lines = marker.read(65536).decode("utf-8", "replace").splitlines()
        isolation: dict[str, bool] = {}
        finished = False
        for line in lines:
            if line == "passed":
                finished = True
            elif line.startswith("{"):
                try:
                    isolation = json.loads(line).get("isolation", {})
                except ValueError:
                    pass
        stdout, stderr = _tail(work / ".stdout"), _tail(work / ".stderr")
        code = proc.returncode
        if timed_out:
            status, detail = "timeout", f"still running after {limits.wall_s:g} s (wall clock)"
        elif code == 0 and finished:
            status, detail = "passed", "ran to the end"
        elif code is not None and (code < 0 or code > 128):
            number = -code if code < 0 else code - 128
            status, detail = "killed", _describe_signal(number)
            if "MemoryError" in stderr:
                status, detail = "failed", "MemoryError (memory limit)"
        elif code == 0:
            status, detail = "failed", "the program exited before it finished"
        else:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
            status, detail = "failed", last[:300]
        return SandboxResult(status, detail, code, round(wall, 3), stdout, stderr, isolation)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox's whole process group (its PID namespace goes with its init)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@functools.cache
def probe_isolation() -> dict[str, bool]:
    """Which protections this machine gives (runs a trivial program once)."""
    return run_python("pass\n", SandboxLimits(wall_s=10)).isolation
