"""llama.cpp's quantizer as a child process, so a caller can kill it (the C call cannot be
interrupted from Python) and read its per-tensor log lines ("[  12/ 339] blk.3.ffn_up.weight")
on stderr as progress:

    python -m vibe_edge.engine.quantize IN OUT FTYPE NTHREAD [MAX_BUF_BYTES]

Exit codes: 0 done, 1 llama.cpp failed, 2 bad arguments. Used by convert's quantize step.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

from vibe_edge.engine._llama import quantize_model

# The parent passes its pid here. If the parent dies (even by SIGKILL, which it cannot catch),
# this child must not go on quantizing into a file nobody will rename: it exits too.
PARENT_PID_ENV = "VIBE_EDGE_QUANTIZE_PARENT"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    parent = int(os.environ.get(PARENT_PID_ENV) or 0)
    if not parent:
        return
    try:  # Linux: the kernel sends SIGKILL to this process when the parent goes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # everywhere else (and in case of a race with the parent's death)
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print("usage: IN OUT FTYPE NTHREAD [MAX_BUF_BYTES]", file=sys.stderr)
        return 2
    try:
        src, dst, ftype, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
        max_buf = int(argv[4]) if len(argv) == 5 else None
    except ValueError:
        print("FTYPE, NTHREAD and MAX_BUF_BYTES are integers", file=sys.stderr)
        return 2
    _die_with_parent()
    ok = quantize_model(src, dst, ftype=ftype, threads=threads, max_buf_bytes=max_buf)
    sys.stderr.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
