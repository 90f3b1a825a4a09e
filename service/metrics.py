"""Prometheus metrics for the API process.

Why a registry per app rather than prometheus-client's global one: tests (and
``gatecheck serve`` reloads) build several apps in one process, and the global
registry refuses a second metric with the same name. Kept small on purpose:
request count and latency by route template, uploads by outcome (accepted or
the rejection code), and queue depth when the caller can tell us.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, queue_depth: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gatecheck_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gatecheck_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.uploads = Counter(
            "gatecheck_submissions", "Submissions by upload outcome (accepted or the rejection code)",
            ["outcome"], registry=self.registry,
        )
        if queue_depth is not None:
            depth = Gauge("gatecheck_queue_depth", "Submissions waiting for a worker", registry=self.registry)

            def _read() -> float:
                try:
                    return float(queue_depth())
                except Exception:  # a broker hiccup must not break /metrics
                    return float("nan")

            depth.set_function(_read)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def upload(self, outcome: str) -> None:
        self.uploads.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
