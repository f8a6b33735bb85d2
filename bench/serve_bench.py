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
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from vibe_edge.bench.serve import RunResult, format_row, median_result, run_load

REPO = Path(__file__).resolve().parents[1]  # servers run from the checkout (models/ is there)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                    print(f"round {round_no}  " + format_row(result), flush=True)
                    runs.setdefault((t.name, n), []).append(result)
    finally:
        stop_targets(targets)
    results = [median_result(rs) for rs in runs.values()]
    print("\nmedians over rounds:" if args.rounds > 1 else "\nresults:")
    for r in results:
        print(format_row(r))
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
