"""Malware scanning (reliability catalogue test 22) against a REAL clamd, started per module.

clamd runs as the current user in a temp dir (tests/servers.py ``start_clamd``), with production's
``AlertExceedsMax yes`` but small limits, loaded with a TEST-ONLY signature set: the EICAR test string
(tests/data/clamav/gatecheck-test.ndb). Production clamd uses freshclam's databases instead. The EICAR bytes
are read from that file's hex, so no source file here contains the string itself.

Layers: the INSTREAM client (worker/avscan.py) over unix socket and TCP; ``process_submission`` called as a
function over SQLite + local disk; and one submission through a real Celery worker over Redis + S3 (moto).
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from service.contracts import Status, submission_prefix
from tests import test_worker
from tests.conftest import corpus_file
from tests.servers import CLAMAV_TEST_DB, free_port, start_clamd
from tests.test_worker import FILES, TENANT, Cluster, make_record, wait_for
from worker import avscan, tasks
from worker.avscan import ClamdScanner, ScanResult, Verdict

# fixtures of tests/test_worker.py (pytest finds them by these names): the in-process worker over SQLite and
# local disk, and real S3 (moto) + Celery worker processes (redis_url comes from conftest)
embedded = test_worker.embedded
cluster = test_worker.cluster

pytestmark = [pytest.mark.corpus, pytest.mark.catalogue(22)]

EICAR = bytes.fromhex(next(line for line in CLAMAV_TEST_DB.read_text().splitlines()
                           if line and not line.startswith("#")).rsplit(":", 1)[1])
SIGNATURE = "Gatecheck.Test.EICAR"
GOOD_DOCX = "docx/poi_61787_no_app_xml.docx"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def clamd() -> Iterator[dict[str, Any]]:
    """One clamd for the module: its two addresses and how long it took to answer PING."""
    start = time.monotonic()
    (unix_url, tcp_url), stop = start_clamd()
    info = {"unix": unix_url, "tcp": tcp_url, "startup_s": time.monotonic() - start}
    yield info
    stop()


@pytest.fixture(params=["unix", "tcp"])
def scanner(request: pytest.FixtureRequest, clamd: dict[str, Any]) -> ClamdScanner:
    return ClamdScanner(clamd[request.param], timeout_s=30)


# -- hostile and clean inputs -------------------------------------------------------------------------------------


def docx_with_eicar(folder: Path) -> Path:
    """A real docx with the test virus as an embedded object (as Word stores an attached file)."""
    path = folder / "report.docx"
    path.write_bytes(corpus_file(GOOD_DOCX).read_bytes())
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/embeddings/oleObject1.bin", b"MZ\0\0" + EICAR + b"\0" * 64)
    return path


def nested_zip_with_eicar(folder: Path) -> Path:
    """A portfolio zip holding a zip holding a zip holding the test virus, next to a clean document."""
    blob = EICAR
    for name in ("tool.com", "deeper.zip", "inner.zip"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(name, blob)
        blob = buf.getvalue()
    path = folder / "evidence.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evidence/inner.zip", blob)
        zf.writestr("evidence/report.docx", corpus_file(GOOD_DOCX).read_bytes())
    return path


def over_stream_limit(folder: Path) -> Path:
    """5 MiB: past StreamMaxLength (4M), so clamd refuses the stream."""
    path = folder / "recording.wav"
    path.write_bytes(random.Random(1).randbytes(5 * MiB))
    return path


def over_file_limit(folder: Path) -> Path:
    """3.5 MB: within the stream limit, past MaxFileSize (3M): clamd stops early and says so."""
    path = folder / "recording.mp3"
    path.write_bytes(random.Random(2).randbytes(3_500_000))
    return path


def over_scan_limit(folder: Path) -> Path:
    """A 400 KB zip whose 30 members expand to 77 MB: past MaxScanSize (64M)."""
    rng = random.Random(3)
    path = folder / "bundle.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(30):
            zf.writestr(f"part{i}.bin", rng.randbytes(1024) * 2500)
    return path


# -- the INSTREAM client against a real clamd ---------------------------------------------------------------------


def test_clamd_starts_and_answers_on_both_sockets(clamd: dict[str, Any]) -> None:
    assert clamd["startup_s"] < 30
    assert ClamdScanner(clamd["unix"]).ping() and ClamdScanner(clamd["tcp"]).ping()
    print(f"\nclamd ready in {clamd['startup_s']:.2f} s (test signature set)")


def test_eicar_is_infected(scanner: ClamdScanner) -> None:
    result = scanner.scan_stream(io.BytesIO(EICAR))
    assert result.verdict is Verdict.INFECTED and result.signature.startswith(SIGNATURE)


@pytest.mark.parametrize("make", [docx_with_eicar, nested_zip_with_eicar])
def test_eicar_inside_docx_and_nested_zip_is_infected(scanner: ClamdScanner, tmp_path: Path, make: Any) -> None:
    result = scanner.scan_path(make(tmp_path))
    assert result.verdict is Verdict.INFECTED and result.signature.startswith(SIGNATURE), result


@pytest.mark.parametrize(("make", "signature"), [
    (over_stream_limit, "INSTREAM size limit exceeded"),
    (over_file_limit, "Heuristics.Limits.Exceeded.MaxFileSize"),
    (over_scan_limit, "Heuristics.Limits.Exceeded.MaxScanSize"),
])
def test_files_over_the_scan_limits_are_never_clean(scanner: ClamdScanner, tmp_path: Path, make: Any,
                                                    signature: str) -> None:
    result = scanner.scan_path(make(tmp_path))
    assert result.verdict is Verdict.LIMITS_EXCEEDED and result.signature.startswith(signature), result


def test_clean_files_are_clean(scanner: ClamdScanner) -> None:
    for _, rel in [*FILES, ("", GOOD_DOCX), ("", "media/mdn_rabbit320.mp4")]:
        assert scanner.scan_path(corpus_file(rel)) == ScanResult(Verdict.CLEAN), rel
    assert scanner.scan_stream(io.BytesIO(b"")) == ScanResult(Verdict.CLEAN)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP listener that accepts and then never answers: a clamd stuck in a scan."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # so the accept loop sees ``done`` (close() does not wake a blocked accept)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join(timeout=5)
    server.close()
    for conn in held:
        conn.close()


def test_scanner_down_is_unavailable(tmp_path: Path, silent_server: str) -> None:
    for url in (f"unix://{tmp_path}/no-clamd.sock", f"tcp://127.0.0.1:{free_port()}"):
        scanner = ClamdScanner(url, timeout_s=2)
        result = scanner.scan_stream(io.BytesIO(EICAR))
        assert result.verdict is Verdict.UNAVAILABLE and "connect" in result.detail, (url, result)
        assert not scanner.ping()
    start = time.monotonic()
    stuck = ClamdScanner(silent_server, timeout_s=1).scan_stream(io.BytesIO(b"hello"))
    assert stuck.verdict is Verdict.UNAVAILABLE and "no answer" in stuck.detail
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(("reply", "verdict", "signature"), [
    ("stream: OK", Verdict.CLEAN, ""),
    ("stream: Win.Test.EICAR_HDB-1 FOUND", Verdict.INFECTED, "Win.Test.EICAR_HDB-1"),
    ("stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND", Verdict.LIMITS_EXCEEDED,
     "Heuristics.Limits.Exceeded.MaxRecursion"),
    ("INSTREAM size limit exceeded. ERROR", Verdict.LIMITS_EXCEEDED, "INSTREAM size limit exceeded (StreamMaxLength)"),
    ("stream: Can't allocate memory ERROR", Verdict.UNAVAILABLE, ""),
    ("", Verdict.UNAVAILABLE, ""),
])
def test_reply_parsing(reply: str, verdict: Verdict, signature: str) -> None:
    result = avscan.parse_reply(reply)
    assert (result.verdict, result.signature) == (verdict, signature)


def test_configuration() -> None:
    assert avscan.scanner("") is None and avscan.scanner("  ") is None
    assert ClamdScanner("tcp://clamav:3310").address == ("clamav", 3310)
    assert ClamdScanner("unix:///run/clamav/clamd.ctl").address == "/run/clamav/clamd.ctl"
    for bad in ("clamav:3310", "tcp://clamav", "http://clamav:3310", "unix://"):
        with pytest.raises(ValueError, match="GATECHECK_CLAMD"):
            ClamdScanner(bad)


# -- the worker: quarantine, limits, retries ----------------------------------------------------------------------


@pytest.fixture
def scanning(embedded: Any, clamd: dict[str, Any]) -> Any:
    """The in-process worker (SQLite + local disk) with GATECHECK_CLAMD pointing at the test clamd."""
    tasks.bind(replace(embedded.settings, clamd=clamd["unix"]), embedded.state, embedded.storage)
    return embedded


def _original_key(sid: str, n: int) -> str:
    return submission_prefix(TENANT, sid) + f"originals/{n:03d}"


@pytest.mark.parametrize(("make", "name"), [(docx_with_eicar, "project report.docx"),
                                            (nested_zip_with_eicar, "portfolio.zip")])
def test_infected_original_is_quarantined_and_the_submission_fails_malware(
    scanning: Any, tmp_path: Path, make: Any, name: str
) -> None:
    files = [("ksb mapping.md", FILES[2][1]), (name, str(make(tmp_path)))]
    sid = make_record(scanning.state, scanning.storage, files=files, callback_url="http://127.0.0.1:9/hook")
    assert tasks.process_submission(sid) == "malware"
    rec = scanning.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "malware" and rec.attempts == 1
    assert name in (rec.error_message or "") and SIGNATURE in (rec.error_message or "") and rec.remedy
    assert not scanning.storage.exists(_original_key(sid, 1))  # quarantined: gone from the readable store
    assert scanning.storage.exists(_original_key(sid, 0))  # the clean file is untouched
    assert rec.report_key is None and not scanning.storage.exists(submission_prefix(TENANT, sid) + "report.json")
    assert not scanning.storage.exists(submission_prefix(TENANT, sid) + "extracted.json")
    assert scanning.notified == [sid]  # the failure is announced like any other
    assert tasks.process_submission(sid) == "duplicate"


def test_file_over_the_scan_limits_fails_and_is_not_checked(scanning: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[Any] = []
    monkeypatch.setattr(tasks, "check_paths", lambda *a, **k: parsed.append(a))
    files = [("ksb mapping.md", FILES[2][1]), ("interview.mp3", str(over_file_limit(tmp_path)))]
    sid = make_record(scanning.state, scanning.storage, files=files)
    assert tasks.process_submission(sid) == "scan_limits_exceeded"
    rec = scanning.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "scan_limits_exceeded"
    assert "interview.mp3" in (rec.error_message or "") and "MaxFileSize" in (rec.error_message or "")
    assert parsed == []  # never treated as clean: no parser saw it
    assert scanning.storage.exists(_original_key(sid, 1))  # not malware: kept (retention deletes it as usual)


def test_clean_submission_is_checked(scanning: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gatecheck.worker")
    sid = make_record(scanning.state, scanning.storage)
    assert tasks.process_submission(sid) == "done"
    rec = scanning.state.get(sid)
    assert rec is not None and rec.status is Status.DONE and rec.report_key
    verdicts = [r.fields["verdict"] for r in caplog.records if r.msg == "av_scan"]  # type: ignore[attr-defined]
    assert verdicts == ["clean"] * len(FILES)


def test_scanning_disabled_when_unset_is_logged(embedded: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gatecheck.worker")
    assert embedded.settings.clamd == ""
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:])
    assert tasks.process_submission(sid) == "done"
    events = [r.fields for r in caplog.records if r.msg == "av_scan"]  # type: ignore[attr-defined]
    assert events == [{"submission_id": sid, "verdict": "disabled"}]


def test_scanner_down_is_retried_then_fails_without_passing_the_file(
    embedded: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks.bind(replace(embedded.settings, clamd=f"unix://{tmp_path}/no-clamd.sock"), embedded.state,
               embedded.storage)
    parsed: list[Any] = []
    monkeypatch.setattr(tasks, "check_paths", lambda *a, **k: parsed.append(a))
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:])
    tasks.process_submission.apply(args=(sid,))  # eager: Celery runs each retry at once
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "internal_error"
    assert rec.attempts == embedded.settings.max_attempts and parsed == []
    assert embedded.storage.exists(_original_key(sid, 0))  # unknown is not infected: nothing deleted


def test_scanner_back_after_an_outage_finishes_the_submission(scanning: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ClamdScanner.scan_path
    outages = [ScanResult(Verdict.UNAVAILABLE, detail="cannot connect to clamd (ConnectionRefusedError)")]

    def flaky(self: ClamdScanner, path: Path) -> ScanResult:
        return outages.pop() if outages else real(self, path)

    monkeypatch.setattr(ClamdScanner, "scan_path", flaky)
    sid = make_record(scanning.state, scanning.storage, files=FILES[2:])
    tasks.process_submission.apply(args=(sid,))
    rec = scanning.state.get(sid)
    assert rec is not None and rec.status is Status.DONE and rec.attempts == 2


# -- end to end: a real Celery worker over Redis and S3 -----------------------------------------------------------


@pytest.mark.timeout(180)
def test_real_worker_quarantines_eicar_in_s3(cluster: Cluster, clamd: dict[str, Any], tmp_path: Path) -> None:
    worker = cluster.start_worker(GATECHECK_CLAMD=clamd["tcp"])
    infected = make_record(cluster.state, cluster.storage,
                           files=[("ksb mapping.md", FILES[2][1]), ("report.docx", str(docx_with_eicar(tmp_path)))])
    clean = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(infected)
    cluster.enqueue(clean)
    wait_for(lambda: cluster.status(infected).status is Status.FAILED, 60, "FAILED", cluster.problem(worker))
    rec = cluster.status(infected)
    assert rec.error_code == "malware" and "report.docx" in (rec.error_message or "") and rec.attempts == 1
    assert not cluster.storage.exists(_original_key(infected, 1))
    assert cluster.storage.exists(_original_key(infected, 0))
    wait_for(lambda: cluster.status(clean).status is Status.DONE, 60, "DONE", cluster.problem(worker))
