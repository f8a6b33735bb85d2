"""The sandbox's child: started as `python -I _sandbox_child.py CONFIG_JSON`, standard library only.

It walls itself in, then runs the candidate program (see sandbox.py for the whole picture):

1. Namespaces, where the kernel lets an ordinary process have them: a new user namespace
   (root inside maps to the caller's own uid outside, so the process limit below is enforced
   even for root), a network namespace (no interfaces but a downed loopback: nothing to
   connect to), a mount namespace in which every mount is made read-only except the work
   directory, and a PID namespace whose first process is the candidate, so killing it kills
   every process the candidate forked, even ones that left the process group.
2. Resource limits on the candidate: CPU seconds, address space, file size, process count,
   open files, no core dumps.
3. The program runs with runpy; "passed" is written to the marker pipe only when it ran to
   its end, so a candidate that exits early (sys.exit(0), os._exit(0)) before the tests have
   run is not a pass.

Each protection that could not be set up is reported back (as `isolation` on the marker pipe)
instead of failing the run: the caller records what was in force.
"""

import ctypes
import json
import os
import resource
import runpy
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on x86-64 and arm64 (Linux >= 5.12)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _write(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def _enter_namespaces(libc, uid, gid):
    """New user + mount + network + pid namespaces; the names of those obtained."""
    got = []
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID) == 0:
        # Map root inside to ourselves outside (the only mapping a process may write for itself).
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        return ["user", "mount", "network", "pid"]
    # No user namespaces here: a root caller may still take the others (not the process limit).
    for flag, name in ((CLONE_NEWNS, "mount"), (CLONE_NEWNET, "network"), (CLONE_NEWPID, "pid")):
        if libc.unshare(flag) == 0:
            got.append(name)
    return got


def _read_only_except(libc, workdir):
    """Every mount read-only, then the work directory (bound onto itself) writable again."""
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    if libc.mount(workdir.encode(), workdir.encode(), None, MS_BIND | MS_REC, None) != 0:
        return False
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    ro = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    if syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(ro), ctypes.sizeof(ro)) != 0:
        return False
    rw = _MountAttr(attr_clr=MOUNT_ATTR_RDONLY)
    return syscall(SYS_MOUNT_SETATTR, AT_FDCWD, workdir.encode(), 0, ctypes.byref(rw), ctypes.sizeof(rw)) == 0


def _limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _run_candidate(config, marker):
    limits = config["limits"]
    cpu = int(limits["cpu_s"])
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    except (ValueError, OSError):
        pass
    _limit(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    _limit(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    _limit(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    _limit(resource.RLIMIT_NOFILE, 256)
    _limit(resource.RLIMIT_CORE, 0)
    sys.argv = [config["program"]]
    sys.path.insert(0, config["workdir"])
    try:
        runpy.run_path(config["program"], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        print(f"sandbox: the program exited (status {exc.code!r}) before it finished", file=sys.stderr)
        os._exit(code if code else 3)
    except BaseException:  # noqa: BLE001 - report any failure as a failed run, with its traceback
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(marker, b"passed\n")
    os._exit(0)


def main():
    config = json.loads(sys.argv[1])
    marker = int(config["marker_fd"])
    workdir = config["workdir"]
    isolation = {"network": False, "filesystem": False, "processes": False, "pid_namespace": False}
    if config.get("isolate", True) and sys.platform.startswith("linux"):
        libc = _libc()
        try:
            namespaces = _enter_namespaces(libc, os.geteuid(), os.getegid())
        except OSError:
            namespaces = []
        isolation["network"] = "network" in namespaces
        isolation["processes"] = "user" in namespaces or os.geteuid() != 0
        isolation["pid_namespace"] = "pid" in namespaces
        if "mount" in namespaces:
            isolation["filesystem"] = _read_only_except(libc, workdir)
    else:
        isolation["processes"] = os.geteuid() != 0
    os.write(marker, (json.dumps({"isolation": isolation}) + "\n").encode())
    os.chdir(workdir)
    if not isolation["pid_namespace"]:
        _run_candidate(config, marker)
    # In a new PID namespace the next child is its init: when it ends, the kernel kills every
    # process left in the namespace, so nothing the candidate started outlives it. The
    # candidate is init's child, not init itself (init is immune to signals it does not
    # handle, which would void the CPU limit's SIGXCPU/SIGKILL).
    init = os.fork()
    if init == 0:
        candidate = os.fork()
        if candidate == 0:
            _run_candidate(config, marker)
        os.close(marker)
        os._exit(_wait_status(candidate))
    os.close(marker)
    os._exit(_wait_status(init))


def _wait_status(pid):
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    main()
