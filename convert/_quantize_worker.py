"""Child process for convert.quantize: `python -m convert._quantize_worker IN OUT FTYPE NTHREAD [BUF]`.

Exit codes: 0 done, 1 llama.cpp failed, 2 bad arguments, 3 llama-cpp-python missing. llama.cpp's
log lines go to stderr, where the parent reads per-tensor progress.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

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
        import llama_cpp
    except ImportError:
        return 3
    src, dst, ftype, nthread = argv[0], argv[1], int(argv[2]), int(argv[3])
    _die_with_parent()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    if len(argv) == 5 and hasattr(params, "max_buf_size"):
        # llama.cpp holds this many bytes of rows (source, f32 copy, result) at once; its 8 GiB
        # default takes VibeThinker's whole 152k-row embedding in one slab (~1.6 GB of RAM).
        params.max_buf_size = int(argv[4])
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    sys.stderr.flush()
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
