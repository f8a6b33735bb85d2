"""llama.cpp's quantizer as a child process, so a caller can kill it (the C call cannot be
interrupted from Python) and read its per-tensor log lines ("[  12/ 339] blk.3.ffn_up.weight")
on stderr as progress:

    python -m vibe_edge.engine.quantize IN OUT FTYPE NTHREAD [MAX_BUF_BYTES]

Exit codes: 0 done, 1 llama.cpp failed, 2 bad arguments. Used by convert's quantize step.
"""

from __future__ import annotations

import sys

from vibe_edge.engine._llama import quantize_model


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
    ok = quantize_model(src, dst, ftype=ftype, threads=threads, max_buf_bytes=max_buf)
    sys.stderr.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
