"""The load generator behind bench/serve_bench.py: N concurrent streaming clients, each sending
M chat requests to an OpenAI-compatible server, and what they saw (aggregate generated tokens/s,
p50/p95 time to first token, p50 inter-token latency, streams that completed).

A stream counts one token per SSE chunk carrying text (servers send one chunk per token;
vibe-edge may merge a multi-byte character's pieces into one chunk). Every request's prompt is
unique, so no server answers from a cached prompt.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx

from vibe_edge.bench.metrics import percentile

__all__ = ["PROMPTS", "RunResult", "StreamRecord", "format_row", "median_result", "one_stream", "run_load"]

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


async def one_stream(client: httpx.AsyncClient, url: str, model: str, prompt: str,
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
                records.append(await one_stream(client, url, model, prompt, max_tokens))
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
        ttft_p50_ms=ms(percentile(ttfts, 0.5)), ttft_p95_ms=ms(percentile(ttfts, 0.95)),
        itl_p50_ms=ms(percentile(gaps, 0.5)),
        errors=sorted({r.error for r in records if r.error})[:5],
    )


def median_result(runs: list[RunResult]) -> RunResult:
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


def format_row(r: RunResult) -> str:
    f = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    return (f"{r.server:<12} N={r.clients:<2} {r.completed:>3}/{r.requests:<3} complete  "
            f"{r.tokens_per_s:7.1f} tok/s  TTFT p50 {f(r.ttft_p50_ms):>6} ms  p95 {f(r.ttft_p95_ms):>6} ms  "
            f"ITL p50 {f(r.itl_p50_ms):>5} ms" + (f"  errors: {r.errors}" if r.errors else ""))
