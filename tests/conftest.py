"""Shared fixtures: the real corpus lives in ../shared/corpus (or $GATECHECK_CORPUS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("GATECHECK_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()


def corpus_file(rel: str) -> Path:
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"corpus file {rel} not present")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    return CORPUS


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Any]:
    """The API over real SQLite + local disk with two tenants and a key per role (tests/test_api.py)."""
    from tests.test_api import make_env

    e = make_env(tmp_path)
    yield e
    e.state.close()



@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server per test module (tests/servers.py); skipped where none is installed."""
    from tests.servers import require_redis_server, start_redis

    require_redis_server()
    url, stop = start_redis()
    yield url
    stop()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A real S3-protocol server (moto) per test module; CI must have it, elsewhere its tests skip."""
    from tests.servers import require_moto, start_moto

    require_moto()
    url, stop = start_moto()
    yield url
    stop()

# -- the reliability catalogue report ---------------------------------------------------------------------------
# With GATECHECK_CATALOGUE_REPORT=<file>, every test marked catalogue(n) appends one JSON line: its node id, the
# catalogue numbers, outcome and duration. benchmarks/catalogue_report.py turns that into the closing table.


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    out = os.environ.get("GATECHECK_CATALOGUE_REPORT")
    numbers = getattr(report, "catalogue", None)
    if not out or not numbers:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        import json

        row = {"nodeid": report.nodeid, "catalogue": numbers, "outcome": report.outcome,
               "seconds": round(report.duration, 3)}
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    numbers = sorted({int(m.args[0]) for m in item.iter_markers("catalogue")})
    if numbers:
        outcome.get_result().catalogue = numbers
