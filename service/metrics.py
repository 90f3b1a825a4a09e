"""Prometheus metrics for the API process.

Why a registry per app rather than prometheus-client's global one: tests (and
``gatecheck serve`` reloads) build several apps in one process, and the global
registry refuses a second metric with the same name. Kept small on purpose:
request count and latency by route template, uploads by outcome (accepted or
the rejection code), and queue depth when the caller can tell us.

Task counts and durations happen in the workers, not here: workers add them to the
state store (``StateStore.record_task``) and ``TaskStatsCollector`` reads them back
at scrape time, so every API replica reports the same cluster-wide totals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import logs

CONTENT_TYPE = CONTENT_TYPE_LATEST
TASKS = "gatecheck_tasks"  # exposed as gatecheck_tasks_total
TASKS_HELP = "Finished tasks by terminal status and report outcome"
TASK_DURATION = "gatecheck_task_duration_seconds"
TASK_DURATION_HELP = "Task duration from start of the last attempt to its terminal state"


class TaskStatsCollector(Collector):
    """Task outcomes and durations from ``task_stats()`` (the state store), read at each scrape.

    If the store cannot be read the two families are left out of that scrape: a gap in the
    series is honest, zeros would look like counter resets, and /metrics must not fail.
    """

    def __init__(self, task_stats: Callable[[], dict[str, Any]]) -> None:
        self._task_stats = task_stats

    def describe(self) -> Iterator[Metric]:  # names only: registering must not touch the store
        yield CounterMetricFamily(TASKS, TASKS_HELP, labels=["status", "outcome"])
        yield HistogramMetricFamily(TASK_DURATION, TASK_DURATION_HELP)

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._task_stats()
            counter = CounterMetricFamily(TASKS, TASKS_HELP, labels=["status", "outcome"])
            for (status, outcome), n in sorted(stats["tasks"].items()):
                counter.add_metric([str(status), str(outcome)], float(n))
            duration = stats["duration"]
            histogram = HistogramMetricFamily(
                TASK_DURATION, TASK_DURATION_HELP, sum_value=float(duration["sum"]),
                buckets=[(floatToGoString(le), float(n)) for le, n in duration["buckets"]])
        except Exception as e:  # state store down or overloaded: skip this scrape's task series
            logs.event("task_stats_unavailable", logging.WARNING, exception=type(e).__name__)
            return
        yield counter
        yield histogram


class Metrics:
    def __init__(self, queue_depth: Callable[[], int] | None = None,
                 task_stats: Callable[[], dict[str, Any]] | None = None) -> None:
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
        if task_stats is not None:
            self.registry.register(TaskStatsCollector(task_stats))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def upload(self, outcome: str) -> None:
        self.uploads.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
