"""Prometheus metrics, one registry per app (so several apps in one process never collide).

Counters and histograms are fed by the request handlers; the engine's live state (busy slots,
queue depth, KV cache use) is read at scrape time by a collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vibe_edge.types import EngineStatus, RequestStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
_DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)

# Outcomes of generation requests: the engine's finish reasons, plus ways a request never ran.
OUTCOMES = ("stop", "length", "timeout", "cancelled", "error", "disconnected",
            "invalid", "unauthorized", "too_large", "busy", "unavailable")
_STATUS_OUTCOMES = {400: "invalid", 401: "unauthorized", 413: "too_large", 429: "busy", 503: "unavailable"}


def outcome_for_status(status: int) -> str:
    return _STATUS_OUTCOMES.get(status, "invalid" if 400 <= status < 500 else "error")


class _EngineCollector(Collector):
    def __init__(self, status: Callable[[], EngineStatus | None], ready: Callable[[], bool]):
        self._status = status
        self._ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("vibe_edge_ready", "1 when the model is loaded and serving",
                                value=1.0 if self._ready() else 0.0)
        status = self._status()
        if status is None:
            return
        values = {
            "vibe_edge_slots": ("Sequence slots (parallel requests)", status.n_slots),
            "vibe_edge_busy_slots": ("Slots working on a request", status.busy_slots),
            "vibe_edge_queue_depth": ("Requests waiting for a slot", status.queued),
            "vibe_edge_queue_capacity": ("Requests that may wait before 429", status.queue_size),
            "vibe_edge_kv_cache_used_tokens": ("KV-cache cells in use (prefix cache included)",
                                               status.kv_used_tokens),
            "vibe_edge_kv_cache_capacity_tokens": ("KV-cache cells in all slots",
                                                   status.kv_capacity_tokens),
            "vibe_edge_kv_cache_usage_ratio": (
                "Fraction of the KV cache in use",
                status.kv_used_tokens / status.kv_capacity_tokens if status.kv_capacity_tokens else 0.0),
        }
        for name, (doc, value) in values.items():
            yield GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    def __init__(self, status: Callable[[], EngineStatus | None], ready: Callable[[], bool]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("vibe_edge_requests", "Generation requests by endpoint and outcome",
                                ["endpoint", "outcome"], registry=r)
        self.prompt_tokens = Counter("vibe_edge_prompt_tokens", "Prompt tokens of finished requests",
                                     registry=r)
        self.cached_tokens = Counter("vibe_edge_cached_prompt_tokens",
                                     "Prompt tokens served from the prefix cache", registry=r)
        self.generated_tokens = Counter("vibe_edge_generated_tokens",
                                        "Tokens generated (reasoning and answer)", registry=r)
        self.reasoning_tokens = Counter("vibe_edge_reasoning_tokens",
                                        "Tokens generated inside <think>", registry=r)
        self.ttft = Histogram("vibe_edge_time_to_first_token_seconds",
                              "From arrival to the first generated token", buckets=_TTFT_BUCKETS,
                              registry=r)
        self.duration = Histogram("vibe_edge_request_duration_seconds",
                                  "From arrival to the last token", buckets=_DURATION_BUCKETS,
                                  registry=r)
        self.queue_time = Histogram("vibe_edge_queue_seconds", "Time waiting for a free slot",
                                    buckets=_TTFT_BUCKETS, registry=r)
        self.in_flight = Gauge("vibe_edge_http_requests_in_flight",
                               "Generation requests the server is answering", registry=r)
        r.register(_EngineCollector(status, ready))

    def rejected(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint, outcome_for_status(status)).inc()

    def finished(self, endpoint: str, outcome: str, stats: RequestStats | None) -> None:
        self.requests.labels(endpoint, outcome).inc()
        if stats is None:
            return
        self.prompt_tokens.inc(stats.prompt_tokens)
        self.cached_tokens.inc(stats.cached_tokens)
        self.generated_tokens.inc(stats.completion_tokens)
        self.reasoning_tokens.inc(stats.reasoning_tokens)
        if stats.ttft_ms is not None:
            self.ttft.observe(stats.ttft_ms / 1000)
        self.duration.observe(stats.total_ms / 1000)
        self.queue_time.observe(stats.queue_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
