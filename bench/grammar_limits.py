"""Measure what grammars cost llama.cpp, to set (and re-check) the limits in
vibe_edge/engine/grammar.py and docs/SERVER.md.

    python bench/grammar_limits.py [--model demo|PATH.gguf] [--quick]

Prints, for the llama.cpp that llama-cpp-python bundles:
  1. the nesting of grammar groups "(a (a (...)?)?)?" (what the JSON-schema converter writes for
     maxLength / maxItems / pattern {0,n}) that crashes the process, per thread stack size,
     found by bisection in child processes (a crash kills the child, not this script);
  2. the nesting llama.cpp's parser itself refuses;
  3. compile time and the cost of one full-vocabulary grammar check (what sampling pays when
     the drawn token breaks the grammar) by enum size, against a draw without grammar;
  4. the JSON-schema converter's time by number of optional properties.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r'''
import sys, threading
from vibe_edge.engine._llama import Model, parses_unbounded
model = Model(sys.argv[1])
n, stack_kib = int(sys.argv[2]), int(sys.argv[3])
grammar = "root ::= " + '("a" ' * n + ")?" * n
ok = []
def parse():
    ok.append(parses_unbounded(model, grammar))
threading.stack_size(stack_kib << 10)
t = threading.Thread(target=parse); t.start(); t.join()
print("OK" if ok[0] else "REFUSED")
'''


def _nesting(model: str, n: int, stack_kib: int) -> str:
    proc = subprocess.run([sys.executable, "-c", CHILD, model, str(n), str(stack_kib)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return "crash"
    return "ok" if "OK" in proc.stdout else "refused"


def crash_threshold(model: str, stack_kib: int, hi: int = 100_000) -> int | None:
    lo = 1
    if _nesting(model, hi, stack_kib) != "crash":
        return None
    while hi - lo > max(1, lo // 100):
        mid = (lo + hi) // 2
        if _nesting(model, mid, stack_kib) == "crash":
            hi = mid
        else:
            lo = mid
    return hi


def refusal_threshold(model: str) -> int:
    lo, hi = 1, 5000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _nesting(model, mid, 8192) == "ok":
            lo = mid
        else:
            hi = mid
    return hi


def sampling_costs(model_path: str, sizes: list[int]) -> None:
    from vibe_edge.engine._llama import Batch, Context, ContextParams, Model, Sampler
    from vibe_edge.engine.grammar import unbounded_schema_grammar
    from vibe_edge.types import SamplingParams

    model = Model(model_path)
    ctx = Context(model, ContextParams(n_seq=1, ctx_per_seq=256, n_batch=256, threads=1, threads_batch=1))
    tokens = model.tokenize("Answer in JSON: ", add_special=False)
    batch = Batch(256)
    for i, t in enumerate(tokens):
        batch.add(t, i, 0, i == len(tokens) - 1)
    ctx.decode(batch)
    index = len(tokens) - 1

    def median_ms(fn, reps: int = 5) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    def free_draw() -> None:
        s = Sampler(model, SamplingParams(temperature=0.0), 0)
        s.sample(ctx, index)
        s.close()

    print(f"vocabulary {model.n_vocab} tokens; a draw without grammar: {median_ms(free_draw):.2f} ms")
    for n in sizes:
        grammar = unbounded_schema_grammar(json.dumps({"enum": [f"value-{i}" for i in range(n)]}))
        params = SamplingParams(temperature=0.0, grammar=grammar)
        compile_ms = median_ms(lambda: Sampler(model, params, 0).close(), reps=3)

        def full_check() -> None:
            s = Sampler(model, params, 0)
            s._draw(ctx.logits_at(index), constrained=True)
            s.close()

        print(f"  enum of {n:>5}: compile {compile_ms:8.1f} ms, one full-vocabulary grammar check "
              f"{median_ms(full_check, reps=3):9.1f} ms")
    ctx.close()
    model.close()


def converter_costs(counts: list[int]) -> None:
    from vibe_edge.engine.grammar import unbounded_schema_grammar

    for n in counts:
        schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(n)}}
        t0 = time.perf_counter()
        grammar = unbounded_schema_grammar(json.dumps(schema))
        print(f"  {n:>4} optional properties: convert {1000 * (time.perf_counter() - t0):7.1f} ms, "
              f"{len(grammar):,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="demo or a .gguf path (its vocabulary matters)")
    parser.add_argument("--quick", action="store_true", help="8 MiB stack only, fewer sizes")
    args = parser.parse_args()
    from vibe_edge.registry import demo_model_path

    model = str(demo_model_path()) if args.model == "demo" else args.model
    print("1. nested groups that crash the process (llama.cpp's recursive grammar parser):")
    for stack in ([8192] if args.quick else [8192, 1024, 256]):
        found = crash_threshold(model, stack)
        print(f"  {stack:>5} KiB thread stack: crash from about {found:,} nested groups"
              if found else f"  {stack} KiB: no crash up to 100,000")
    print(f"2. llama.cpp refuses to parse from {refusal_threshold(model):,} nested optional groups")
    print("3. grammar costs:")
    sampling_costs(model, [16, 256] if args.quick else [16, 64, 256, 1024, 4096])
    print("4. the JSON-schema converter:")
    converter_costs([32, 128] if args.quick else [32, 128, 512])


if __name__ == "__main__":
    main()
