"""Quantization through llama.cpp's own quantizer (llama_model_quantize, through the engine's
wrapper).

Each quantization runs in a child process (`python -m vibe_edge.engine.quantize`): the C call
cannot be interrupted from Python, but a child can be killed on Ctrl-C, and its log lines
("[  12/ 339] blk.3.ffn_up.weight ...") give a per-tensor progress bar. Output is atomic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vibe_edge.convert.atomic import DEFAULT_FREE_SPACE_MARGIN, atomic_output, check_free_space
from vibe_edge.convert.errors import ConvertError
from vibe_edge.convert.writer import ProgressFn

__all__ = [
    "DEFAULT_QUANT",
    "DEFAULT_QUANT_BUF_BYTES",
    "QUANT_TYPES",
    "QuantResult",
    "normalize_quant",
    "quantize_gguf",
]

# Supported types, largest first, with llama.h's LLAMA_FTYPE_MOSTLY_* values and the rough
# bits per weight (used for the free-space estimate and for ordering the report).
QUANT_TYPES: dict[str, tuple[int, float]] = {
    "Q8_0": (7, 8.5),
    "Q6_K": (18, 6.56),
    "Q5_K_M": (17, 5.7),
    "Q4_K_M": (15, 4.9),
    "Q4_0": (2, 4.5),
    "IQ4_XS": (30, 4.25),
    "Q3_K_M": (12, 3.9),
}
DEFAULT_QUANT = "Q4_K_M"
# Rows llama.cpp's quantizer keeps in memory at once (its default, 8 GiB, means "whole tensors").
DEFAULT_QUANT_BUF_BYTES = 256 * 1024 * 1024
_PROGRESS_RE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")


@dataclass
class QuantResult:
    quant: str
    path: Path
    size_bytes: int
    seconds: float


def normalize_quant(name: str) -> str:
    key = name.strip().upper()
    if key not in QUANT_TYPES:
        raise ConvertError(f"unknown quantization {name!r}", hint=f"choose from {', '.join(QUANT_TYPES)}")
    return key


def _worker_env() -> dict[str, str]:
    from vibe_edge.engine.quantize import PARENT_PID_ENV

    env = dict(os.environ)
    env[PARENT_PID_ENV] = str(os.getpid())
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def quantize_gguf(
    src: Path,
    out_path: Path,
    quant: str,
    *,
    n_threads: int | None = None,
    progress: ProgressFn | None = None,
    free_space_margin: int = DEFAULT_FREE_SPACE_MARGIN,
) -> QuantResult:
    """Quantize the unquantized GGUF `src` to `quant`, atomically, into `out_path`."""
    quant = normalize_quant(quant)
    ftype, bpw = QUANT_TYPES[quant]
    src, out_path = Path(src), Path(out_path)
    if not src.is_file():
        raise ConvertError(f"no GGUF at {src} to quantize")
    # Estimate from bits per weight relative to 16-bit input, with slack for f32 norms/tokenizer.
    check_free_space(out_path.parent, int(src.stat().st_size * bpw / 16 * 1.1) + (32 << 20), free_space_margin)
    threads = n_threads or max(1, os.cpu_count() or 1)
    started = time.monotonic()
    with atomic_output(out_path) as tmp:
        cmd = [sys.executable, "-m", "vibe_edge.engine.quantize", str(src), str(tmp), str(ftype),
               str(threads), str(DEFAULT_QUANT_BUF_BYTES)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                errors="replace", env=_worker_env())
        tail: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail = (tail + [line.rstrip()])[-20:]
                match = _PROGRESS_RE.match(line)
                if match and progress is not None:
                    progress(f"quantize {quant}", int(match.group(1)), int(match.group(2)))
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0 or not tmp.is_file():
            detail = "\n".join(t for t in tail if t.strip())[-1500:]
            raise ConvertError(f"llama.cpp failed to quantize {src.name} to {quant} (exit {rc})",
                               hint=f"llama.cpp said:\n{detail}" if detail else None)
    return QuantResult(quant, out_path, out_path.stat().st_size, time.monotonic() - started)
