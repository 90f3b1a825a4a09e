"""Uploads through short-lived URLs (``POST /v1/uploads``, then ``uploads`` in the submission).

Local mode: the API serves the upload URL itself (``PUT /v1/uploads/{id}?token=``), over real
SqliteState + LocalStorage. S3 mode: a real moto server, the file PUT with ``httpx`` to the
presigned URL exactly as a portal would. What is asserted is what a client and an attacker see:
status codes, typed errors, what ends up stored, and that a rejection stores nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from service import presigned
from service.app import create_app
from service.auth import new_api_key
from service.contracts import ApiRole, Status, submission_prefix
from service.presigned import manifest_key, staging_key, upload_url_ttl_s
from service.settings import Settings
from service.state import SqliteState
from service.storage import MinioStorage
from tests.conftest import corpus_file
from tests.test_api import STANDARD, Env, docx_bytes, make_env, sha

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VIDEO = "media/mdn_rabbit320.mp4"
LEGACY_DOC = "bad/poi_SampleDoc_legacy_word97.doc"


def create_uploads(env: Env, files: list[tuple[str, int]], tenant: str = "acme",
                   role: ApiRole = ApiRole.SUBMITTER) -> httpx.Response:
    return env.client.post("/v1/uploads", headers=env.headers(tenant, role),
                           json={"files": [{"name": n, "size": s} for n, s in files]})


def ticket(env: Env, name: str, size: int, tenant: str = "acme") -> dict[str, Any]:
    r = create_uploads(env, [(name, size)], tenant)
    assert r.status_code == 201, r.text
    [t] = r.json()["uploads"]
    return dict(t)


def put(env: Env, t: dict[str, Any], body: bytes, **headers: str) -> httpx.Response:
    """PUT exactly as a client would: the returned URL and headers, no API key."""
    return env.client.put(t["url"], content=body, headers={**t["headers"], **headers})


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body even with no file part (httpx would send the fields urlencoded)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{n}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + b + b"\r\n" for n, b in files or []]
    return b"".join([*parts, f"--{boundary}--\r\n".encode()]), f"multipart/form-data; boundary={boundary}"


def submit(env: Env, upload_ids: list[str], files: list[tuple[str, bytes]] | None = None,
           data: dict[str, str] | None = None, tenant: str = "acme", **headers: str) -> httpx.Response:
    body, ctype = multipart({**(STANDARD if data is None else data), "uploads": json.dumps(upload_ids)}, files)
    return env.client.post("/v1/submissions", headers=env.headers(tenant, **headers, **{"Content-Type": ctype}),
                           content=body)


def staged(env: Env, tenant: str = "acme") -> list[str]:
    return [k for k in env.objects() if k.startswith(f"tenants/{tenant}/uploads/")]


def submitted(env: Env) -> list[str]:
    return [k for k in env.objects() if "/submissions/" in k]


# --------------------------------------------------------------------------- local mode: the happy path


def test_local_upload_url_then_submit_stores_the_file_and_cleans_staging(env: Env) -> None:
    video = corpus_file(VIDEO).read_bytes()
    before = time.time()
    r = create_uploads(env, [("../Rabbit \u202eclip.mp4", len(video))])
    assert r.status_code == 201, r.text
    [t] = r.json()["uploads"]
    uid = t["upload_id"]
    assert len(uid) == 32 and t["name"] == "Rabbit clip.mp4" and t["method"] == "PUT"
    assert t["headers"] == {"Content-Type": "application/octet-stream"}
    assert before + 900 - 1 <= t["expires_at"] <= time.time() + 900
    url = urlsplit(t["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "gatecheck.test", f"/v1/uploads/{uid}")
    assert list(parse_qs(url.query)) == ["token"]
    # generated keys only, tenant-scoped; the manifest exists before any byte is sent
    assert staged(env) == [manifest_key("acme", uid)]
    assert "Rabbit" not in " ".join(env.objects())

    # a second PUT replaces the first (as on S3): what is submitted is the last body
    assert put(env, t, b"\0" * len(video)).status_code == 200
    r = put(env, t, video)
    assert r.status_code == 200, r.text
    assert r.json() == {"upload_id": uid, "size": len(video), "sha256": sha(video)}
    assert staged(env) == sorted([staging_key("acme", uid), manifest_key("acme", uid)])

    direct = docx_bytes()
    r = submit(env, [uid], files=[("report.docx", direct)],
               data={**STANDARD, "roles": json.dumps({"Rabbit clip.mp4": "media"})})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert env.enqueued == [sid]
    rec = env.state.get(sid, "acme")
    assert rec is not None and rec.status is Status.QUEUED and rec.roles == {"Rabbit clip.mp4": "media"}
    prefix = submission_prefix("acme", sid)
    # direct files first, then the uploads in the order named
    assert [(f.key, f.name, f.size, f.sha256, f.detected) for f in rec.files] == [
        (f"{prefix}originals/001", "report.docx", len(direct), sha(direct), "docx"),
        (f"{prefix}originals/002", "Rabbit clip.mp4", len(video), sha(video), "media"),
    ]
    assert sha((env.storage.root / rec.files[1].key).read_bytes()) == sha(video)
    assert env.objects() == [f"{prefix}originals/001", f"{prefix}originals/002"]  # staging cleaned
    assert env.spool_empty()

    # single use: the id is gone with its staging objects
    r = submit(env, [uid])
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_upload"
    assert put(env, t, video).status_code == 404  # the URL is void once consumed
    assert len(env.records()) == 1


def test_uploads_only_submission_and_several_uploads(env: Env) -> None:
    files = {"a.docx": docx_bytes(), "b.mp4": corpus_file(VIDEO).read_bytes()}
    r = create_uploads(env, [(n, len(b)) for n, b in files.items()])
    assert r.status_code == 201
    tickets = r.json()["uploads"]
    assert len({t["upload_id"] for t in tickets}) == 2
    for t in tickets:
        assert put(env, t, files[t["name"]]).status_code == 200
    r = submit(env, [t["upload_id"] for t in reversed(tickets)])
    assert r.status_code == 202, r.text
    rec = env.state.get(r.json()["id"], "acme")
    assert rec is not None
    assert [(f.name, f.sha256) for f in rec.files] == [("b.mp4", sha(files["b.mp4"])), ("a.docx", sha(files["a.docx"]))]
    assert staged(env) == []


# --------------------------------------------------------------------------- local mode: the token


@pytest.mark.catalogue(36)
def test_expired_url_is_403_and_stores_nothing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    body = docx_bytes()
    t = ticket(env, "r.docx", len(body))
    monkeypatch.setattr(presigned, "now", lambda: t["expires_at"] + 1.0)
    r = put(env, t, body)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "upload_url_expired" and "POST /v1/uploads" in err["remedy"]
    assert staged(env) == [manifest_key("acme", t["upload_id"])]
    monkeypatch.setattr(presigned, "now", lambda: t["expires_at"] - 1.0)  # still valid at the last second
    assert put(env, t, body).status_code == 200


@pytest.mark.catalogue(36)
def test_forged_reused_or_missing_tokens_are_403(env: Env) -> None:
    body = docx_bytes()
    a, b = ticket(env, "a.docx", len(body)), ticket(env, "b.docx", len(body))
    token_a = parse_qs(urlsplit(a["url"]).query)["token"][0]
    head, _, mac = token_a.partition(".")
    forged_head = presigned._b64(json.dumps(["other", a["expires_at"] + 10**6]).encode())
    for path in (
        f"/v1/uploads/{b['upload_id']}?token={token_a}",  # a's token does not open b
        f"/v1/uploads/{a['upload_id']}?token={forged_head}.{mac}",  # other tenant / later expiry: MAC fails
        f"/v1/uploads/{a['upload_id']}?token={head}.{presigned._b64(b'x' * 32)}",
        f"/v1/uploads/{a['upload_id']}?token=garbage",
        f"/v1/uploads/{a['upload_id']}",
    ):
        r = env.client.put(path, content=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_upload_token", path
    # an API key is no substitute for the token
    r = env.client.put(f"/v1/uploads/{a['upload_id']}", content=body, headers=env.headers(role=ApiRole.ADMIN))
    assert r.status_code == 403
    assert env.client.put("/v1/uploads/not-an-id?token=x", content=body).status_code == 404
    assert sorted(staged(env)) == sorted([manifest_key("acme", a["upload_id"]), manifest_key("acme", b["upload_id"])])


def test_signing_key_is_created_once_private_and_shared(env: Env, tmp_path: Path) -> None:
    key_path = env.settings.data_dir / "upload-url.key"
    body = docx_bytes()
    shaped = f"{presigned._b64(json.dumps(['acme', int(time.time()) + 60]).encode())}.{presigned._b64(b'x' * 32)}"
    r = env.client.put(f"/v1/uploads/{uuid.uuid4().hex}?token={shaped}", content=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_upload_token"
    assert not key_path.exists()  # created when the first URL is issued: never by an unauthenticated request
    t = ticket(env, "r.docx", len(body))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and len(key_path.read_bytes()) == 32
    # another API process over the same data directory accepts the URL
    other = TestClient(create_app(env.settings, env.state, env.storage, env.enqueued.append))
    assert other.put(t["url"], content=body).status_code == 200
    assert [p.name for p in env.settings.data_dir.iterdir() if p.name.startswith(".upload-url-")] == []


@pytest.mark.catalogue(36)
def test_url_ttl_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert upload_url_ttl_s({}) == 900
    assert upload_url_ttl_s({"GATECHECK_UPLOAD_URL_TTL_S": "60"}) == 60
    for bad in ("0", str(8 * 24 * 3600)):
        with pytest.raises(ValueError):
            upload_url_ttl_s({"GATECHECK_UPLOAD_URL_TTL_S": bad})
    monkeypatch.setenv("GATECHECK_UPLOAD_URL_TTL_S", "60")
    env = make_env(tmp_path)
    t = ticket(env, "r.docx", 10)
    assert t["expires_at"] <= time.time() + 60


# --------------------------------------------------------------------------- local mode: sizes and limits


def _stream(chunks: int, consumed: list[int]) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            consumed[0] += 1
            yield b"\0" * 65536
    return gen()


@pytest.mark.catalogue(3)
def test_oversize_put_is_413_while_streaming_and_stores_nothing(env: Env) -> None:
    t = ticket(env, "big.mp4", 256 * 1024)
    path = urlsplit(t["url"])
    consumed = [0]

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t") as c:
            return await c.put(f"{path.path}?{path.query}", content=_stream(16_384, consumed))  # 1 GiB if all read

    r = asyncio.run(run())
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert consumed[0] <= 8  # stopped at the declared size, not after 1 GiB
    # a declared Content-Length over the size is refused before reading; a short body is not stored
    r = put(env, t, b"\0" * (256 * 1024 + 1))
    assert r.status_code == 413
    r = put(env, t, b"\0" * 1000)
    assert r.status_code == 400 and r.json()["error"]["code"] == "upload_size_mismatch"
    assert staged(env) == [manifest_key("acme", t["upload_id"])]
    assert env.spool_empty()


def test_limits_at_upload_creation(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_file_bytes=5000, max_files=2)
    r = create_uploads(env, [("a.mp4", 5001)])
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    r = create_uploads(env, [("a", 1), ("b", 1), ("c", 1)])
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_files"
    for body in ({"files": []}, {"files": [{"name": "a"}]}, {"files": [{"name": "a", "size": 0}]},
                 {"files": [{"name": "", "size": 1}]}, {"files": [{"name": "a", "size": 1, "key": "x"}]}, [1]):
        r = env.client.post("/v1/uploads", headers=env.headers(), json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", body
    r = env.client.post("/v1/uploads", headers=env.headers(), content=b'{"files": []}')
    assert r.status_code == 415 and r.json()["error"]["code"] == "not_json"
    r = env.client.post("/v1/uploads", headers=env.headers(**{"Content-Type": "application/json"}),
                        content=b" " * (1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert create_uploads(env, [("a", 1)], role=ApiRole.READER).status_code == 403
    assert env.client.post("/v1/uploads", json={"files": [{"name": "a", "size": 1}]}).status_code == 401
    assert create_uploads(env, [("a.pdf", 1)], role=ApiRole.ADMIN).status_code == 201
    assert submitted(env) == [] and env.records() == []


def test_submission_limits_count_uploads_and_direct_files(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_files=2, max_submission_bytes=20_000)
    body = docx_bytes()  # 7 047 bytes
    ids = []
    for _ in range(2):
        t = ticket(env, "r.docx", len(body))
        assert put(env, t, body).status_code == 200
        ids.append(t["upload_id"])
    r = submit(env, ids, files=[("d.docx", body)])
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_files"
    env2 = make_env(tmp_path / "two", max_submission_bytes=10_000)
    t = ticket(env2, "r.docx", len(body))
    assert put(env2, t, body).status_code == 200
    r = submit(env2, [t["upload_id"]], files=[("d.docx", body)])
    assert r.status_code == 413 and r.json()["error"]["code"] == "submission_too_large"
    for e in (env, env2):
        assert submitted(e) == [] and e.records() == [] and e.enqueued == [] and e.spool_empty()


# --------------------------------------------------------------------------- local mode: refusals store nothing


@pytest.mark.catalogue(35)
def test_wrong_tenant_unknown_or_missing_upload_is_422(env: Env) -> None:
    body = docx_bytes()
    t = ticket(env, "r.docx", len(body))
    assert put(env, t, body).status_code == 200
    before = staged(env)
    for tenant, ids, code in (
        ("other", [t["upload_id"]], "unknown_upload"),  # another tenant's id does not exist for this one
        ("acme", [uuid.uuid4().hex], "unknown_upload"),
        ("acme", ["../../submissions/x"], "unknown_upload"),
        ("acme", [t["upload_id"], t["upload_id"]], "invalid_uploads"),
    ):
        r = submit(env, ids, tenant=tenant)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (ids, r.text)
        assert "r.docx" not in r.text
    for raw in ("not json", '{"a": 1}', "[1]"):
        body, ctype = multipart({**STANDARD, "uploads": raw})
        r = env.client.post("/v1/submissions", headers=env.headers(**{"Content-Type": ctype}), content=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_uploads"
    r = submit(env, [], data={"standard": "ST0949"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_files"
    never_put = ticket(env, "late.docx", len(body))
    r = submit(env, [t["upload_id"], never_put["upload_id"]])
    assert r.status_code == 422 and r.json()["error"]["code"] == "upload_missing"
    assert "file #2" in r.json()["error"]["message"]
    assert submitted(env) == [] and env.records() == [] and env.enqueued == [] and env.spool_empty()
    assert staged(env) == sorted([*before, manifest_key("acme", never_put["upload_id"])])  # staging untouched


def test_rejected_submission_stores_nothing_and_keeps_staging(env: Env) -> None:
    legacy = corpus_file(LEGACY_DOC).read_bytes()
    t = ticket(env, "report.docx", len(legacy))
    assert put(env, t, legacy).status_code == 200
    before = staged(env)
    r = submit(env, [t["upload_id"]], files=[("ok.docx", docx_bytes())])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "legacy_format" and "file #2" in err["message"]
    r = submit(env, [t["upload_id"]], data={"standard": "ST9999"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_standard"
    assert submitted(env) == [] and env.records() == [] and env.enqueued == [] and env.spool_empty()
    assert staged(env) == before  # the client may fix the request and submit the same upload again


def test_upload_of_other_size_than_declared_is_refused_at_submission(env: Env) -> None:
    body = docx_bytes()
    t = ticket(env, "r.docx", len(body))
    # bytes put straight into storage (as an S3 client could, the signature not binding the size)
    env.storage.put(staging_key("acme", t["upload_id"]), io.BytesIO(body + b"tail"))
    r = submit(env, [t["upload_id"]])
    assert r.status_code == 422 and r.json()["error"]["code"] == "upload_size_mismatch"
    assert submitted(env) == [] and env.records() == [] and env.spool_empty()


# --------------------------------------------------------------------------- local mode: idempotency


@pytest.mark.catalogue(34)
def test_idempotent_retry_replays_after_staging_is_gone(env: Env) -> None:
    body = docx_bytes()
    t = ticket(env, "r.docx", len(body))
    assert put(env, t, body).status_code == 200
    first = submit(env, [t["upload_id"]], **{"Idempotency-Key": "k-1"})
    assert first.status_code == 202, first.text
    sid = first.json()["id"]
    again = submit(env, [t["upload_id"]], **{"Idempotency-Key": "k-1"})
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = submit(env, [t["upload_id"]], data={"standard": "ST0505", "method": "AM2"}, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    for key in ({"Idempotency-Key": "k-2"}, {}):
        r = submit(env, [t["upload_id"]], **key)
        assert r.status_code == 422 and r.json()["error"]["code"] == "upload_consumed"
    assert [r.id for r in env.records()] == [sid] and env.enqueued == [sid]
    # what stays is a tombstone without the bytes or the name
    assert staged(env) == [manifest_key("acme", t["upload_id"])]
    tomb = (env.storage.root / manifest_key("acme", t["upload_id"])).read_text()
    assert "r.docx" not in tomb and sid in tomb
    # a direct-files request is remembered by the state store exactly as before
    assert env.post([("r.docx", body)], **{"Idempotency-Key": "k-1"}).status_code == 409


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_documents_upload_endpoints(env: Env) -> None:
    doc = env.client.get("/openapi.json").json()
    create = doc["paths"]["/v1/uploads"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/UploadRequest")
    assert {"201", "403", "413", "415", "422"} <= set(create["responses"])
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/UploadsCreated")
    assert create["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    schemas = doc["components"]["schemas"]
    assert set(schemas["UploadRequest"]["properties"]) == {"files"}
    assert set(schemas["UploadFileSpec"]["required"]) == {"name", "size"}
    assert {"upload_id", "url", "method", "headers", "expires_at"} <= set(schemas["UploadTicket"]["properties"])
    put_op = doc["paths"]["/v1/uploads/{upload_id}"]["put"]
    assert "application/octet-stream" in put_op["requestBody"]["content"]
    assert "security" not in put_op and {"400", "403", "404", "413"} <= set(put_op["responses"])
    assert "security" in create
    form = doc["paths"]["/v1/submissions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "uploads" in form["properties"]


# --------------------------------------------------------------------------- S3 mode (real moto server)


@dataclass
class S3Env:
    client: TestClient
    storage: MinioStorage
    state: SqliteState
    settings: Settings
    enqueued: list[str]
    auth: dict[str, str]

    def submit(self, upload_ids: list[str]) -> httpx.Response:
        body, ctype = multipart({**STANDARD, "uploads": json.dumps(upload_ids)})
        return self.client.post("/v1/submissions", headers={**self.auth, "Content-Type": ctype}, content=body)


@pytest.fixture
def s3(tmp_path: Path, moto_url: str) -> Iterator[S3Env]:
    storage = MinioStorage(moto_url, "testing", "testing", bucket=f"gc-{uuid.uuid4().hex[:12]}", region="us-east-1")
    state = SqliteState(tmp_path / "state.sqlite3")
    settings = Settings(data_dir=tmp_path / "data", public_url="http://gatecheck.test")
    enqueued: list[str] = []
    client = TestClient(create_app(settings, state, storage, enqueued.append))
    key, digest = new_api_key()
    state.add_api_key("acme", digest, ApiRole.SUBMITTER)
    yield S3Env(client, storage, state, settings, enqueued, {"Authorization": f"Bearer {key}"})
    state.close()


def test_s3_presigned_put_then_submit(s3: S3Env, moto_url: str) -> None:
    video = corpus_file(VIDEO).read_bytes()
    r = s3.client.post("/v1/uploads", headers=s3.auth, json={"files": [{"name": "rabbit.mp4", "size": len(video)},
                                                                      {"name": "never.mp4", "size": 10}]})
    assert r.status_code == 201, r.text
    t, never = r.json()["uploads"]
    assert t["url"].startswith(f"{moto_url}/") and "X-Amz-Signature=" in t["url"]
    assert f"tenants/acme/uploads/{t['upload_id']}?" in t["url"] and "rabbit" not in t["url"]
    assert not (s3.settings.data_dir / "upload-url.key").exists()  # no local signing key in S3 mode

    resp = httpx.put(t["url"], content=video, headers=t["headers"], timeout=30)  # straight to the object server
    assert resp.status_code == 200, resp.text

    r = s3.submit([never["upload_id"]])
    assert r.status_code == 422 and r.json()["error"]["code"] == "upload_missing"

    r = s3.submit([t["upload_id"]])
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert s3.enqueued == [sid]
    rec = s3.state.get(sid, "acme")
    assert rec is not None
    [f] = rec.files
    assert (f.key, f.name, f.size, f.sha256, f.detected) == (
        f"{submission_prefix('acme', sid)}originals/001", "rabbit.mp4", len(video), sha(video), "media")
    with s3.storage.get(f.key) as fh:
        assert sha(fh.read()) == sha(video)
    assert not s3.storage.exists(staging_key("acme", t["upload_id"]))
    assert not s3.storage.exists(manifest_key("acme", t["upload_id"]))
    assert s3.storage.exists(manifest_key("acme", never["upload_id"]))  # not part of the submission: untouched


def test_s3_upload_of_wrong_size_is_refused_at_submission(s3: S3Env) -> None:
    body = docx_bytes()
    r = s3.client.post("/v1/uploads", headers=s3.auth, json={"files": [{"name": "r.docx", "size": len(body) - 1}]})
    [t] = r.json()["uploads"]
    assert httpx.put(t["url"], content=body, timeout=30).status_code == 200  # the signature does not bind the size
    r = s3.submit([t["upload_id"]])
    assert r.status_code == 422 and r.json()["error"]["code"] == "upload_size_mismatch"
    assert s3.state.list("acme")[0] == [] and s3.enqueued == []
    assert s3.storage.exists(staging_key("acme", t["upload_id"]))
