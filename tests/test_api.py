"""HTTP API over real backends (SqliteState + LocalStorage in tmp_path) with a recording enqueue.

What is asserted is what a gateway portal and an attacker would see: status codes,
typed error bodies, and, for every rejection, that nothing at all was stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service import webhooks
from service.app import create_app
from service.auth import TokenBucket, hash_key, new_api_key
from service.contracts import ApiRole, Status, submission_prefix
from service.settings import Settings
from service.state import SqliteState, StateUnavailable
from service.storage import LocalStorage
from tests.conftest import corpus_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOCX = "docx/poi_61787_no_app_xml.docx"
PPTX = "pptx/poi_SmartArt.pptx"
LEGACY_DOC = "bad/poi_SampleDoc_legacy_word97.doc"
STANDARD = {"standard": "st0505-accelerate-people", "method": "AM1"}


@dataclass
class Env:
    client: TestClient
    state: SqliteState
    storage: LocalStorage
    settings: Settings
    enqueued: list[str]
    keys: dict[tuple[str, ApiRole], str] = field(default_factory=dict)

    def headers(self, tenant: str = "acme", role: ApiRole = ApiRole.SUBMITTER, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant, role]}", **extra}

    def objects(self) -> list[str]:
        root = self.storage.root
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def records(self, tenant: str = "acme") -> list[Any]:
        return self.state.list(tenant, limit=1000)[0]

    def spool_empty(self) -> bool:
        spool = self.settings.data_dir / "spool"
        return not spool.exists() or not any(spool.iterdir())

    def assert_nothing_stored(self) -> None:
        assert self.objects() == []
        assert self.records() == []
        assert self.enqueued == []
        assert self.spool_empty()

    def post(self, files: list[tuple[str, bytes]], data: dict[str, str] | None = None,
             tenant: str = "acme", role: ApiRole = ApiRole.SUBMITTER, **headers: str) -> httpx.Response:
        return self.client.post(
            "/v1/submissions",
            headers=self.headers(tenant, role, **headers),
            files=[("files", (name, body, "application/octet-stream")) for name, body in files],
            data=STANDARD if data is None else data,
        )


def make_env(tmp_path: Path, **overrides: Any) -> Env:
    settings = Settings(data_dir=tmp_path / "data", public_url="http://gatecheck.test", **overrides)
    state = SqliteState(tmp_path / "state.sqlite3")
    storage = LocalStorage(tmp_path / "objects")
    enqueued: list[str] = []
    client = TestClient(create_app(settings, state, storage, enqueued.append, queue_depth=lambda: 7))
    env = Env(client, state, storage, settings, enqueued)
    for tenant in ("acme", "other"):
        state.create_tenant(tenant, f"whsec-{tenant}")
        for role in ApiRole:
            plaintext, digest = new_api_key()
            state.add_api_key(tenant, digest, role)
            env.keys[tenant, role] = plaintext
    return env


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def docx_bytes() -> bytes:
    return corpus_file(DOCX).read_bytes()


def portfolio_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("portfolio/task1/report.docx", docx_bytes())
        zf.writestr("portfolio/task2/notes.md", "# Notes\nObserved on site.\n")
    return buf.getvalue()


def accepted(env: Env, files: list[tuple[str, bytes]] | None = None, tenant: str = "acme") -> str:
    r = env.post(files or [("report.docx", docx_bytes())], tenant=tenant)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


# --------------------------------------------------------------------------- accepted uploads


def test_upload_docx_pptx_zip_is_stored_under_generated_keys(env: Env) -> None:
    files = [("project report.docx", docx_bytes()), ("slides.pptx", corpus_file(PPTX).read_bytes()),
             ("portfolio.zip", portfolio_zip())]
    data = {**STANDARD, "roles": json.dumps({"slides.pptx": "presentation"}),
            "meta": json.dumps({"gateway_date": "2025-01-31", "resit": False})}
    r = env.post(files, data)
    assert r.status_code == 202, r.text
    body = r.json()
    sid = body["id"]
    assert body == {"id": sid, "status": "queued", "status_url": f"http://gatecheck.test/v1/submissions/{sid}",
                    "report_url": f"http://gatecheck.test/v1/submissions/{sid}/report"}
    assert r.headers["location"] == body["status_url"]
    assert env.enqueued == [sid]
    prefix = submission_prefix("acme", sid)
    assert env.objects() == [f"{prefix}originals/{n:03d}" for n in (1, 2, 3)]
    rec = env.state.get(sid, "acme")
    assert rec is not None and rec.status is Status.QUEUED
    assert (rec.profile, rec.method) == ("st0505-accelerate-people", "AM1")
    assert rec.roles == {"slides.pptx": "presentation"}
    assert rec.meta == {"gateway_date": "2025-01-31", "resit": "false"}
    for stored, (name, content) in zip(rec.files, files, strict=True):
        assert stored.name == name and stored.size == len(content) and stored.sha256 == sha(content)
        assert sha((env.storage.root / stored.key).read_bytes()) == sha(content)
    assert [f.detected for f in rec.files] == ["docx", "pptx", "zip"]
    assert env.spool_empty()

    view = env.client.get(f"/v1/submissions/{sid}", headers=env.headers()).json()
    assert view["status"] == "queued" and view["attempts"] == 0 and view["error"] is None
    assert [f["sha256"] for f in view["files"]] == [sha(c) for _, c in files]


def test_stale_spool_directories_are_swept(tmp_path: Path) -> None:
    stale = tmp_path / "data" / "spool" / "upload-crashed"
    live = tmp_path / "data" / "spool" / "upload-live"
    for d in (stale, live):
        d.mkdir(parents=True)
        (d / "001").write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    make_env(tmp_path)
    assert not stale.exists() and live.exists()


def test_standard_code_with_single_method_profile_needs_no_method(env: Env) -> None:
    r = env.post([("portfolio.zip", portfolio_zip())], {"standard": "ST0949"})
    assert r.status_code == 202, r.text
    rec = env.state.get(r.json()["id"], "acme")
    assert rec is not None and (rec.profile, rec.method) == ("st0949-generic", "portfolio")


@pytest.mark.catalogue(4)
def test_hostile_filenames_never_reach_keys_or_disk(env: Env, tmp_path: Path) -> None:
    content = docx_bytes()
    names = ["../../etc/passwd.docx", "con.docx", "r\u00e9sum\u00e9 \u202excod.docx", "..\\..\\win.ini.docx",
             "a" * 5000 + ".docx", "nul.docx\x00byte.docx"]  # every name ends in an allowed extension
    r = env.post([(n, content) for n in names])
    assert r.status_code == 202, r.text
    rec = env.state.get(r.json()["id"], "acme")
    assert rec is not None
    prefix = submission_prefix("acme", rec.id)
    assert [f.key for f in rec.files] == [f"{prefix}originals/{n:03d}" for n in range(1, 7)]
    shown = [f.name for f in rec.files]
    assert shown[:4] == ["passwd.docx", "con.docx", "r\u00e9sum\u00e9 xcod.docx", "win.ini.docx"]
    assert len(shown[4]) == 255 and shown[4].endswith(".docx")
    assert "\x00" not in shown[5]
    assert not list(tmp_path.rglob("passwd*")) and not list(tmp_path.rglob("win.ini*"))
    assert all(sha((env.storage.root / f.key).read_bytes()) == sha(content) for f in rec.files)


# --------------------------------------------------------------------------- rejected uploads store nothing


@pytest.mark.parametrize(("overrides", "count", "code"), [
    ({"max_file_bytes": 5000}, 1, "file_too_large"),
    ({"max_submission_bytes": 10_000}, 2, "submission_too_large"),
    ({"max_files": 2}, 3, "too_many_files"),
])
@pytest.mark.catalogue(3)
def test_limits_answer_413_and_store_nothing(tmp_path: Path, overrides: dict[str, int], count: int,
                                             code: str) -> None:
    env = make_env(tmp_path, **overrides)
    r = env.post([(f"f{i}.docx", docx_bytes()) for i in range(count)])  # 7 047 bytes each
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["remedy"]
    env.assert_nothing_stored()


def _multipart_stream(boundary: str, total_chunks: int, consumed: list[int]) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"standard\"\r\n\r\nST0949\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.pdf\"\r\n"
               "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n").encode()
        for _ in range(total_chunks):
            consumed[0] += 1
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()
    return gen()


@pytest.mark.catalogue(3)
def test_limit_is_enforced_while_streaming_without_reading_the_rest(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_file_bytes=256 * 1024)
    app = env.client.app
    consumed = [0]

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post(
                "/v1/submissions", content=_multipart_stream("XyZ", 16_384, consumed),  # 1 GiB if all read
                headers=env.headers(**{"Content-Type": "multipart/form-data; boundary=XyZ"}),
            )

    r = asyncio.run(run())
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert consumed[0] <= 8  # stopped within a few chunks of the 256 KiB limit, not after 1 GiB
    env.assert_nothing_stored()


@pytest.mark.catalogue(3)
def test_declared_content_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_submission_bytes=1000, max_files=1)
    r = env.client.post("/v1/submissions", content=b"x" * 10, headers=env.headers(**{
        "Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(50 * 1024 * 1024)}))
    assert r.status_code == 413 and r.json()["error"]["code"] == "submission_too_large"
    env.assert_nothing_stored()


def test_content_is_sniffed_not_the_name_and_a_refusal_stores_nothing(env: Env) -> None:
    legacy = corpus_file(LEGACY_DOC).read_bytes()
    r = env.post([("good.docx", docx_bytes()), ("report.docx", legacy)])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "legacy_format" and "file #2" in err["message"] and "Save as" in err["remedy"]
    env.assert_nothing_stored()

    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 8
    r = env.post([("report.pdf", exe)])
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_format"
    env.assert_nothing_stored()

    r = env.post([("empty.docx", b"")])
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty"
    env.assert_nothing_stored()


@pytest.mark.catalogue(14)
def test_zip_bomb_portfolio_is_refused_at_upload(env: Env) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evidence/zeros.txt", b"\0" * (8 * 1024 * 1024))  # ~1000:1
    r = env.post([("portfolio.zip", buf.getvalue())])
    assert r.status_code == 422 and r.json()["error"]["code"] == "zip_bomb"
    env.assert_nothing_stored()


@pytest.mark.parametrize(("data", "code", "option"), [
    ({"standard": "ST9999"}, "unknown_standard", "ST0505"),
    ({"standard": "ST0505"}, "method_required", "AM1"),
    ({"standard": "ST0505", "method": "AM9"}, "unknown_method", "AM2"),
    ({"standard": "ST0071"}, "ambiguous_standard", "st0071-imi"),
    ({"standard": "ST0071", "epao": "nobody"}, "unknown_epao", None),
    ({}, "missing_field", None),
    ({**STANDARD, "roles": '{"a.docx": "boss"}'}, "invalid_roles", "report"),
    ({**STANDARD, "meta": "[1, 2]"}, "invalid_meta", None),
    ({**STANDARD, "colour": "blue"}, "unknown_field", "callback_url"),
])
def test_invalid_fields_answer_422_with_options(env: Env, data: dict[str, str], code: str,
                                                option: str | None) -> None:
    r = env.post([("r.docx", docx_bytes())], data)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code
    if option:
        assert option in err["options"]
    env.assert_nothing_stored()


def test_not_multipart_and_no_files(env: Env) -> None:
    r = env.client.post("/v1/submissions", json={"standard": "ST0949"}, headers=env.headers())
    assert r.status_code == 415 and r.json()["error"]["code"] == "not_multipart"
    r = env.client.post("/v1/submissions", data={"standard": "ST0949"}, headers=env.headers())
    assert r.status_code == 415  # urlencoded form
    r = env.client.post("/v1/submissions", headers=env.headers(**{
        "Content-Type": "multipart/form-data; boundary=zz"}), content=b"--zz\r\nContent-Disposition: form-data; "
                                                                      b'name="standard"\r\n\r\nST0949\r\n--zz--\r\n')
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_files"
    r = env.client.post("/v1/submissions", headers=env.headers(**{
        "Content-Type": "multipart/form-data; boundary=zz"}), content=b"--zz\r\nContent-Disposition: form-data; "
                                                                      b'name="files"; filename="a.pdf"\r\n\r\nabc')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_multipart"
    env.assert_nothing_stored()


def test_callback_url_to_private_address_is_refused(env: Env) -> None:
    for url in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data", "ftp://93.184.216.34/x"):
        r = env.post([("r.docx", docx_bytes())], {**STANDARD, "callback_url": url})
        assert r.status_code == 422 and r.json()["error"]["code"] == "callback_refused"
    env.assert_nothing_stored()
    r = env.post([("r.docx", docx_bytes())], {**STANDARD, "callback_url": "https://93.184.216.34/hook"})
    assert r.status_code == 202
    rec = env.state.get(r.json()["id"], "acme")
    assert rec is not None and rec.callback_url == "https://93.184.216.34/hook"


@pytest.mark.catalogue(28)
def test_queue_down_fails_the_record_and_answers_503(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    state = SqliteState(tmp_path / "s.sqlite3")

    def broken(_: str) -> None:
        raise ConnectionError("broker down")

    client = TestClient(create_app(settings, state, LocalStorage(tmp_path / "o"), broken))
    key, digest = new_api_key()
    state.add_api_key("acme", digest, ApiRole.SUBMITTER)
    r = client.post("/v1/submissions", headers={"Authorization": f"Bearer {key}"},
                    files=[("files", ("r.docx", docx_bytes()))], data=STANDARD)
    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_unavailable"
    [rec] = state.list("acme")[0]
    assert rec.status is Status.FAILED and rec.error_code == "queue_unavailable"  # never queued for ever


# --------------------------------------------------------------------------- idempotency


@pytest.mark.catalogue(34)
def test_idempotency_replay_and_conflict(env: Env) -> None:
    files = [("r.docx", docx_bytes())]
    first = env.post(files, **{"Idempotency-Key": "k-123"})
    again = env.post(files, **{"Idempotency-Key": "k-123"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    sid = first.json()["id"]
    assert [r.id for r in env.records()] == [sid] and env.enqueued == [sid]
    assert all(k.startswith(submission_prefix("acme", sid)) for k in env.objects())

    other = env.post([("r.pptx", corpus_file(PPTX).read_bytes())], **{"Idempotency-Key": "k-123"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    renamed = env.post([("renamed.docx", docx_bytes())], **{"Idempotency-Key": "k-123"})
    assert renamed.status_code == 409
    assert [r.id for r in env.records()] == [sid] and env.enqueued == [sid]
    assert all(k.startswith(submission_prefix("acme", sid)) for k in env.objects())

    # keys are per tenant; a validation failure is not remembered
    assert env.post(files, tenant="other", **{"Idempotency-Key": "k-123"}).status_code == 202
    bad = env.post(files, {"standard": "nope"}, **{"Idempotency-Key": "k-9"})
    assert bad.status_code == 422
    assert env.post(files, **{"Idempotency-Key": "k-9"}).status_code == 202


# --------------------------------------------------------------------------- auth, roles, tenants, limits


@pytest.mark.catalogue(38)
def test_bad_or_missing_key_is_401(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer gck_wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer " + "x" * 5000}):
        r = env.client.get("/v1/submissions", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.catalogue(38)
def test_keys_are_stored_as_hashes_only(env: Env) -> None:
    plaintext = env.keys["acme", ApiRole.READER]
    assert env.state.find_api_key(hash_key(plaintext)) == ("acme", ApiRole.READER)
    assert env.state.find_api_key(plaintext) is None
    assert plaintext.encode() not in (env.state.path).read_bytes()


@pytest.mark.catalogue(38)
def test_roles(env: Env) -> None:
    r = env.post([("r.docx", docx_bytes())], role=ApiRole.READER)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    env.assert_nothing_stored()
    sid = accepted(env)
    assert env.client.get(f"/v1/submissions/{sid}", headers=env.headers(role=ApiRole.READER)).status_code == 200
    assert env.client.delete(f"/v1/submissions/{sid}", headers=env.headers()).status_code == 403
    assert env.client.delete(f"/v1/submissions/{sid}",
                             headers=env.headers(role=ApiRole.READER)).status_code == 403
    assert env.post([("r.docx", docx_bytes())], role=ApiRole.ADMIN).status_code == 202


@pytest.mark.catalogue(35)
def test_foreign_tenant_gets_404_everywhere(env: Env) -> None:
    sid = accepted(env)
    for role in ApiRole:
        h = env.headers("other", role)
        assert env.client.get(f"/v1/submissions/{sid}", headers=h).status_code == 404
        assert env.client.get(f"/v1/submissions/{sid}/report", headers=h).status_code == 404
        assert env.client.get("/v1/submissions", headers=h).json()["items"] == []
    r = env.client.delete(f"/v1/submissions/{sid}", headers=env.headers("other", ApiRole.ADMIN))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert env.state.get(sid, "acme") is not None and env.objects()
    for bad in ("not-an-id", "0" * 32, "../" + sid):
        assert env.client.get(f"/v1/submissions/{bad}", headers=env.headers()).status_code == 404


@pytest.mark.catalogue(38)
def test_failed_auth_from_one_address_is_rate_limited(env: Env) -> None:
    for _ in range(10):
        assert env.client.get("/v1/standards", headers={"Authorization": "Bearer guess"}).status_code == 401
    r = env.client.get("/v1/standards", headers={"Authorization": "Bearer guess"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # the address is blocked even with a good key until its budget refills: guessing gains nothing
    assert env.client.get("/v1/standards", headers=env.headers()).status_code == 429


@pytest.mark.catalogue(38)
def test_per_key_rate_limit(tmp_path: Path) -> None:
    env = make_env(tmp_path, rate_limit_per_minute=3)
    codes = [env.client.get("/v1/standards", headers=env.headers()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert env.client.get("/v1/standards", headers=env.headers("other")).status_code == 200  # per key


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])
    assert all(bucket.take("k") == 0 for _ in range(60))
    assert bucket.take("k") == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take("k") == 0


# --------------------------------------------------------------------------- status, report, list, delete


REPORT: dict[str, Any] = {
    "schema": "gatecheck.report/1",
    "standard": {"code": "ST0505", "title": "Learning and development practitioner", "epao": "Accelerate People",
                 "method": "AM1", "method_name": "Project", "profile": "st0505-accelerate-people"},
    "outcome": "attention",
    "checks": [{"id": "word_count", "outcome": "warn", "summary": "<b>4 100</b> words", "findings": [],
                "rule": {"text": "4000 words +/- 10%", "source": "seed"}}],
    "documents": [], "errors": [], "meta": {}, "cannot_check": [],
}


def _finish(env: Env, sid: str, report: dict[str, Any] | None = REPORT) -> None:
    key = submission_prefix("acme", sid) + "report.json"
    if report is not None:
        env.storage.put(key, io.BytesIO(json.dumps(report).encode()))
    assert env.state.transition(sid, frozenset({Status.QUEUED}), Status.DONE, report_key=key,
                                outcome="attention", finished_at=time.time())


def test_report_409_until_done_then_json_and_html(env: Env) -> None:
    sid = accepted(env)
    r = env.client.get(f"/v1/submissions/{sid}/report", headers=env.headers())
    assert r.status_code == 409 and r.json()["error"] | {"message": ""} == {
        "code": "report_not_ready", "message": "", "status": "queued", "remedy": r.json()["error"]["remedy"]}
    _finish(env, sid)
    r = env.client.get(f"/v1/submissions/{sid}/report", headers=env.headers(role=ApiRole.READER))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == REPORT
    for extra, params in (({"Accept": "text/html"}, {}), ({}, {"format": "html"})):
        r = env.client.get(f"/v1/submissions/{sid}/report", headers=env.headers(**extra), params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "ST0505" in r.text and "&lt;b&gt;4 100&lt;/b&gt;" in r.text
        assert "default-src 'none'" in r.headers["content-security-policy"]
    view = env.client.get(f"/v1/submissions/{sid}", headers=env.headers()).json()
    assert view["status"] == "done" and view["outcome"] == "attention" and view["finished_at"]


def test_done_without_report_object_and_failed_submission(env: Env) -> None:
    sid = accepted(env)
    _finish(env, sid, report=None)
    r = env.client.get(f"/v1/submissions/{sid}/report", headers=env.headers())
    assert r.status_code == 404 and r.json()["error"]["code"] == "report_missing"
    sid2 = accepted(env)
    env.state.transition(sid2, frozenset({Status.QUEUED}), Status.FAILED, error_code="timeout",
                         error_message="too slow", remedy="split it")
    view = env.client.get(f"/v1/submissions/{sid2}", headers=env.headers()).json()
    assert view["error"] == {"code": "timeout", "message": "too slow", "remedy": "split it"}
    r = env.client.get(f"/v1/submissions/{sid2}/report", headers=env.headers())
    assert r.status_code == 409 and r.json()["error"]["status"] == "failed"


def test_list_filters_by_status_and_pages(env: Env) -> None:
    ids = [accepted(env) for _ in range(3)]
    _finish(env, ids[0])
    r = env.client.get("/v1/submissions", params={"limit": 2}, headers=env.headers())
    page1 = r.json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = env.client.get("/v1/submissions", params={"limit": 2, "cursor": page1["next_cursor"]},
                           headers=env.headers()).json()
    assert {i["id"] for i in page1["items"] + page2["items"]} == set(ids) and page2["next_cursor"] is None
    done = env.client.get("/v1/submissions", params={"status": "done"}, headers=env.headers()).json()
    assert [i["id"] for i in done["items"]] == [ids[0]]
    assert env.client.get("/v1/submissions", params={"status": "bogus"}, headers=env.headers()).status_code == 422
    r = env.client.get("/v1/submissions", params={"cursor": "!!"}, headers=env.headers())
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.catalogue(40)
def test_delete_removes_every_object_and_the_record(env: Env) -> None:
    sid = accepted(env, [("a.docx", docx_bytes()), ("b.zip", portfolio_zip())])
    keep = accepted(env)
    _finish(env, sid)
    assert len([k for k in env.objects() if sid in k]) == 3
    r = env.client.delete(f"/v1/submissions/{sid}", headers=env.headers(role=ApiRole.ADMIN))
    assert r.status_code == 204 and r.content == b""
    assert not [k for k in env.objects() if sid in k] and [k for k in env.objects() if keep in k]
    assert env.client.get(f"/v1/submissions/{sid}", headers=env.headers()).status_code == 404
    assert env.client.delete(f"/v1/submissions/{sid}", headers=env.headers(role=ApiRole.ADMIN)).status_code == 404


def test_standards_lists_profiles_methods_and_checks(env: Env) -> None:
    body = env.client.get("/v1/standards", headers=env.headers(role=ApiRole.READER)).json()
    profiles = {p["id"]: p for p in body["profiles"]}
    assert profiles["st0505-accelerate-people"]["code"] == "ST0505"
    assert {m["id"] for m in profiles["st0505-accelerate-people"]["methods"]} == {"AM1", "AM2"}
    assert "word_count" in body["checks"]


# --------------------------------------------------------------------------- ops, logs, OpenAPI


def test_healthz_readyz_metrics(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    assert env.client.get("/readyz").json() == {"status": "ok", "state": True, "storage": True}
    monkeypatch.setattr(env.storage, "ping", lambda: False)
    r = env.client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable", "state": True, "storage": False}
    accepted(env)
    env.post([("x.docx", b"")])
    text = env.client.get("/metrics").text
    assert 'gatecheck_http_requests_total{method="POST",route="/v1/submissions",status="202"} 1.0' in text
    assert 'gatecheck_submissions_total{outcome="accepted"} 1.0' in text
    assert 'gatecheck_submissions_total{outcome="empty"} 1.0' in text
    assert "gatecheck_queue_depth 7.0" in text
    assert "gatecheck_http_request_duration_seconds_bucket" in text


def test_metrics_token_guards_metrics_when_set(tmp_path: Path) -> None:
    e = make_env(tmp_path, metrics_token="scrape-secret")
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, e.headers()):  # an API key is not the token
            r = e.client.get("/metrics", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", headers
        ok = e.client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200 and "gatecheck_queue_depth 7.0" in ok.text
        assert e.client.get("/healthz").status_code == 200  # probes stay open
    finally:
        e.state.close()


def test_metrics_task_series_come_from_the_state_store(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers record finished tasks in the state store; /metrics renders them at scrape time."""
    text = env.client.get("/metrics").text
    assert "# TYPE gatecheck_tasks_total counter" in text and "gatecheck_tasks_total{" not in text
    assert 'gatecheck_task_duration_seconds_bucket{le="+Inf"} 0.0' in text
    env.state.record_task("attention", Status.DONE, 1.5)  # what a worker does after winning DONE
    env.state.record_task("", Status.FAILED, 0.1)
    text = env.client.get("/metrics").text
    assert 'gatecheck_tasks_total{outcome="attention",status="done"} 1.0' in text
    assert 'gatecheck_tasks_total{outcome="",status="failed"} 1.0' in text
    assert "# TYPE gatecheck_task_duration_seconds histogram" in text
    assert 'gatecheck_task_duration_seconds_bucket{le="0.25"} 1.0' in text
    assert 'gatecheck_task_duration_seconds_bucket{le="1.0"} 1.0' in text
    assert 'gatecheck_task_duration_seconds_bucket{le="2.0"} 2.0' in text
    assert 'gatecheck_task_duration_seconds_bucket{le="+Inf"} 2.0' in text
    assert "gatecheck_task_duration_seconds_count 2.0" in text
    assert "gatecheck_task_duration_seconds_sum 1.6" in text

    def down() -> dict[str, Any]:
        raise StateUnavailable("redis down")

    monkeypatch.setattr(env.state, "task_stats", down)
    r = env.client.get("/metrics")
    assert r.status_code == 200  # the task series are left out, the rest still served
    assert "gatecheck_tasks" not in r.text and "gatecheck_task_duration" not in r.text
    assert "gatecheck_queue_depth 7.0" in r.text and "gatecheck_http_requests_total" in r.text


