"""Catalogue 39: load and backpressure. Past its caps the API answers only 429 (queue full) or 503
(too many uploads at once), never another 5xx; it loses no accepted job and nothing is OOM-killed.

Two layers:

1. The caps in process (``make_env``: SQLite + local disk): a full queue is 429 ``queue_full`` and an
   upload over the in-flight cap 503 ``too_many_uploads``, both with Retry-After, a typed body, before
   the body is read, storing nothing.
2. The real stack on loopback: ``redis-server`` (broker and state), the API under uvicorn and a Celery
   worker as subprocesses (the helpers of tests/test_worker.py), saturated by a bounded burst of mixed
   benign and hostile corpus uploads: 120 requests from 6 clients, faster than the worker, fill the
   queue (429); once it drained, 80 from 24 clients while 6 slow uploads hold most in-flight slots
   (503). Every wait is bounded; every process is killed in teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import new_api_key
from service.contracts import TERMINAL, ApiRole
from service.state import RedisState
from service.storage import LocalStorage
from tests.conftest import corpus_file
from tests.servers import free_port
from tests.test_api import PPTX, STANDARD, docx_bytes, make_env, portfolio_zip
from tests.test_presigned import put, ticket
from tests.test_worker import ROOT, Cluster, kill_group, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MiB = 1024 * 1024


def _typed(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["remedy"]
    assert 1 <= int(r.headers["retry-after"]) <= 60


# --------------------------------------------------------------------------- 1. the caps, in process


def _streamed(boundary: str, consumed: list[int], started: asyncio.Event | None = None,
              release: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """A multipart body for one docx, pulled chunk by chunk; optionally paused after its first chunk."""
    body = docx_bytes()

    async def gen() -> AsyncIterator[bytes]:
        consumed[0] += 1
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="standard"\r\n\r\n{STANDARD["standard"]}\r\n'
               f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\n{STANDARD["method"]}\r\n'
               f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="r.docx"\r\n\r\n').encode()
        if started is not None and release is not None:
            started.set()
            await release.wait()
        consumed[0] += 1
        yield body + f"\r\n--{boundary}--\r\n".encode()
    return gen()


@pytest.mark.catalogue(39)
def test_full_queue_is_429_before_the_body_is_read_and_stores_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_queued=7)  # make_env's broker reports 7 messages waiting
    consumed = [0]

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t") as c:
            return await c.post("/v1/submissions", content=_streamed("Qf", consumed),
                                headers=env.headers(**{"Content-Type": "multipart/form-data; boundary=Qf"}))

    r = asyncio.run(run())
    _typed(r, 429, "queue_full")
    assert consumed[0] == 0  # not a byte of the body was pulled
    env.assert_nothing_stored()
    assert env.client.get("/v1/standards", headers=env.headers()).status_code == 200  # reads are not capped
    assert make_env(tmp_path / "below", max_queued=8).post([("r.docx", docx_bytes())]).status_code == 202
    # an unreachable broker (depth -1) is not "full": the enqueue itself decides (503 queue_unavailable)
    unknown = make_env(tmp_path / "unknown", max_queued=1)
    client = TestClient(create_app(unknown.settings, unknown.state, unknown.storage, unknown.enqueued.append,
                                   queue_depth=lambda: -1))
    r = client.post("/v1/submissions", headers=unknown.headers(), data=STANDARD,
                    files=[("files", ("r.docx", docx_bytes()))])
    assert r.status_code == 202 and len(unknown.enqueued) == 1


@pytest.mark.catalogue(39)
def test_uploads_over_the_inflight_cap_get_503_and_store_nothing(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_inflight_uploads=1)
    body = docx_bytes()
    t = ticket(env, "late.docx", len(body))  # an upload URL made before the slot is taken

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response]:
        started, release = asyncio.Event(), asyncio.Event()
        consumed, other = [0], [0]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t") as c:
            holding = asyncio.create_task(c.post(
                "/v1/submissions", content=_streamed("In", consumed, started, release),
                headers=env.headers(**{"Content-Type": "multipart/form-data; boundary=In"})))
            await asyncio.wait_for(started.wait(), 10)  # its body is being received: the one slot is taken
            refused = await c.post("/v1/submissions", content=_streamed("Ot", other),
                                   headers=env.headers(**{"Content-Type": "multipart/form-data; boundary=Ot"}))
            assert other[0] == 0
            path = t["url"].split("gatecheck.test", 1)[1]
            refused_put = await c.put(path, content=body, headers=t["headers"])  # upload URLs share the cap
            release.set()
            done = await asyncio.wait_for(holding, 30)
            after = await c.post("/v1/submissions", data=STANDARD, files=[("files", ("r.docx", body))],
                                 headers=env.headers())
            return refused, refused_put, done, after

    refused, refused_put, done, after = asyncio.run(run())
    _typed(refused, 503, "too_many_uploads")
    _typed(refused_put, 503, "too_many_uploads")
    assert done.status_code == 202 and after.status_code == 202  # the slot is given back
    assert len(env.records()) == 2 and len(env.enqueued) == 2
    assert not [k for k in env.objects() if k.startswith("tenants/acme/uploads/") and not k.endswith(".json")]
    assert put(env, t, body).status_code == 200  # and the upload URL works once there is room


# --------------------------------------------------------------------------- 2. the real stack, saturated

BURST = 200
PHASE1 = 120
PHASE1_CLIENTS = 6  # below MAX_INFLIGHT: phase 1 meets only the queue cap
CLIENTS = 24
SLOW_UPLOADS = 6  # each holds an in-flight slot for ~3 s while phase 2 runs, leaving 2 for 24 clients
MAX_QUEUED = 20
MAX_INFLIGHT = 8
MAX_FILE = 4 * MiB
BURST_CAP_S = 60.0
DRAIN_CAP_S = 180.0
PROFILE, METHOD = STANDARD["standard"], STANDARD["method"]
BACKPRESSURE = {429: "queue_full", 503: "too_many_uploads"}


@dataclass(frozen=True)
class Case:
    label: str
    name: str
    content: bytes
    expected: int  # 202, or the 4xx a hostile file gets when the service is not busy
    code: str = ""


def _cases() -> list[Case]:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evidence/zeros.txt", b"\0" * (8 * MiB))
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 8
    pptx = corpus_file(PPTX).read_bytes()
    return [
        Case("docx", "project report.docx", docx_bytes(), 202),
        Case("pptx", "slides.pptx", pptx, 202),
        Case("pdf", "cv.pdf", corpus_file("pdf/samplefiles_crazyones-pdfa.pdf").read_bytes(), 202),
        Case("markdown", "ksb mapping.md", corpus_file("epa/benfielding74_reference-list.md").read_bytes(), 202),
        Case("zip", "portfolio.zip", portfolio_zip(), 202),
        Case("encrypted_pdf", "cv.pdf",
             corpus_file("pdf/pypdf_r6-user-password_AES256_pw-asdfzxcv.pdf").read_bytes(), 202),
        Case("exe_name", "cv.exe", exe, 415, "extension_not_allowed"),
        Case("exe_as_pdf", "report.pdf", exe, 415, "unsupported_format"),
        Case("pptx_as_pdf", "cv.pdf", pptx, 422, "content_mismatch"),
        Case("empty", "cv.pdf", b"", 422, "empty"),
        Case("truncated_pdf", "cv.pdf", b"%PDF-1.", 422, "corrupt"),
        Case("legacy_doc", "cv.docx", corpus_file("bad/poi_SampleDoc_legacy_word97.doc").read_bytes(), 422,
             "legacy_format"),
        Case("encrypted_docx", "cv.docx",
             corpus_file("bad/poi_bug53475_ENCRYPTED_docx_password-is-pass.docx").read_bytes(), 422, "encrypted"),
        Case("zip_bomb", "portfolio.zip", bomb.getvalue(), 422, "zip_bomb"),
        Case("oversize", "demo.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * (MAX_FILE + 1), 413, "file_too_large"),
    ]


@dataclass
class Stack:
    base: str
    auth: dict[str, str]
    state: RedisState
    storage: LocalStorage
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    tmp: Path

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""


def _peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, from /proc."""
    with contextlib.suppress(OSError):
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        if found:
            return int(found.group(1)) / 1024
    return -1.0


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")} | {
        "PYTHONPATH": str(ROOT),
        "GATECHECK_DATA_DIR": str(data),
        "GATECHECK_STATE": "redis",
        "GATECHECK_REDIS_URL": redis_url,
        "GATECHECK_BROKER_URL": redis_url,
        "GATECHECK_STORAGE": "local",
        "GATECHECK_PUBLIC_URL": base,
        "GATECHECK_RATE_LIMIT_PER_MINUTE": "1000000",  # the per-key limit is test 38's; here the caps decide
        "GATECHECK_MAX_QUEUED": str(MAX_QUEUED),
        "GATECHECK_MAX_INFLIGHT_UPLOADS": str(MAX_INFLIGHT),
        "GATECHECK_MAX_UPLOAD_FILE_BYTES": str(MAX_FILE),
        "GATECHECK_MAX_ATTEMPTS": "3",
        "GATECHECK_TASK_TIME_LIMIT_S": "60",
        "GATECHECK_VISIBILITY_TIMEOUT_S": "120",
    }
    state = RedisState(redis_url)
    plaintext, key_hash = new_api_key()
    state.create_tenant("acme", "whsec-saturation")
    state.add_api_key("acme", key_hash, ApiRole.SUBMITTER)
    storage = LocalStorage(data / "objects")
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app_from_env", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    cluster = Cluster(env, state, storage, tmp_path)  # type: ignore[arg-type]  # its worker needs no S3
    worker = cluster.start_worker()
    st = Stack(base, {"Authorization": f"Bearer {plaintext}"}, state, storage, api, worker, tmp_path)
    try:
        def api_died() -> str | None:
            return None if api.poll() is None else f"API exited {api.returncode}: {st.log('api.log')[-3000:]}"

        wait_for(lambda: _ready(base), 60, "the API", api_died)
        yield st
    finally:
        kill_group(api)
        cluster.stop_all()
        state.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _slow_body(boundary: str, content: bytes, pieces: int, pause_s: float) -> Iterator[bytes]:
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="standard"\r\n\r\n{PROFILE}\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\n{METHOD}\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="slow.docx"\r\n\r\n').encode()
    step = -(-len(content) // pieces)
    for i in range(0, len(content), step):
        time.sleep(pause_s)
        yield content[i:i + step]
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.catalogue(39)
@pytest.mark.corpus
@pytest.mark.timeout(420)
def test_saturation_answers_only_202_429_503_or_the_expected_4xx_and_loses_nothing(stack: Stack) -> None:
    cases = _cases()
    results: list[tuple[str, int, str, str]] = []  # (case label, status, error code, submission id)
    lock = threading.Lock()
    client = httpx.Client(base_url=stack.base, headers=stack.auth, timeout=60,
                          limits=httpx.Limits(max_connections=CLIENTS + SLOW_UPLOADS + 4))

    def record(label: str, r: httpx.Response) -> None:
        code = r.json().get("error", {}).get("code", "") if r.headers.get("content-type", "").startswith(
            "application/json") else ""
        with lock:
            results.append((label, r.status_code, code, r.json()["id"] if r.status_code == 202 else ""))

    def one(i: int) -> None:
        case = cases[i % len(cases)]
        r = client.post("/v1/submissions", data={"standard": PROFILE, "method": METHOD},
                        files=[("files", (case.name, case.content, "application/octet-stream"))])
        record(case.label, r)

    def slow() -> None:
        boundary = uuid.uuid4().hex
        r = client.post("/v1/submissions", content=_slow_body(boundary, docx_bytes(), 8, 0.4),
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        record("slow_docx", r)

    def in_queue() -> int:
        return sum(1 for _, status, _, sid in list(results) if status == 202
                   and (rec := stack.state.get(sid)) is not None and rec.status not in TERMINAL)

    started = time.monotonic()
    # phase 1: fewer clients than in-flight slots, faster than the worker: the queue fills (429)
    with ThreadPoolExecutor(max_workers=PHASE1_CLIENTS) as pool:
        for fut in [pool.submit(one, i) for i in range(PHASE1)]:
            fut.result(timeout=BURST_CAP_S)
    wait_for(lambda: in_queue() <= 2, DRAIN_CAP_S, "the queue to drain between the phases")
    # phase 2: with room in the queue, slow uploads hold most in-flight slots while 24 clients arrive (503)
    with ThreadPoolExecutor(max_workers=CLIENTS + SLOW_UPLOADS) as pool:
        holders = [pool.submit(slow) for _ in range(SLOW_UPLOADS)]
        time.sleep(0.5)
        for fut in [*[pool.submit(one, i) for i in range(PHASE1, BURST)], *holders]:
            fut.result(timeout=BURST_CAP_S)
    burst_s = time.monotonic() - started
    client.close()

    expected = {c.label: c for c in cases}
    statuses = Counter(s for _, s, _, _ in results)
    unexpected = []
    for label, status, code, _sid in results:
        want = 202 if label == "slow_docx" else expected[label].expected
        if status == want and (status == 202 or code == expected[label].code):
            continue
        if BACKPRESSURE.get(status) == code:
            continue
        unexpected.append((label, status, code))
    assert len(results) == BURST + SLOW_UPLOADS
    assert not unexpected, unexpected[:20]
    assert not [s for s in statuses if s >= 500 and s != 503], statuses  # never another 5xx
    assert statuses[429] > 0 and statuses[503] > 0, statuses  # both caps engaged
    assert burst_s < BURST_CAP_S

    # every 202 reaches a terminal state; nothing else left a record or an object behind
    accepted = {sid for _, status, _, sid in results if status == 202}
    assert accepted

    def unfinished() -> set[str]:
        return {sid for sid in accepted if (rec := stack.state.get(sid)) is None or rec.status not in TERMINAL}

    def worker_died() -> str | None:
        if stack.worker.poll() is None:
            return None
        return f"worker exited {stack.worker.returncode}: {stack.log('worker0.log')[-3000:]}"

    wait_for(lambda: not unfinished(), DRAIN_CAP_S, f"{len(accepted)} accepted submissions to finish", worker_died)
    drained_s = time.monotonic() - started
    finals = Counter(str(stack.state.get(sid).status) for sid in accepted)  # type: ignore[union-attr]
    assert {r.id for r in stack.state.list("acme", limit=1000)[0]} == accepted
    stored = {p.name for p in (stack.storage.root / "tenants" / "acme" / "submissions").iterdir()}
    assert stored == accepted  # a refused request (4xx, 429, 503) stored nothing
    for sid in accepted:  # a done submission's report is stored; a failed one says why
        rec = stack.state.get(sid)
        assert rec is not None and (rec.error_code if str(rec.status) == "failed" else rec.report_key)
        if rec.report_key:
            assert (stack.storage.root / rec.report_key).is_file()

    # nothing was OOM-killed: both processes still up, no pool child lost to a signal, the API still answers
    assert stack.api.poll() is None and stack.worker.poll() is None
    worker_log = stack.log("worker0.log")
    assert "signal 9" not in worker_log and "SIGKILL" not in worker_log and "WorkerLostError" not in worker_log
    assert "Traceback" not in stack.log("api.log")
    assert _ready(stack.base)
    summary = {
        "requests": len(results), "statuses": dict(sorted(statuses.items())),
        "codes": dict(Counter(f"{s}:{c or 'accepted'}" for _, s, c, _ in results).most_common()),
        "accepted": len(accepted), "terminal": dict(finals), "burst_s": round(burst_s, 1),
        "drained_s": round(drained_s, 1), "api_peak_rss_mib": round(_peak_rss_mib(stack.api.pid), 1),
        "worker_peak_rss_mib": round(_peak_rss_mib(stack.worker.pid), 1),
    }
    print("saturation:", json.dumps(summary))
    (stack.tmp / "saturation.json").write_text(json.dumps(summary, indent=2))
