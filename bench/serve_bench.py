"""Load generator: `vibe-edge serve` against `python -m llama_cpp.server`, same GGUF, same threads.

N concurrent streaming clients each send M chat requests with a fixed max_tokens; for every N
it reports aggregate generated tokens/s, p50/p95 time to first token, p50 inter-token latency
and how many streams completed (ended with a finish_reason and [DONE]). A stream counts one
token per SSE chunk carrying text (both servers send one chunk per token; vibe-edge may merge
a multi-byte character's pieces into one chunk). Every request's prompt is unique, so neither
server answers from a cached prompt.

    python bench/serve_bench.py                         # demo model, N = 1,4,8, M = 2
    python bench/serve_bench.py --model models/vibethinker-1.5b-q4_k_m.gguf --max-tokens 128
    python bench/serve_bench.py --only vibe-edge --clients 1,4 --json out.json

llama_cpp.server needs llama-cpp-python's server extras in the same environment:
`pip install sse-starlette starlette-context pydantic-settings`. By default it interrupts a
running stream when another request arrives (--interrupt_requests): that run shows what its
users get today; the 'serial' run (--interrupt_requests False) shows it queueing requests and
serving them one at a time, the baseline for the throughput and TTFT ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a steam engine works, step by step.",
    "Describe a walk through a busy market in a big city, with many details.",
    "Write a long letter from a sailor to his family, describing his voyage.",
    "Tell the history of the bicycle, from its invention to today.",
    "Describe how bread is made, from the wheat field to the bakery.",
    "Write a detailed travel guide for a week in the mountains.",
    "Explain how the weather works: clouds, rain, wind and storms.",
]


@dataclass
class StreamRecord:
    ok: bool
    tokens: int
    ttft_s: float | None
    gaps_s: list[float] = field(default_factory=list)
    total_s: float = 0.0
    error: str | None = None


@dataclass
class RunResult:
    server: str
    clients: int
    requests: int
    completed: int
    tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    errors: list[str]


_request_serial = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _one_stream(client: httpx.AsyncClient, url: str, model: str, prompt: str,
                      max_tokens: int) -> StreamRecord:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    last: float | None = None
    gaps: list[float] = []
    tokens = 0
    finished = done = False
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                return StreamRecord(False, 0, None, error=f"HTTP {response.status_code}: {text[:120]}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    done = True
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    return StreamRecord(False, tokens, None, error=str(chunk["error"])[:120])
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                    if text:
                        now = time.perf_counter()
                        tokens += 1
                        if first is None:
                            first = now
                        else:
                            gaps.append(now - last)
                        last = now
                    if choice.get("finish_reason"):
                        finished = True
    except httpx.HTTPError as exc:
        return StreamRecord(False, tokens, None if first is None else first - t0, gaps,
                            time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}"[:120])
    return StreamRecord(finished and done and tokens > 0, tokens, None if first is None else first - t0,
                        gaps, time.perf_counter() - t0)


async def run_load(url: str, model: str, *, clients: int, per_client: int, max_tokens: int,
                   server: str) -> RunResult:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        async def worker(index: int) -> list[StreamRecord]:
            records = []
            for j in range(per_client):
                # A unique opening per request, so no server answers from a cached prompt: the
                # chat template's system part is still shared, as it is in real use.
                prompt = f"(Request {next(_request_serial)}.) " + PROMPTS[(index * per_client + j) % len(PROMPTS)]
                records.append(await _one_stream(client, url, model, prompt, max_tokens))
            return records

        t0 = time.perf_counter()
        results = await asyncio.gather(*(worker(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    records = [r for rs in results for r in rs]
    tokens = sum(r.tokens for r in records)
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    gaps = [g for r in records for g in r.gaps_s]
    ms = lambda v: None if v is None else round(1000 * v, 1)  # noqa: E731
    return RunResult(
        server=server, clients=clients, requests=len(records),
        completed=sum(1 for r in records if r.ok), tokens=tokens, wall_s=round(wall, 2),
        tokens_per_s=round(tokens / wall, 2) if wall > 0 else 0.0,
        ttft_p50_ms=ms(_percentile(ttfts, 0.5)), ttft_p95_ms=ms(_percentile(ttfts, 0.95)),
        itl_p50_ms=ms(_percentile(gaps, 0.5)),
        errors=sorted({r.error for r in records if r.error})[:5],
    )


def _wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url}{path} not ready after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_vibe_edge(model: str, *, threads: int, slots: int, ctx: int, port: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vibe_edge", "serve", "--model", model, "--port", str(port),
           "--threads", str(threads), "--slots", str(slots), "--ctx", str(ctx), "--alias", "bench",
           "--grace", "0"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def start_llama_cpp(model_path: str, *, threads: int, ctx: int, port: int, interrupt: bool,
                    flash_attn: bool, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--model_alias", "bench",
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(ctx),
           "--flash_attn", str(flash_attn), "--interrupt_requests", str(interrupt)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def resolve_path(model: str) -> str:
    from vibe_edge.registry import resolve_model
    from vibe_edge.settings import load_settings

    return str(resolve_model(model, load_settings().resolved_models_dir).path)


@dataclass
class Target:
    name: str
    url: str
    ready_path: str
    start: object  # (log) -> Popen
    proc: subprocess.Popen | None = None
    log: object = None


def start_targets(targets: list[Target]) -> None:
    """Start every server (idle servers cost no CPU), then wait for all of them."""
    for t in targets:
        log_path = Path(tempfile.gettempdir()) / f"serve_bench_{t.name}.log"
        print(f"{t.name}: {t.url}, server log in {log_path}", flush=True)
        t.log = open(log_path, "w")  # noqa: SIM115
        t.proc = t.start(t.log)
    for t in targets:
        _wait_ready(t.url, t.proc, t.ready_path)
        asyncio.run(run_load(t.url, "bench", clients=1, per_client=1, max_tokens=8, server=t.name))  # warm-up


def stop_targets(targets: list[Target]) -> None:
    for t in targets:
        if t.proc is not None:
            _stop(t.proc)
        if t.log is not None:
            t.log.close()


def _median_result(runs: list[RunResult]) -> RunResult:
    """Per-field medians over rounds (a shared machine's load drifts; medians resist that)."""
    if len(runs) == 1:
        return runs[0]
    med = lambda vals: None if any(v is None for v in vals) else round(statistics.median(vals), 2)  # noqa: E731
    first = runs[0]
    return RunResult(
        server=first.server, clients=first.clients, requests=sum(r.requests for r in runs),
        completed=sum(r.completed for r in runs), tokens=sum(r.tokens for r in runs),
        wall_s=round(sum(r.wall_s for r in runs), 2),
        tokens_per_s=med([r.tokens_per_s for r in runs]),
        ttft_p50_ms=med([r.ttft_p50_ms for r in runs]), ttft_p95_ms=med([r.ttft_p95_ms for r in runs]),
        itl_p50_ms=med([r.itl_p50_ms for r in runs]),
        errors=sorted({e for r in runs for e in r.errors})[:5],
    )


def _row(r: RunResult) -> str:
    f = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    return (f"{r.server:<12} N={r.clients:<2} {r.completed:>3}/{r.requests:<3} complete  "
            f"{r.tokens_per_s:7.1f} tok/s  TTFT p50 {f(r.ttft_p50_ms):>6} ms  p95 {f(r.ttft_p95_ms):>6} ms  "
            f"ITL p50 {f(r.itl_p50_ms):>5} ms" + (f"  errors: {r.errors}" if r.errors else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="a .gguf path, a models/ name or demo")
    parser.add_argument("--threads", type=int, default=max(1, len(os.sched_getaffinity(0))))
    parser.add_argument("--clients", default="1,4,8", help="comma-separated N values")
    parser.add_argument("--requests", type=int, default=2, help="M: requests per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ctx", type=int, default=2048, help="context per sequence")
    parser.add_argument("--slots", type=int, default=None, help="vibe-edge slots (default: max N)")
    parser.add_argument("--only", choices=["vibe-edge", "llama-cpp"], default=None)
    parser.add_argument("--llama-cpp-modes", default="interrupt,serial",
                        help="llama_cpp.server runs: 'interrupt' (its default: a new request cuts "
                             "the running stream) and/or 'serial' (--interrupt_requests False: "
                             "requests wait their turn)")
    parser.add_argument("--flash-attn", default="true", choices=["true", "false"],
                        help="llama_cpp.server's --flash_attn (match the vibe-edge plan; CPU plans use it)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything; report medians")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args(argv)
    clients = [int(x) for x in args.clients.split(",") if x.strip()]
    slots = args.slots or max(clients)
    model_path = resolve_path(args.model)
    print(f"model {model_path}\nthreads {args.threads}, max_tokens {args.max_tokens}, "
          f"{args.requests} requests per client, N = {clients}, vibe-edge slots {slots}", flush=True)
    targets: list[Target] = []
    if args.only in (None, "vibe-edge"):
        port = _free_port()
        targets.append(Target("vibe-edge", f"http://127.0.0.1:{port}", "/health", lambda log, port=port:
                              start_vibe_edge(model_path, threads=args.threads, slots=slots, ctx=args.ctx,
                                              port=port, log=log)))
    for mode in [m.strip() for m in args.llama_cpp_modes.split(",") if m.strip()] if args.only != "vibe-edge" else []:
        if mode not in ("interrupt", "serial"):
            parser.error(f"unknown llama_cpp mode {mode!r}")
        port = _free_port()
        targets.append(Target(
            "llama_cpp" if mode == "interrupt" else "llama_cpp-serial", f"http://127.0.0.1:{port}",
            "/v1/models", lambda log, port=port, mode=mode: start_llama_cpp(
                model_path, threads=args.threads, ctx=args.ctx, port=port,
                interrupt=mode == "interrupt", flash_attn=args.flash_attn == "true", log=log)))
    runs: dict[tuple[str, int], list[RunResult]] = {}
    try:
        start_targets(targets)
        # Interleaved: every round runs each N on each server back to back, so load drift on a
        # shared machine hits all servers alike.
        for round_no in range(1, args.rounds + 1):
            for n in clients:
                for t in targets:
                    result = asyncio.run(run_load(t.url, "bench", clients=n, per_client=args.requests,
                                                  max_tokens=args.max_tokens, server=t.name))
                    print(f"round {round_no}  " + _row(result), flush=True)
                    runs.setdefault((t.name, n), []).append(result)
    finally:
        stop_targets(targets)
    results = [_median_result(rs) for rs in runs.values()]
    print("\nmedians over rounds:" if args.rounds > 1 else "\nresults:")
    for r in results:
        print(_row(r))
    summary = _compare(results)
    for line in summary:
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": [asdict(r) for r in results],
                                         "rounds": {f"{k[0]} N={k[1]}": [asdict(r) for r in v]
                                                    for k, v in runs.items()},
                                         "summary": summary}, indent=2))
    return 0