def test_request_id_and_logs_carry_ids_but_no_names(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gatecheck.api")
    r = env.post([("Jane Smith private diary.docx", docx_bytes())],
                 {**STANDARD, "meta": json.dumps({"apprentice": "Jane Smith"})}, **{"X-Request-ID": "req-42"})
    assert r.status_code == 202 and r.headers["x-request-id"] == "req-42"
    generated = env.client.get("/healthz", headers={"X-Request-ID": "bad id\n"}).headers["x-request-id"]
    assert generated != "bad id\n" and len(generated) == 32
    from service.logs import JsonFormatter

    lines = [JsonFormatter().format(rec) for rec in caplog.records]
    assert any('"event":"submission_accepted"' in x and r.json()["id"] in x for x in lines)
    access = [json.loads(x) for x in lines if '"event":"request"' in x and '"POST"' in x]
    assert access[0]["request_id"] == "req-42" and access[0]["submission_id"] == r.json()["id"]
    assert not any("Jane" in x or "diary" in x for x in lines)


def test_openapi_documents_multipart_body_and_error_models(env: Env) -> None:
    doc = env.client.get("/openapi.json").json()
    post = doc["paths"]["/v1/submissions"]["post"]
    schema = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"files", "standard", "method", "roles", "meta", "callback_url"} <= set(schema["properties"])
    assert {"202", "401", "413", "415", "422", "429"} <= set(post["responses"])
    assert post["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    report = doc["paths"]["/v1/submissions/{submission_id}/report"]["get"]["responses"]["200"]["content"]
    assert report["application/json"]["schema"]["$ref"] == "#/components/schemas/Report"
    assert "outcome" in doc["components"]["schemas"]["Report"]["properties"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
    assert set(refs) <= set(doc["components"]["schemas"])  # every reference resolves
    r = env.client.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_backend_failures_answer_typed_503_and_500(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = accepted(env)

    def down(*_: Any, **__: Any) -> None:
        raise StateUnavailable("database is locked")

    def bug(*_: Any, **__: Any) -> None:
        raise RuntimeError("Jane Smith's text in a parser message")

    monkeypatch.setattr(env.state, "get", down)
    r = env.client.get(f"/v1/submissions/{sid}", headers=env.headers(**{"X-Request-ID": "r1"}))
    assert r.status_code == 503 and r.json()["error"]["code"] == "state_unavailable" and r.headers["retry-after"]
    monkeypatch.setattr(env.state, "get", bug)
    r = env.client.get(f"/v1/submissions/{sid}", headers=env.headers(**{"X-Request-ID": "r2"}))
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.headers["x-request-id"] == "r2" and "Jane" not in r.text


def test_create_app_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATECHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATECHECK_STATE", "sqlite")
    monkeypatch.setenv("GATECHECK_STORAGE", "local")
    from service.app import create_app_from_env

    loggers = [logging.getLogger(n) for n in ("gatecheck.api", "uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        client = TestClient(create_app_from_env())
        assert client.get("/readyz").json() == {"status": "ok", "state": True, "storage": True}
        assert client.get("/v1/standards").status_code == 401
    finally:  # undo logs.configure() so later tests' caplog still sees the API logger
        for lg, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            lg.handlers, lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled


# --------------------------------------------------------------------------- webhooks


@pytest.mark.catalogue(37)
def test_webhook_sign_and_verify() -> None:
    body, secret, ts = b'{"id":"abc","status":"done"}', "whsec-test", 1_700_000_000
    # the documented construction, recomputed independently
    assert webhooks.sign(secret, ts, body) == hmac.new(secret.encode(), b"1700000000." + body,
                                                       hashlib.sha256).hexdigest()
    headers = webhooks.signature_headers(secret, body, timestamp=ts)
    assert headers["X-Gatecheck-Signature"] == f"v1={webhooks.sign(secret, ts, body)}"
    assert headers["X-Gatecheck-Timestamp"] == str(ts)
    assert webhooks.verify(secret, headers, body, now=ts + 10)
    assert webhooks.verify(secret, {k.lower(): v for k, v in headers.items()}, body, now=ts)
    assert not webhooks.verify(secret, headers, body + b" ", now=ts)  # tampered body
    assert not webhooks.verify("other", headers, body, now=ts)  # wrong secret
    assert not webhooks.verify(secret, headers, body, now=ts + 301)  # stale
    assert not webhooks.verify(secret, headers, body, now=ts - 301)  # from the future
    assert not webhooks.verify(secret, {**headers, "X-Gatecheck-Timestamp": str(ts + 1)}, body, now=ts)
    assert not webhooks.verify(secret, {"X-Gatecheck-Signature": headers["X-Gatecheck-Signature"]}, body, now=ts)
    rotated = webhooks.signature_headers(["new-secret", secret], body, timestamp=ts)
    assert webhooks.verify(secret, rotated, body, now=ts) and webhooks.verify("new-secret", rotated, body, now=ts)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
    "http://192.168.0.10:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
    "http://0.0.0.0/", "http://localhost/",
])
def test_ssrf_guard_refuses_internal_targets_unless_allowed(url: str) -> None:
    assert not webhooks.is_allowed_target(url, allow_private=False)
    assert webhooks.is_allowed_target(url, allow_private=True)


@pytest.mark.parametrize("url", [
    "ftp://93.184.216.34/x", "https://user:pw@93.184.216.34/", "not a url", "https:///nohost", "http://" + "a" * 3000,
])
def test_ssrf_guard_refuses_malformed_urls_even_when_private_allowed(url: str) -> None:
    assert not webhooks.is_allowed_target(url, allow_private=True)


def test_ssrf_guard_allows_public_addresses() -> None:
    assert webhooks.is_allowed_target("https://93.184.216.34/hook")
    assert webhooks.allowed_addresses("https://93.184.216.34:8443/hook") == ["93.184.216.34"]
