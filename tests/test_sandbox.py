"""The sandbox turns hangs, memory blow-ups and native crashes into typed errors, and keeps serving.

Faults come from tests/sandbox_faults.py, imported only inside sandbox children:
a text file whose first line is ``FAULT <kind>`` makes the child hang, allocate
without bound, segfault or be SIGKILLed (as by the OOM killer). After each fault
the same pool must read a good corpus document (Tika's "baseline after fault").
"""

from __future__ import annotations

import json
import pickle
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extractors import CountMode, Limits, extract_paths, iter_extract
from extractors.limits import MiB
from extractors.portfolio import extract_any
from extractors.sandbox import SandboxPool, extract_any_sandboxed
from gatecheck.cli import main as cli_main
from tests.conftest import CORPUS, corpus_file
from tests.test_bad_corpus import EXPECTED
from tests.test_worker import embedded as worker_env  # noqa: F401  (a fixture: the worker bound to local backends)
from tests.test_worker import make_record, read_json

GOOD = "docx/poi_61787_no_app_xml.docx"
#: The issue's bar for hostile files: a typed error within 30 s and 512 MB.
HOSTILE = Limits(max_parse_seconds=3, max_parse_memory_bytes=512 * MiB)


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxPool]:
    pool = SandboxPool(memory_bytes=HOSTILE.max_parse_memory_bytes, setup="tests.sandbox_faults")
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def hostile_pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(memory_bytes=HOSTILE.max_parse_memory_bytes)
    yield pool
    pool.close()


def fault_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.txt"
    path.write_text(f"FAULT {kind}\n", encoding="utf-8")
    return path


def assert_good_document_reads(pool: SandboxPool) -> None:
    result = pool.extract(corpus_file(GOOD), "good.docx", CountMode.WORD, HOSTILE)
    assert result.errors == [] and len(result.documents) == 1
    assert result.documents[0].blocks


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "code", "bound_s"),
    [
        ("hang", "timeout", HOSTILE.max_parse_seconds + 5),
        ("allocate", "too_large", 30),
        ("segfault", "parser_crashed", 30),
        ("oom_killed", "too_large", 30),
    ],
)
@pytest.mark.catalogue(20)
@pytest.mark.catalogue(18)
def test_fault_becomes_typed_error_and_the_next_document_succeeds(
    faulty: SandboxPool, tmp_path: Path, kind: str, code: str, bound_s: float
) -> None:
    start = time.monotonic()
    result = faulty.extract(fault_file(tmp_path, kind), f"{kind}.txt", CountMode.WORD, HOSTILE)
    elapsed = time.monotonic() - start
    assert result.documents == []
    (error,) = result.errors
    assert error["code"] == code, error
    assert error["file"] == f"{kind}.txt" and error["message"] and error["remedy"]
    assert elapsed < bound_s
    assert_good_document_reads(faulty)


def test_messages_and_remedies_say_what_happened(faulty: SandboxPool, tmp_path: Path) -> None:
    hang = faulty.extract(fault_file(tmp_path, "hang"), "h.txt", CountMode.WORD, HOSTILE).errors[0]
    assert hang["message"] == f"took longer than {HOSTILE.max_parse_seconds} s to read"
    crash = faulty.extract(fault_file(tmp_path, "segfault"), "s.txt", CountMode.WORD, HOSTILE).errors[0]
    assert "SIGSEGV" in crash["message"] and "re-save or re-export" in crash["remedy"]
    memory = faulty.extract(fault_file(tmp_path, "allocate"), "a.txt", CountMode.WORD, HOSTILE).errors[0]
    assert "memory" in memory["message"]


