"""Child process for convert.quantize: `python -m convert._quantize_worker IN OUT FTYPE NTHREAD [BUF]`.

Exit codes: 0 done, 1 llama.cpp failed, 2 bad arguments, 3 llama-cpp-python missing. llama.cpp's
log lines go to stderr, where the parent reads per-tensor progress.
"""

from __future__ import annotations

import ctypes
import sys


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print("usage: IN OUT FTYPE NTHREAD [MAX_BUF_BYTES]", file=sys.stderr)
        return 2
    try:
        import llama_cpp
    except ImportError:
        return 3
    src, dst, ftype, nthread = argv[0], argv[1], int(argv[2]), int(argv[3])
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
