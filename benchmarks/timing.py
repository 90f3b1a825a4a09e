"""Shared timing helper for the benchmark scripts (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``fn`` over ``rounds`` calls; a GC pass before each so one call's garbage
    is not charged to the next."""
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
