"""The code sandbox: a runaway, hostile-looking or broken candidate is a failed sample, never a
failed run, and never touches the caller's files, environment or network."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from vibe_edge.eval.sandbox import SandboxLimits, probe_isolation, run_python

FAST = SandboxLimits(wall_s=8, cpu_s=2)


def test_a_correct_program_passes_and_its_output_is_kept():
    result = run_python("assert sum([1, 2, 3]) == 6\nprint('all good')\n", FAST)
    assert result.passed, result
    assert result.stdout == "all good\n"


def test_a_failing_assertion_fails_with_the_reason():
    result = run_python("def f():\n    return 2\nassert f() == 3, 'wrong'\n", FAST)
    assert result.status == "failed"
    assert "AssertionError: wrong" in result.detail


def test_an_endless_loop_is_stopped_by_the_cpu_limit():
    started = time.monotonic()
    result = run_python("while True:\n    pass\n", FAST)
    assert result.status == "killed" and "CPU" in result.detail
    assert time.monotonic() - started < FAST.wall_s + 5


def test_a_sleeping_program_is_stopped_by_the_wall_clock():
    result = run_python("import time\ntime.sleep(60)\n", SandboxLimits(wall_s=1.5, cpu_s=5))
    assert result.status == "timeout"
    assert result.wall_s < 5


def test_unbounded_allocation_hits_the_memory_limit():
    before = psutil.virtual_memory().available
    result = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))\n",
                        SandboxLimits(wall_s=20, cpu_s=10, memory_bytes=512 * 2**20))
    assert not result.passed
    assert "MemoryError" in result.detail or result.status == "killed"
    assert psutil.virtual_memory().available > before - 2 * 2**30  # nothing big left behind


@pytest.mark.skipif(not probe_isolation().get("processes"),
                    reason="the process limit does not hold here (root without user namespaces)")
def test_a_fork_bomb_is_contained_and_cleaned_up():
    source = ("import os\n"
              "while True:\n"
              "    try:\n"
              "        os.fork()\n"
              "    except OSError:\n"
              "        pass\n")
    result = run_python(source, SandboxLimits(wall_s=3, cpu_s=2, max_processes=16))
    assert not result.passed
    time.sleep(0.5)
    # Every process the bomb made is gone (the PID namespace dies with its init).
    assert _sandbox_processes() == []


def _sandbox_processes() -> list[int]:
    """Processes of a sandbox run (their command line holds the sandbox's work directory)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any("vibe-edge-sandbox-" in part for part in (proc.info["cmdline"] or [])):
            found.append(proc.info["pid"])
    return found


def test_processes_the_candidate_detaches_do_not_outlive_it(tmp_path):
    marker = tmp_path / "alive"
    source = (f"import os, time\n"
              f"if os.fork() == 0:\n"
              f"    os.setsid()\n"
              f"    time.sleep(2)\n"
              f"    open({str(marker)!r}, 'w').write('escaped')\n")
    result = run_python(source, FAST)
    assert result.passed
    time.sleep(3)
    assert not marker.exists()


@pytest.mark.skipif(not probe_isolation().get("filesystem"), reason="no mount namespace here")
def test_writes_outside_the_work_directory_are_refused(tmp_path):
    target = tmp_path / "outside.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')\n", FAST)
    assert result.status == "failed" and "Read-only file system" in result.detail
    assert not target.exists()
    # ... while its own directory is writable.
    inside = run_python("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n", FAST)
    assert inside.passed, inside


def test_a_huge_file_hits_the_file_size_limit():
    result = run_python("open('big', 'wb').write(b'x' * (64 * 2**20))\n",
                        SandboxLimits(wall_s=8, cpu_s=4, file_bytes=4 * 2**20))
    assert not result.passed
    assert "File too large" in result.detail or "file size" in result.detail


def test_endless_output_is_bounded_and_only_its_tail_kept():
    result = run_python("while True:\n    print('y' * 1000)\n", SandboxLimits(wall_s=8, cpu_s=4, file_bytes=2**20))
    assert not result.passed
    assert len(result.stdout) <= 5000


def test_the_environment_holds_none_of_the_callers_variables(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-leak")
    source = ("import os\n"
              "assert not any('sk-secret' in v for v in os.environ.values()), 'leaked'\n"
              "assert 'OPENAI_API_KEY' not in os.environ\n"
              "print(sorted(os.environ))\n")
    result = run_python(source, FAST)
    assert result.passed, result
    assert "OPENAI_API_KEY" not in result.stdout


@pytest.mark.skipif(not probe_isolation().get("network"), reason="no network namespace here")
def test_there_is_no_network():
    source = ("import socket\n"
              "s = socket.socket()\n"
              "s.settimeout(2)\n"
              "s.connect(('127.0.0.1', 9))\n")
    result = run_python(source, FAST)
    assert result.status == "failed"
    assert "unreachable" in result.detail or "refused" in result.detail or "Errno" in result.detail


def test_exiting_early_is_not_a_pass():
    assert run_python("import sys\nsys.exit(0)\nassert False\n", FAST).status == "failed"
    assert run_python("import os\nos._exit(0)\nassert False\n", FAST).status == "failed"


def test_the_work_directory_is_removed_afterwards():
    result = run_python("import os\nprint(os.getcwd())\n", FAST)
    assert result.passed
    assert not os.path.exists(result.stdout.strip())


def test_isolation_probe_reports_each_protection():
    isolation = probe_isolation()
    assert set(isolation) == {"network", "filesystem", "processes", "pid_namespace"}