def _compare(results: list[RunResult]) -> list[str]:
    by = {(r.server, r.clients): r for r in results}
    lines = []
    ve1, ve4 = by.get(("vibe-edge", 1)), by.get(("vibe-edge", 4))
    # llama_cpp "one at a time": its serial run if there is one, else its interrupting run at N=1
    lc1 = by.get(("llama_cpp-serial", 1)) or by.get(("llama_cpp", 1))
    lc4_serial, lc4_int = by.get(("llama_cpp-serial", 4)), by.get(("llama_cpp", 4))
    if ve1 and lc1 and lc1.tokens_per_s:
        lines.append(f"N=1 throughput: vibe-edge / llama_cpp = {ve1.tokens_per_s / lc1.tokens_per_s:.2f} "
                     "(target >= 0.95)")
    if ve4:
        lines.append(f"N=4 streams complete: vibe-edge {ve4.completed}/{ve4.requests}"
                     + (f", llama_cpp (interrupting) {lc4_int.completed}/{lc4_int.requests}" if lc4_int else "")
                     + (f", llama_cpp-serial {lc4_serial.completed}/{lc4_serial.requests}" if lc4_serial else ""))
        one_at_a_time = lc4_serial or lc1
        if one_at_a_time and one_at_a_time.tokens_per_s:
            lines.append(f"N=4 aggregate vs llama_cpp serving the same requests one at a time "
                         f"({one_at_a_time.server} N={one_at_a_time.clients}): "
                         f"{ve4.tokens_per_s / one_at_a_time.tokens_per_s:.2f} x (target >= 1.2)")
        if ve1 and ve1.tokens_per_s:
            lines.append(f"N=4 aggregate vs vibe-edge N=1: {ve4.tokens_per_s / ve1.tokens_per_s:.2f} x")
        for other in (lc4_serial, lc4_int):
            if other and other.ttft_p95_ms and ve4.ttft_p95_ms is not None:
                lines.append(f"N=4 p95 TTFT: vibe-edge / {other.server} = "
                             f"{ve4.ttft_p95_ms / other.ttft_p95_ms:.2f} (target <= 0.3)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
