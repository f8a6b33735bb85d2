"""Atomic outputs: write under a temporary name in the target folder, rename when complete.

A crash, an error, Ctrl-C or a full disk must never leave a half-written model that the registry
would list. The temporary name starts with `.vibe-edge-tmp` (ignored by git and by the registry,
which only looks at *.gguf) and lives in the destination folder so the final rename is atomic.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vibe_edge.convert.errors import ConversionInterrupted, InsufficientDiskSpace

__all__ = [
    "DEFAULT_FREE_SPACE_MARGIN",
    "TMP_PREFIX",
    "atomic_output",
    "check_free_space",
    "free_bytes",
    "remove_stale_temp_files",
]

TMP_PREFIX = ".vibe-edge-tmp-"
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
