"""Atomic outputs: write under a temporary name in the target folder, rename when complete.

A crash, an error, Ctrl-C or a full disk must never leave a half-written model that the registry
would list. The temporary name starts with `.vibe-edge-tmp` (ignored by git and by the registry,
which only looks at *.gguf) and lives in the destination folder so the final rename is atomic.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vibe_edge.convert.errors import ConversionInterrupted, ConvertError, InsufficientDiskSpace

__all__ = [
    "DEFAULT_FREE_SPACE_MARGIN",
    "LOCK_PREFIX",
    "TMP_PREFIX",
    "atomic_output",
    "output_locks",
    "staging_path",
    "check_free_space",
    "free_bytes",
    "remove_stale_temp_files",
]

TMP_PREFIX = ".vibe-edge-tmp-"
# One lock file per output name while a convert or pull writes it: a second run for the same
# name is refused instead of racing the first (the kernel drops the lock if the holder dies).
LOCK_PREFIX = ".vibe-edge-lock-"
# Keep this much free beyond the estimated file size: a disk filled to the last byte makes the
# rest of the system (and our own manifest write) fail.
DEFAULT_FREE_SPACE_MARGIN = 256 * 1024 * 1024


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"


def check_free_space(folder: Path, needed: int, margin: int = DEFAULT_FREE_SPACE_MARGIN) -> None:
    """Raise InsufficientDiskSpace unless `needed` + `margin` bytes are free in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    free = free_bytes(folder)
    if free < needed + margin:
        raise InsufficientDiskSpace(
            f"not enough disk space in {folder}: need {_human(needed)} (+{_human(margin)} reserve), "
            f"{_human(free)} free",
            hint="free some space or choose another folder with --out")


def temp_path_for(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}")


def staging_path(final: Path) -> Path:
    """Where a finished output waits, under a temporary name, until its manifest is written:
    a GGUF never appears under its final name without its manifest (a kill in between leaves a
    temp file the next run removes, not a half-registered model)."""
    return final.with_name(f"{TMP_PREFIX}staged-{final.name}.{os.getpid()}")


def _lock_one(path: Path):  # returns the open, locked file
    import fcntl

    lock_path = path.with_name(f"{LOCK_PREFIX}{path.name}.lock")  # not *.gguf: never a model
    while True:
        fh = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held until released)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise ConvertError(
                f"another `vibe-edge convert` or `pull` (pid {holder}) is writing {path.name} in "
                f"{path.parent}", hint="wait for it to finish, or choose another --name") from None
        try:  # the file we locked may have been removed by its last holder: lock the new one
            same = os.stat(lock_path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            return fh, lock_path
        fh.close()


@contextmanager
def output_locks(paths: Iterable[Path]) -> Iterator[None]:
    """Hold an exclusive lock on each output name (in a fixed order) for the whole block."""
    held = []
    try:
        for path in sorted({Path(p) for p in paths}):
            path.parent.mkdir(parents=True, exist_ok=True)
            held.append(_lock_one(path))
        yield
    finally:
        for fh, lock_path in reversed(held):
            try:
                lock_path.unlink(missing_ok=True)  # unlinked while still locked: see _lock_one
            finally:
                fh.close()


@contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it onto `final`, on any failure delete it.

    KeyboardInterrupt becomes ConversionInterrupted and ENOSPC becomes InsufficientDiskSpace, so
    the CLI can say what happened (and that nothing was left behind).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # data on disk before the name points at it
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except KeyboardInterrupt as exc:
        tmp.unlink(missing_ok=True)
        raise ConversionInterrupted(f"interrupted while writing {final.name}; no partial file was left") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise InsufficientDiskSpace(f"the disk filled up while writing {final.name} ({exc.strerror}); "
                                        "no partial file was left",
                                        hint="free some space or choose another folder with --out") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files of earlier runs that were killed (SIGKILL leaves no chance to clean up)."""
    removed = []
    if folder.is_dir():
        for path in folder.glob(f"{TMP_PREFIX}*"):
            pid = path.suffix.lstrip(".")
            if pid.isdigit() and _pid_alive(int(pid)):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
