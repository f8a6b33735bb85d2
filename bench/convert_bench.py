"""Conversion benchmark at VibeThinker-1.5B's real shape (random bf16 weights, sharded safetensors).

    python bench/convert_bench.py [--workdir DIR] [--shards 2] [--quant Q4_K_M] [--json out.json]

Builds the checkpoint from ../shared/fixtures/qwen2.5-math-1.5b (config + real tokenizer), then,
each step in its own child process so wall time and peak RSS are the step's own:

  copy      the safetensors files copied on the same disk (read + write + fsync): the baseline
  f16       vibe-edge's conversion to an f16 GGUF (what --outtype f16 does)
  Q4_K_M    llama.cpp's quantizer, from the f16 file (what --quant Q4_K_M does next)

Targets (issue 3): peak RSS of the conversion under 1.5 GB; f16 conversion within 3x the copy.
The page cache is warm for every step (the copy runs first and reads the same files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEFAULT_FIXTURE = REPO.parent / "shared" / "fixtures" / "qwen2.5-math-1.5b"
RSS_TARGET_BYTES = 1.5e9
COPY_RATIO_TARGET = 3.0


def _child(code: str) -> dict[str, float]:
    """Run Python code in a child; return its wall seconds and peak RSS (bytes, from wait4)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step failed (exit {os.waitstatus_to_exitcode(status)}):\n{code}")
    return {"wall_s": round(wall, 2), "peak_rss_bytes": usage.ru_maxrss * 1024}


def build(workdir: Path, fixture: Path, shards: int) -> Path:
    folder = workdir / "VibeThinker-1.5B-shape"
    if (folder / "model.safetensors.index.json").is_file() or (folder / "model.safetensors").is_file():
        return folder
    # In a child: generating 1.5B random weights takes GBs, and a forked child's peak RSS starts
    # from its parent's (Linux carries the high-water mark across fork + exec), so the parent
    # must stay small for the measured steps.
    r = _child("from pathlib import Path\nfrom vibe_edge.convert.synth import write_qwen2_checkpoint\n"
               f"write_qwen2_checkpoint(Path({str(folder)!r}), Path({str(fixture)!r}), n_shards={shards}, "
               "dtype='bf16', seed=0)\n")
    print(f"built checkpoint in {r['wall_s']:.0f}s: {folder}", flush=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vibe-edge-convert-bench"))
    ap.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--quant", default="Q4_K_M")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and outputs")
    args = ap.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = build(args.workdir, args.fixture, args.shards)
    files = sorted(ckpt.glob("*.safetensors"))
    total = sum(f.stat().st_size for f in files)
    copy_dir = args.workdir / "copy"
    out_dir = args.workdir / "out"
    for d in (copy_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    f16 = out_dir / "bench-F16.gguf"
    q = out_dir / f"bench-{args.quant}.gguf"

    results: dict[str, dict[str, float]] = {}
    results["copy"] = _child(
        "import os, shutil\n"
        f"for src in {[str(f) for f in files]!r}:\n"
        f"    dst = os.path.join({str(copy_dir)!r}, os.path.basename(src))\n"
        "    shutil.copyfile(src, dst)\n"
        "    fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)\n")
    results["f16"] = _child(
        "from pathlib import Path\nfrom vibe_edge.convert.core import convert_folder\n"
        f"convert_folder(Path({str(ckpt)!r}), Path({str(f16)!r}), outtype='f16')\n")
    results[args.quant] = _child(
        "from pathlib import Path\nfrom vibe_edge.convert.quantize import quantize_gguf\n"
        f"quantize_gguf(Path({str(f16)!r}), Path({str(q)!r}), {args.quant!r})\n")

    ratio = results["f16"]["wall_s"] / max(1e-9, results["copy"]["wall_s"])
    report = {
        "checkpoint": {"files": len(files), "bytes": total, "dtype": "bf16",
                       "config": str(args.fixture / "config.json")},
        "steps": results,
        "outputs": {"f16_bytes": f16.stat().st_size, f"{args.quant}_bytes": q.stat().st_size},
        "f16_vs_copy": round(ratio, 2),
        "targets": {"peak_rss_under_1_5GB": results["f16"]["peak_rss_bytes"] < RSS_TARGET_BYTES,
                    "f16_within_3x_copy": ratio <= COPY_RATIO_TARGET},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    print(f"\ncheckpoint: {len(files)} bf16 shards, {total / 1e9:.2f} GB")
    print(f"{'step':<10} {'wall':>9} {'peak RSS':>10}")
    for name, r in results.items():
        print(f"{name:<10} {r['wall_s']:>8.1f}s {r['peak_rss_bytes'] / 2**20:>8.0f}MB")
    print(f"f16 conversion / copy = {ratio:.2f}x (target <= {COPY_RATIO_TARGET}x); "
          f"conversion peak RSS {results['f16']['peak_rss_bytes'] / 1e9:.2f} GB (target < 1.5 GB)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(copy_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