def test_plain_text_is_still_read_by_the_faulty_child(faulty: SandboxPool, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some evidence notes\n", encoding="utf-8")
    (doc,) = faulty.extract(path, "notes.txt").documents
    assert doc.format == "text"


def test_child_is_recycled_after_n_documents_and_after_a_failure(tmp_path: Path) -> None:
    pool = SandboxPool(recycle_after=2)
    good = corpus_file(GOOD)
    try:
        pool.extract(good, "a")
        (first,) = pool.pids()
        pool.extract(good, "b")  # second document: the child is retired after it
        pool.extract(good, "c")
        (second,) = pool.pids()
        assert second != first
        assert pool.extract(tmp_path / "missing.docx", "gone").errors[0]["code"] == "not_found"
        pool.extract(good, "d")
        assert pool.pids() != [second]
    finally:
        pool.close()
    assert pool.pids() == []


def test_folder_is_walked_in_the_parent_so_one_bad_file_costs_only_itself(faulty: SandboxPool, tmp_path: Path) -> None:
    folder = tmp_path / "portfolio"
    (folder / "evidence").mkdir(parents=True)
    fault_file(folder / "evidence", "segfault")
    (folder / "report.docx").write_bytes(corpus_file(GOOD).read_bytes())
    result = extract_any_sandboxed(folder, "portfolio", CountMode.WORD, HOSTILE, pool=faulty)
    assert [e["code"] for e in result.errors] == ["parser_crashed"]
    assert result.errors[0]["file"] == "portfolio/evidence/segfault.txt"
    (doc,) = result.documents
    assert doc.file == "portfolio/report.docx" and doc.group == ""


def test_sandboxed_result_equals_in_process() -> None:
    path = corpus_file(GOOD)
    (inside,) = extract_paths([path]).documents
    (sandboxed,) = extract_paths([path], sandbox=True).documents
    assert sandboxed == inside


def test_results_pickle_across_the_process_boundary(corpus: Path) -> None:
    """Result and Document are slotted dataclasses; every corpus document must survive pickling intact."""
    for rel in ("docx/poi_61787_no_app_xml.docx", "pptx", "pdf"):
        path = corpus / rel
        files = [path] if path.is_file() else sorted(path.iterdir())[:3]
        for file in files:
            result = extract_any(file, file.name, CountMode.WORD, Limits())
            assert pickle.loads(pickle.dumps(result)) == result
    limits = Limits(max_parse_seconds=7)
    assert pickle.loads(pickle.dumps(limits)) == limits


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATECHECK_MAX_PARSE_SECONDS", "30")
    monkeypatch.setenv("GATECHECK_MAX_PARSE_MEMORY_BYTES", str(512 * MiB))
    monkeypatch.setenv("GATECHECK_SANDBOX_RECYCLE_AFTER", "5")
    limits = Limits.from_env()
    assert (limits.max_parse_seconds, limits.max_parse_memory_bytes, limits.sandbox_recycle_after) == (
        30, 512 * MiB, 5)
    assert Limits().max_parse_seconds == 60 and Limits().max_parse_memory_bytes == 1024 * MiB


def test_iter_extract_sandboxed_keeps_inputs_in_order(tmp_path: Path) -> None:
    good = corpus_file(GOOD)
    names = [display for display, _ in iter_extract([good, tmp_path / "nope.pdf"], sandbox=True)]
    assert names == [str(good), str(tmp_path / "nope.pdf")]


def test_cli_sandbox_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["extract", "--sandbox", "--format", "json", "--no-progress", str(corpus_file(GOOD))]) == 0
    assert '"errors": []' in capsys.readouterr().out
    cli_main(["check", "--sandbox", "--standard", "ST0505", "--method", "AM1", "--sample", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert [d["file"] for d in report["documents"]] and not report.get("errors")


@pytest.mark.catalogue(15)
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_corpus_in_the_sandbox_gives_the_same_codes(hostile_pool: SandboxPool, name: str) -> None:
    path = CORPUS / "bad" / name
    if not path.exists():
        pytest.skip("shared corpus not present")
    start = time.monotonic()
    result = extract_any_sandboxed(path, name, CountMode.WORD, Limits(max_parse_memory_bytes=512 * MiB,
                                                                       max_parse_seconds=30), pool=hostile_pool)
    assert result.documents == []
    (error,) = result.errors
    assert error["code"] == EXPECTED[name], error
    assert time.monotonic() - start < 30
    assert_good_document_reads(hostile_pool)


@pytest.mark.catalogue(20)
def test_worker_parses_in_the_sandbox_and_a_crashing_file_fails_alone(
    worker_env: Any, faulty: SandboxPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The worker's check goes through the sandbox: a segfaulting parser is one file's typed error."""
    from extractors import sandbox
    from worker import tasks

    monkeypatch.setattr(sandbox, "default_pool", lambda limits: faulty)
    crash = fault_file(tmp_path, "segfault")
    files = [("evidence.txt", str(crash)), ("report.docx", GOOD)]  # corpus_file() takes an absolute path too
    sid = make_record(worker_env.state, worker_env.storage, files=files)
    assert tasks.process_submission(sid) == "done"
    rec = worker_env.state.get(sid)
    extracted = read_json(worker_env.storage, rec.extracted_key)
    assert [e["code"] for e in extracted["errors"]] == ["parser_crashed"]
    assert [d["file"] for d in extracted["documents"]] == ["report.docx"]


# -- zip portfolios: one job per member -------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.timeout(60)
def test_zip_portfolio_member_that_hangs_costs_only_itself(faulty: SandboxPool, tmp_path: Path) -> None:
    """A zip is expanded by a child and each member is its own job: one hang is one member's timeout."""
    good = corpus_file(GOOD).read_bytes()
    inner = _zip(tmp_path / "inner.zip", {"deep/notes.md": b"# Notes\nRead from a nested zip.\n"}).read_bytes()
    portfolio = _zip(tmp_path / "portfolio.zip", {
        "task1/report.docx": good,
        "task2/stuck.txt": b"FAULT hang\n",
        "task3/inner.zip": inner,
        "task4/notes.md": b"# Task 4\nI configured the firewall.\n",
    })
    mark = len(faulty.history)
    start = time.monotonic()
    result = extract_any_sandboxed(portfolio, "portfolio.zip", CountMode.WORD, HOSTILE, pool=faulty)
    elapsed = time.monotonic() - start
    assert [(e["file"], e["code"]) for e in result.errors] == [("portfolio.zip/task2/stuck.txt", "timeout")]
    assert [(d.file, d.group) for d in result.documents] == [
        ("portfolio.zip/task1/report.docx", "task1"),
        ("portfolio.zip/task3/inner.zip/deep/notes.md", "deep"),
        ("portfolio.zip/task4/notes.md", "task4"),
    ]
    assert elapsed < HOSTILE.max_parse_seconds + 5  # one deadline, not one per member or per archive
    jobs = [(s.display, s.outcome) for s in list(faulty.history)[mark:]]
    assert jobs == [("portfolio.zip", "expanded"), ("portfolio.zip/task1/report.docx", "ok"),
                    ("portfolio.zip/task2/stuck.txt", "timeout"), ("portfolio.zip/task3/inner.zip", "expanded"),
                    ("portfolio.zip/task3/inner.zip/deep/notes.md", "ok"), ("portfolio.zip/task4/notes.md", "ok")]


def test_zip_portfolio_reads_the_same_in_process_and_sandboxed(hostile_pool: SandboxPool, tmp_path: Path) -> None:
    inner = _zip(tmp_path / "inner.zip", {"a/one.md": b"# One\nfirst words\n", "b/two.md": b"# Two\nmore\n"})
    portfolio = _zip(tmp_path / "gateway.zip", {
        "portfolio/report.docx": corpus_file(GOOD).read_bytes(),
        "portfolio/nested/inner.zip": inner.read_bytes(),
        "__MACOSX/._junk": b"junk",
        "legacy/old.doc": corpus_file("bad/poi_SampleDoc_legacy_word97.doc").read_bytes(),
        "empty.md": b"",
    })
    inside = extract_any(portfolio, "gateway.zip", CountMode.WORD, Limits())
    boxed = extract_any_sandboxed(portfolio, "gateway.zip", CountMode.WORD, HOSTILE, pool=hostile_pool)
    assert boxed == inside
    assert [e["code"] for e in boxed.errors] == ["legacy_format", "empty"]
    assert len(boxed.documents) == 3


def test_pool_reports_wall_time_and_peak_memory_per_job(faulty: SandboxPool, tmp_path: Path) -> None:
    faulty.extract(corpus_file(GOOD), "good.docx", CountMode.WORD, HOSTILE)
    stats = faulty.last_stats
    assert stats is not None and stats.display == "good.docx" and stats.outcome == "ok"
    assert 0 < stats.wall_s < 30 and 10 * MiB < stats.peak_rss_bytes < HOSTILE.max_parse_memory_bytes
    # a child that blew its memory was reaped with wait4: its peak is known although it never answered
    faulty.extract(fault_file(tmp_path, "allocate"), "a.txt", CountMode.WORD, HOSTILE)
    blown = faulty.last_stats
    assert blown is not None and blown.outcome == "too_large"
    assert blown.peak_rss_bytes > 256 * MiB  # it hoarded 32 MiB blocks up to the 512 MiB cap
    faulty.extract(fault_file(tmp_path, "segfault"), "s.txt", CountMode.WORD, HOSTILE)
    crashed = faulty.last_stats
    assert crashed is not None and crashed.outcome == "parser_crashed" and crashed.peak_rss_bytes > 10 * MiB
    assert [s.display for s in list(faulty.history)[-3:]] == ["good.docx", "a.txt", "s.txt"]
