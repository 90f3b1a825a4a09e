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
