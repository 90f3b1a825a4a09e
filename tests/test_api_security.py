"""Reliability catalogue A and D at the API: upload validation (1-6) and API security (34-38).

Real backends throughout (SqliteState + LocalStorage from ``make_env``, moto's S3 server, uvicorn
on loopback, the embedded worker in process). What is asserted is what a gateway portal and an
attacker see: status codes, typed error bodies, and, for every refusal, that nothing was stored.
Catalogue numbers: reference/reliability-anchors.md (b); each test carries ``catalogue(n)``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import select
import socket
import threading
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from service import auth, presigned, webhooks
from service.app import create_app
from service.auth import Authenticator
from service.contracts import ApiRole, Status, submission_prefix
from service.settings import MAX_UPLOAD_URL_TTL_S, Settings
from service.storage import MinioStorage
from tests.conftest import ROOT, corpus_file
from tests.servers import free_port
from tests.test_api import DOCX, PPTX, REPORT, STANDARD, Env, _finish, docx_bytes, make_env, sha
from tests.test_presigned import create_uploads, multipart, put, staged, submit, ticket
from tests.test_worker import FILES, TENANT, Embedded, Receiver, embedded, make_record, receiver  # noqa: F401
from worker import celery_app, tasks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PDF = "pdf/samplefiles_crazyones-pdfa.pdf"
ENCRYPTED_DOCX = "bad/poi_bug53475_ENCRYPTED_docx_password-is-pass.docx"
ENCRYPTED_PDFS = ("pdf/pypdf_r6-user-password_AES256_pw-asdfzxcv.pdf",
                  "pdf/pdfplumber_password-example_ENCRYPTED_pw-test.pdf",
                  "pdf/samplefiles_libreoffice-writer-password_pw-openpassword.pdf")
OWNER_ONLY_PDF = "pdf/pypdf_r2-owner-password_RC4.pdf"
HTML = b"<!DOCTYPE html><html><head><title>CV</title></head><body><h1>Jane</h1><script>x()</script></body></html>\n"
VECTORS = ROOT / "tests" / "data" / "webhook_vectors.json"


def pdf_bytes() -> bytes:
    return corpus_file(PDF).read_bytes()


def raw_multipart(files: list[tuple[str, bytes, str]], fields: dict[str, str] | None = None,
                  star: bool = False) -> tuple[bytes, str]:
    """A multipart body with exact control over each part: raw ``filename="..."`` (bytes as given) or
    RFC 5987 ``filename*=UTF-8''...`` (so NUL, newline and bidi characters reach the server unaltered)."""
    boundary = uuid.uuid4().hex
    out = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
           for k, v in (STANDARD if fields is None else fields).items()]
    for name, body, ctype in files:
        disp = f"filename*=UTF-8''{quote(name, safe='')}" if star else f'filename="{name}"'
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; {disp}\r\n'
                   f"Content-Type: {ctype}\r\n\r\n".encode() + body + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def post_raw(env: Env, files: list[tuple[str, bytes, str]], star: bool = False, **headers: str) -> httpx.Response:
    body, ctype = raw_multipart(files, star=star)
    return env.client.post("/v1/submissions", content=body, headers=env.headers(**{"Content-Type": ctype, **headers}))


def error(r: httpx.Response) -> dict[str, Any]:
    """The typed error body every refusal has: code, message, remedy (never a traceback)."""
    assert r.headers["content-type"].startswith("application/json"), r.text
    err = r.json()["error"]
    assert set(err) >= {"code", "message", "remedy"} and err["code"] and err["message"] and err["remedy"], err
    return dict(err)


def slow_body(head: bytes, chunks: int, consumed: list[int], tail: bytes = b"") -> AsyncIterator[bytes]:
    """A streamed body (no Content-Length) that counts how many 64 KiB chunks the server pulled."""
    async def gen() -> AsyncIterator[bytes]:
        yield head
        for _ in range(chunks):
            consumed[0] += 1
            yield b"\0" * 65536
        yield tail
    return gen()


def file_head(boundary: str, filename: str, first: bytes) -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="standard"\r\n\r\nST0949\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + first


def asgi_post(env: Env, body: AsyncIterator[bytes], boundary: str) -> httpx.Response:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t") as c:
            return await c.post("/v1/submissions", content=body,
                                headers=env.headers(**{"Content-Type": f"multipart/form-data; boundary={boundary}"}))
    return asyncio.run(run())


# --------------------------------------------------------------------------- 1. extension allow-list

REFUSED_NAMES = ["cv.exe", "cv.pdf.exe", "cv.php%00.pdf", "cv.PDF ", "cv", "cv\u202efdp.exe", "cv.pdf.",
                 "..\\..\\cv.php"]


@pytest.mark.catalogue(1)
@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_name_without_an_allowed_extension_is_415_and_stores_nothing(env: Env, name: str) -> None:
    r = post_raw(env, [(name, pdf_bytes(), "application/pdf")])  # real PDF bytes: the name alone refuses it
    assert r.status_code == 415, r.text
    err = error(r)
    assert err["code"] == "extension_not_allowed" and "file #1" in err["message"]
    assert ".pdf" in err["options"] and ".exe" not in err["options"] and ".php" not in err["options"]
    env.assert_nothing_stored()
    # the same name asking for an upload URL: refused before any URL or manifest exists
    r = create_uploads(env, [(name, 1000)])
    assert r.status_code == 415 and error(r)["code"] == "extension_not_allowed"
    assert staged(env) == [] and env.records() == []


@pytest.mark.catalogue(1)
def test_nul_trick_sent_raw_is_refused_too(env: Env) -> None:
    """``cv.php\\0.pdf`` is ``cv.php`` to anything written in C: the part before a NUL must pass as well."""
    for name in ("cv.php\x00.pdf", "cv\x00.pdf", "cv.pdf\x00.exe"):
        r = post_raw(env, [(name, pdf_bytes(), "application/pdf")], star=True)
        assert r.status_code == 415 and error(r)["code"] == "extension_not_allowed", (name, r.text)
    env.assert_nothing_stored()


@pytest.mark.catalogue(1)
def test_refused_name_is_answered_before_the_body_is_read(env: Env) -> None:
    consumed = [0]
    r = asgi_post(env, slow_body(file_head("Bd", "cv.pdf.exe", b"MZ"), 16_384, consumed, b"\r\n--Bd--\r\n"), "Bd")
    assert r.status_code == 415 and error(r)["code"] == "extension_not_allowed"
    assert consumed[0] <= 2  # refused at the part's headers, not after 1 GiB
    env.assert_nothing_stored()


@pytest.mark.catalogue(1)
def test_allowed_extensions_are_case_insensitive_and_kept_as_metadata(env: Env) -> None:
    r = post_raw(env, [("CV.PDF", pdf_bytes(), "application/octet-stream"),
                       ("Report.DocX", docx_bytes(), "application/octet-stream")])
    assert r.status_code == 202, r.text
    rec = env.state.get(r.json()["id"], "acme")
    assert rec is not None and [(f.name, f.detected) for f in rec.files] == [("CV.PDF", "pdf"), ("Report.DocX", "docx")]
    assert all(k.rsplit("/", 1)[-1] in ("001", "002") for k in env.objects())


# --------------------------------------------------------------------------- 2. magic bytes vs name and type

MISMATCHES = [
    ("cv.pdf", PPTX, "pptx"),  # a .pptx sent as cv.pdf
    ("cv.docx", PDF, "pdf"),  # a PDF renamed .docx
    ("cv.pdf", None, "text"),  # HTML named .pdf
    ("slides.pptx", DOCX, "docx"),
]
SPOOFED_TYPES = ["application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                 "application/octet-stream", "text/html"]


@pytest.mark.catalogue(2)
@pytest.mark.parametrize(("name", "rel", "found"), MISMATCHES)
def test_content_that_does_not_match_the_name_is_422_whatever_the_content_type(
        env: Env, name: str, rel: str | None, found: str) -> None:
    content = HTML if rel is None else corpus_file(rel).read_bytes()
    answers = set()
    for ctype in SPOOFED_TYPES:  # the part's Content-Type, and a request-level one a proxy might add
        r = post_raw(env, [(name, content, ctype)], **{"X-Content-Type": ctype})
        assert r.status_code == 422, (ctype, r.text)
        err = error(r)
        assert err["code"] == "content_mismatch" and "content does not match the file name" in err["message"]
        assert f"named .{name.rsplit('.', 1)[1]}" in err["message"] and f"content is {found}" in err["message"]
        answers.add(r.content)
        env.assert_nothing_stored()
    assert len(answers) == 1  # byte-identical answers: the declared type never changed the decision


@pytest.mark.catalogue(2)
def test_spoofed_content_type_never_refuses_good_content(env: Env) -> None:
    for ctype in [*SPOOFED_TYPES, "application/x-msdownload"]:
        r = post_raw(env, [("cv.pdf", pdf_bytes(), ctype), ("report.docx", docx_bytes(), ctype)])
        assert r.status_code == 202, (ctype, r.text)
    assert {f.detected for rec in env.records() for f in rec.files} == {"pdf", "docx"}


@pytest.mark.catalogue(2)
def test_mismatch_through_an_upload_url_is_refused_at_submission(env: Env) -> None:
    pptx = corpus_file(PPTX).read_bytes()
    t = ticket(env, "cv.pdf", len(pptx))
    assert put(env, t, pptx, **{"Content-Type": "application/pdf"}).status_code == 200
    r = submit(env, [t["upload_id"]])
    assert r.status_code == 422 and error(r)["code"] == "content_mismatch" and "file #1" in r.json()["error"]["message"]
    assert env.records() == [] and env.enqueued == [] and not [k for k in env.objects() if "/submissions/" in k]


# --------------------------------------------------------------------------- 3. size cap, chunked included


@pytest.mark.catalogue(3)
def test_one_byte_over_the_file_limit_is_413_and_the_limit_itself_passes(tmp_path: Path) -> None:
    body = docx_bytes()
    env = make_env(tmp_path, max_file_bytes=len(body))
    r = env.post([("r.docx", body + b"\0")])
    assert r.status_code == 413 and error(r)["code"] == "file_too_large"
    env.assert_nothing_stored()
    assert env.post([("r.docx", body)]).status_code == 202


@contextlib.contextmanager
def serve(app: Any) -> Iterator[int]:
    """The app under a real uvicorn on 127.0.0.1 in a thread (real HTTP/1.1 framing); stops on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield server.config.port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(sep) and (found is None or len(body) >= int(found.group(1)))


def chunked_post(port: int, auth_header: str, filename: str, total_mib: int) -> tuple[int, bytes, int]:
    """POST a multipart body with Transfer-Encoding: chunked and no Content-Length, 64 KiB a chunk,
    stopping as soon as the server answers. Returns (status, response bytes, body bytes sent)."""
    head = file_head("Ck", filename, b"%PDF-1.7\n")
    chunk = b"\0" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("POST /v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: {auth_header}\r\nContent-Type: multipart/form-data; boundary=Ck\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n").encode() + f"{len(head):x}\r\n".encode() + head + b"\r\n")
        for _ in range(total_mib * 16):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server has answered: stop sending
            try:
                sock.sendall(frame)
            except OSError:  # it closed the connection after answering
                break
            sent += len(chunk)
        response = b""
        with contextlib.suppress(OSError):
            while not _complete(response):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
    return status, response, sent


@pytest.mark.catalogue(3)
def test_chunked_upload_without_content_length_is_413_before_the_body_is_read(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_file_bytes=256 * 1024)
    with serve(env.client.app) as port:
        status, response, sent = chunked_post(port, env.headers()["Authorization"], "big.pdf", total_mib=256)
    assert status == 413, response[:500]
    assert b'"code":"file_too_large"' in response
    assert sent < 32 * 1024 * 1024  # answered while the client was still sending: not after 256 MiB
    env.assert_nothing_stored()  # no object, no record, no queue message, no spool file left


@pytest.mark.catalogue(3)
def test_oversize_upload_leaves_no_object_or_partial_upload_in_the_bucket(
        tmp_path: Path, moto_url: str) -> None:
    import boto3

    bucket = f"gc-{uuid.uuid4().hex[:12]}"
    storage = MinioStorage(moto_url, "testing", "testing", bucket=bucket, region="us-east-1")
    env = make_env(tmp_path, max_file_bytes=256 * 1024)
    s3_env = Env(TestClient(create_app(env.settings, env.state, storage, env.enqueued.append)), env.state,
                 env.storage, env.settings, env.enqueued, env.keys)
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")

    assert storage.ping()  # creates the bucket, so the listings below look at a real, empty bucket

    def bucket_state() -> tuple[list[str], list[str]]:
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        return objects, uploads

    consumed = [0]
    r = asgi_post(s3_env, slow_body(file_head("Sz", "big.mp4", b"\0\0\0\x18ftypmp42"), 16_384, consumed), "Sz")
    assert r.status_code == 413 and error(r)["code"] == "file_too_large" and consumed[0] <= 8
    r = s3_env.post([("big.pdf", b"%PDF-1.7\n" + b"\0" * (256 * 1024))])  # with Content-Length
    assert r.status_code == 413
    assert bucket_state() == ([], []) and env.records() == [] and env.enqueued == [] and env.spool_empty()
    # the control: an accepted upload does land in this bucket (the listing above is not vacuous)
    r = s3_env.post([("r.docx", docx_bytes())])
    assert r.status_code == 202, r.text
    assert bucket_state() == ([f"{submission_prefix('acme', r.json()['id'])}originals/001"], [])


# --------------------------------------------------------------------------- 4. filename sanitisation

HOSTILE_ALLOWED = [
    "../../etc/passwd.pdf",
    "b" * 10_000 + ".pdf",
    "cv\u202excod.pdf",  # an RTL override that still ends in .pdf (cv\u202efdp.exe is refused: catalogue 1)
    "CON.pdf",
    "report.pdf\x00evil.pdf",
    "line\nbreak\r.pdf",
    "<img src=x onerror=alert(1)>.pdf",
    "C:\\Windows\\System32\\drivers\\etc\\hosts.pdf",
]


def _safe_display(name: str) -> bool:
    return (0 < len(name) <= 255 and "/" not in name and "\\" not in name
            and not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name))


@pytest.mark.catalogue(4)
def test_hostile_names_are_stored_under_server_keys_and_echoed_escaped(env: Env, tmp_path: Path) -> None:
    content = pdf_bytes()
    r = post_raw(env, [(n, content, "application/pdf") for n in HOSTILE_ALLOWED], star=True)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    prefix = submission_prefix("acme", sid)
    assert env.objects() == [f"{prefix}originals/{n:03d}" for n in range(1, len(HOSTILE_ALLOWED) + 1)]
    assert all(sha((env.storage.root / k).read_bytes()) == sha(content) for k in env.objects())
    # nothing outside the storage root or the spool was written under any of the names
    for bad in ("passwd*", "CON*", "hosts*", "*onerror*", "bbbb*", "*evil*"):
        assert not list(tmp_path.rglob(bad)), bad
    rec = env.state.get(sid, "acme")
    assert rec is not None
    names = [f.name for f in rec.files]
    assert all(_safe_display(n) for n in names), names
    assert names[0] == "passwd.pdf" and names[3] == "CON.pdf" and names[7] == "hosts.pdf"
    assert len(names[1]) == 255 and names[1].endswith(".pdf")
    assert names[2] == "cvxcod.pdf" and names[4] == "report.pdfevil.pdf" and names[5] == "linebreak.pdf"
    # echoed in JSON exactly as stored, and the raw JSON text carries no control or bidi character
    view = env.client.get(f"/v1/submissions/{sid}", headers=env.headers())
    assert view.headers["content-type"] == "application/json"
    assert [f["name"] for f in view.json()["files"]] == names
    assert not re.search(r"[\x00-\x1f\u202a-\u202e\u2066-\u2069]", view.text)
    assert '"<img src=x onerror=alert(1)>.pdf"' in view.text  # JSON data, never markup: the report page escapes it


@pytest.mark.catalogue(4)
def test_hostile_names_through_upload_urls_are_sanitised_and_never_keys(env: Env) -> None:
    r = create_uploads(env, [("c" * 10_000 + ".pdf", 100)])  # the JSON body caps a name at 4096 characters
    assert r.status_code == 422 and error(r)["code"] == "invalid_request" and staged(env) == []
    r = create_uploads(env, [(n[:4096], 100) for n in HOSTILE_ALLOWED if len(n) <= 4096] + [("d" * 4000 + ".pdf", 1)])
    assert r.status_code == 201, r.text
    tickets = r.json()["uploads"]
    assert all(_safe_display(t["name"]) for t in tickets)
    for t in tickets:
        url = urlsplit(t["url"])
        assert url.path == f"/v1/uploads/{t['upload_id']}" and re.fullmatch(r"[0-9a-f]{32}", t["upload_id"])
    assert sorted(staged(env)) == sorted(f"tenants/acme/uploads/{t['upload_id']}.json" for t in tickets)


# --------------------------------------------------------------------------- 5. empty and truncated files


@pytest.mark.catalogue(5)
@pytest.mark.parametrize(("content", "code"), [(b"", "empty"), (b"%PDF-1.", "corrupt")])
def test_empty_and_truncated_pdf_are_refused_synchronously(env: Env, content: bytes, code: str) -> None:
    r = env.post([("cv.pdf", content)])
    assert r.status_code == 422, r.text
    assert error(r)["code"] == code
    env.assert_nothing_stored()  # refused in the request itself: never queued for a worker
    t = ticket(env, "cv.pdf", max(len(content), 1))
    if content:  # an upload URL declares at least 1 byte; the 7-byte PDF goes that way too
        assert put(env, t, content).status_code == 200
        r = submit(env, [t["upload_id"]])
        assert r.status_code == 422 and error(r)["code"] == code
    assert env.records() == [] and env.enqueued == []


# --------------------------------------------------------------------------- 6. password-protected files


@pytest.mark.catalogue(6)
def test_encrypted_docx_is_refused_at_upload_as_encrypted(env: Env) -> None:
    r = env.post([("cv.docx", corpus_file(ENCRYPTED_DOCX).read_bytes())])
    assert r.status_code == 422
    err = error(r)
    assert err["code"] == "encrypted" and "password" in err["remedy"].lower()
    env.assert_nothing_stored()


@pytest.mark.catalogue(6)
def test_encrypted_pdf_is_accepted_and_its_report_says_encrypted(env: Env) -> None:
    """Telling an open password from an owner-only one takes a parser, which runs in the worker's sandbox."""
    files = [(f"cv{n}.pdf", corpus_file(rel).read_bytes()) for n, rel in enumerate(ENCRYPTED_PDFS)]
    files.append(("owner-only.pdf", corpus_file(OWNER_ONLY_PDF).read_bytes()))
    r = env.post(files)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    previous = celery_app.current_settings()
    tasks.bind(env.settings, env.state, env.storage)
    try:
        tasks.process_submission(sid)
    finally:
        tasks._services = None
        celery_app.configure(previous)
    rec = env.state.get(sid, "acme")
    assert rec is not None and rec.status is Status.DONE and rec.report_key, rec
    with contextlib.closing(env.storage.get(rec.report_key)) as fh:
        report = json.loads(fh.read())
    codes = {e["file"]: e["code"] for e in report["errors"]}
    assert codes == {f"cv{n}.pdf": "encrypted" for n in range(len(ENCRYPTED_PDFS))}  # owner-only: read, no error
    assert report["outcome"] == "fail" and rec.outcome == "fail"


@pytest.mark.catalogue(6)
def test_no_password_is_ever_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdf

    from extractors.errors import ErrorCode, ExtractionError
    from extractors.pipeline import extract_file

    tried: list[object] = []
    real = pypdf.PdfReader.decrypt

    def spy(self: pypdf.PdfReader, password: str | bytes) -> Any:
        tried.append(password)
        return real(self, password)

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", spy)
    for rel in ENCRYPTED_PDFS:
        with pytest.raises(ExtractionError) as info:
            extract_file(corpus_file(rel))
        assert info.value.code is ErrorCode.ENCRYPTED
    assert tried and set(tried) == {""}  # only the empty user password every PDF reader tries
    # and in the source: every decrypt call passes the empty string, no password argument comes from elsewhere
    for path in sorted((ROOT / "extractors").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "decrypt":
                assert [ast.unparse(a) for a in node.args] == ["''"] and not node.keywords, path.name
            if isinstance(node, ast.keyword) and node.arg == "password":
                assert ast.unparse(node.value) in ("None", "''"), path.name


# --------------------------------------------------------------------------- 34. idempotency


@pytest.mark.catalogue(34)
def test_replay_is_byte_identical(env: Env) -> None:
    files = [("r.docx", docx_bytes())]
    first = env.post(files, **{"Idempotency-Key": "byte-1"})
    again = env.post(files, **{"Idempotency-Key": "byte-1"})
    assert first.status_code == again.status_code == 202
    assert again.content == first.content and again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert len(env.records()) == 1 and len(env.enqueued) == 1


def _concurrent_pair(env: Env, bodies: list[bytes], key: str) -> list[httpx.Response]:
    """Two requests with one Idempotency-Key, held together inside storage.put so both really race."""
    barrier = threading.Barrier(2, timeout=20)
    real_put = env.storage.put

    def put_in_step(key_: str, *args: Any, **kwargs: Any) -> None:
        if key_.endswith("originals/001"):
            barrier.wait()  # both requests have passed validation and are storing at the same time
        real_put(key_, *args, **kwargs)

    env.storage.put = put_in_step  # type: ignore[method-assign]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=env.client.app), base_url="http://t") as c:
            return list(await asyncio.gather(*(
                c.post("/v1/submissions", data=STANDARD, files=[("files", ("r.docx", b))],
                       headers=env.headers(**{"Idempotency-Key": key})) for b in bodies)))
    try:
        return asyncio.run(run())
    finally:
        env.storage.put = real_put  # type: ignore[method-assign]


@pytest.mark.catalogue(34)
def test_concurrent_same_key_one_executes_the_other_replays(env: Env) -> None:
    a, b = _concurrent_pair(env, [docx_bytes(), docx_bytes()], "race-1")
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.content == b.content  # the loser answers with the winner's response, byte for byte
    assert sorted(r.headers.get("idempotent-replayed", "") for r in (a, b)) == ["", "true"]
    sid = a.json()["id"]
    assert [r.id for r in env.records()] == [sid] and env.enqueued == [sid]  # executed once
    assert env.objects() == [f"{submission_prefix('acme', sid)}originals/001"]  # the loser's copy removed
    assert env.spool_empty()


@pytest.mark.catalogue(34)
def test_concurrent_same_key_different_bodies_one_wins_the_other_409(env: Env) -> None:
    other = corpus_file("docx/poi_IllustrativeCases_outlook.docx").read_bytes()
    results = _concurrent_pair(env, [docx_bytes(), other], "race-2")
    assert sorted(r.status_code for r in results) == [202, 409], [r.text for r in results]
    won = next(r for r in results if r.status_code == 202)
    assert error(next(r for r in results if r.status_code == 409))["code"] == "idempotency_conflict"
    sid = won.json()["id"]
    assert [r.id for r in env.records()] == [sid] and env.enqueued == [sid]
    assert all(k.startswith(submission_prefix("acme", sid)) for k in env.objects())


@pytest.mark.catalogue(34)
def test_a_503_is_not_remembered_and_the_retry_queues_the_same_submission(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    queue_up = [False]
    queued: list[str] = []

    def flaky_enqueue(sid: str) -> None:
        if not queue_up[0]:
            raise ConnectionError("broker down")
        queued.append(sid)

    client = TestClient(create_app(env.settings, env.state, env.storage, flaky_enqueue))
    files = [("files", ("r.docx", docx_bytes()))]
    headers = env.headers(**{"Idempotency-Key": "after-503"})
    down = client.post("/v1/submissions", data=STANDARD, files=files, headers=headers)
    assert down.status_code == 503 and error(down)["code"] == "queue_unavailable" and down.headers["retry-after"]
    [failed] = env.records()
    assert failed.status is Status.FAILED and failed.error_code == "queue_unavailable"  # never queued for ever
    queue_up[0] = True
    retry = client.post("/v1/submissions", data=STANDARD, files=files, headers=headers)
    assert retry.status_code == 202 and "idempotent-replayed" not in retry.headers  # executed, not replayed
    assert retry.json()["id"] == failed.id and queued == [failed.id]
    rec = env.state.get(failed.id, "acme")
    assert rec is not None and rec.status is Status.QUEUED and rec.error_code is None and rec.finished_at is None
    assert len(env.records()) == 1 and env.objects() == [f"{submission_prefix('acme', failed.id)}originals/001"]
    third = client.post("/v1/submissions", data=STANDARD, files=files, headers=headers)
    assert third.content == retry.content and third.headers["idempotent-replayed"] == "true"
    assert queued == [failed.id]


# --------------------------------------------------------------------------- 35. tenant isolation


def _same_answer(a: httpx.Response, b: httpx.Response, mask: tuple[str, str] | None = None) -> None:
    """A foreign id must answer exactly like an id that never existed: same status, same bytes."""
    body_a, body_b = a.content, b.content
    if mask:
        body_a, body_b = body_a.replace(mask[0].encode(), b"<id>"), body_b.replace(mask[1].encode(), b"<id>")
    assert (a.status_code, body_a) == (b.status_code, body_b)


@pytest.mark.catalogue(35)
def test_every_id_taking_endpoint_answers_a_foreign_id_like_a_random_one(env: Env) -> None:
    sid = env.post([("r.docx", docx_bytes())]).json()["id"]
    _finish(env, sid)  # done, with a report: the most there is to leak
    body = docx_bytes()
    mine = ticket(env, "mine.docx", len(body))
    assert put(env, mine, body).status_code == 200
    theirs = ticket(env, "theirs.docx", len(body), tenant="other")
    their_token = dict(parse_qsl(urlsplit(theirs["url"]).query))["token"]
    before = (env.objects(), [r.to_dict() for r in env.records()])
    random_id = uuid.uuid4().hex

    for role in ApiRole:
        h = env.headers("other", role)
        for path, extra in (("/v1/submissions/{}", {}), ("/v1/submissions/{}/report", {}),
                            ("/v1/submissions/{}/report?format=html", {}),
                            ("/v1/submissions/{}/report", {"Accept": "text/html"})):
            foreign = env.client.get(path.format(sid), headers={**h, **extra})
            unknown = env.client.get(path.format(random_id), headers={**h, **extra})
            assert foreign.status_code == 404 and error(foreign)["code"] == "not_found", path
            _same_answer(foreign, unknown)
        listing = env.client.get("/v1/submissions", params={"status": "done"}, headers=h)
        assert listing.status_code == 200 and listing.json()["items"] == []
    admin = env.headers("other", ApiRole.ADMIN)
    _same_answer(env.client.delete(f"/v1/submissions/{sid}", headers=admin),
                 env.client.delete(f"/v1/submissions/{random_id}", headers=admin))
    # a submission naming another tenant's upload id
    foreign = submit(env, [mine["upload_id"]], tenant="other")
    assert foreign.status_code == 422 and error(foreign)["code"] == "unknown_upload"
    _same_answer(foreign, submit(env, [random_id], tenant="other"), mask=(mine["upload_id"], random_id))
    # an upload URL's token opens its own upload only: on another tenant's id it is refused like on a random id
    foreign = env.client.put(f"/v1/uploads/{mine['upload_id']}?token={their_token}", content=b"x" * len(body))
    assert foreign.status_code == 403 and error(foreign)["code"] == "invalid_upload_token"
    _same_answer(foreign, env.client.put(f"/v1/uploads/{random_id}?token={their_token}", content=b"x" * len(body)))
    # nothing of acme's moved; its owner still sees all of it
    assert (env.objects(), [r.to_dict() for r in env.records()]) == before
    assert env.client.get(f"/v1/submissions/{sid}/report", headers=env.headers()).json() == REPORT


# --------------------------------------------------------------------------- 36. upload URLs


@pytest.mark.catalogue(36)
def test_upload_url_ttl_setting_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (0, -5, MAX_UPLOAD_URL_TTL_S + 1):
        with pytest.raises(ValueError, match="UPLOAD_URL_TTL_S"):
            Settings(upload_url_ttl_s=bad).validate()
        with pytest.raises(ValueError):  # an API is never built with it, validated or not
            make_env(tmp_path / str(bad), upload_url_ttl_s=bad)
    Settings(upload_url_ttl_s=MAX_UPLOAD_URL_TTL_S).validate()
    monkeypatch.setenv("GATECHECK_UPLOAD_URL_TTL_S", "120")
    assert Settings().upload_url_ttl_s == 120
    env = make_env(tmp_path / "ok")
    before = time.time()
    t = ticket(env, "r.docx", 10)
    assert before + 119 <= t["expires_at"] <= time.time() + 120


@pytest.mark.catalogue(36)
def test_local_upload_url_cannot_write_a_submission_or_another_key(env: Env) -> None:
    body = docx_bytes()
    sid = env.post([("r.docx", body)]).json()["id"]
    original = submission_prefix("acme", sid) + "originals/001"
    t = ticket(env, "r.docx", len(body))
    token = dict(parse_qsl(urlsplit(t["url"]).query))["token"]
    for path in (f"/v1/uploads/{sid}?token={token}",  # a submission id in place of the upload id
                 f"/v1/uploads/{uuid.uuid4().hex}?token={token}"):
        r = env.client.put(path, content=b"\0" * len(body))
        assert r.status_code == 403 and error(r)["code"] == "invalid_upload_token", path
    for path in (f"/v1/uploads/{t['upload_id']}/../../submissions/{sid}/originals/001?token={token}",
                 f"/v1/uploads/..%2Fsubmissions%2F{sid}?token={token}"):
        assert env.client.put(path, content=b"\0" * len(body)).status_code == 404, path
    assert sha((env.storage.root / original).read_bytes()) == sha(body)
    assert staged(env) == [f"tenants/acme/uploads/{t['upload_id']}.json"]  # no byte landed anywhere


def _sigv4_query_valid(url: str, method: str, secret: str) -> bool:
    """Independent AWS SigV4 query-string (presigned URL) check: does the signature cover this URL as given?"""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    sig = dict(params)["X-Amz-Signature"]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                               for k, v in sorted(p for p in params if p[0] != "X-Amz-Signature"))
    canonical = "\n".join([method, quote(parts.path, safe="/-_.~"), canonical_query, f"host:{parts.netloc}\n",
                           dict(params)["X-Amz-SignedHeaders"], "UNSIGNED-PAYLOAD"])
    date, scope = dict(params)["X-Amz-Date"], dict(params)["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), sig)


@pytest.mark.catalogue(36)
def test_s3_presigned_url_is_scoped_to_one_key_method_and_ttl(
        tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts any signature, so the scope is checked by recomputing SigV4 independently; the
    object server (S3/MinIO) enforces exactly this signature and expiry."""
    monkeypatch.setenv("GATECHECK_UPLOAD_URL_TTL_S", "300")
    storage = MinioStorage(moto_url, "testing", "testing", bucket=f"gc-{uuid.uuid4().hex[:12]}", region="us-east-1")
    env = make_env(tmp_path)
    client = TestClient(create_app(env.settings, env.state, storage, env.enqueued.append))
    body = docx_bytes()
    r = client.post("/v1/uploads", headers=env.headers(), json={"files": [{"name": "r.docx", "size": len(body)}]})
    assert r.status_code == 201, r.text
    [t] = r.json()["uploads"]
    url = t["url"]
    q = dict(parse_qsl(urlsplit(url).query))
    assert int(q["X-Amz-Expires"]) == 300 <= MAX_UPLOAD_URL_TTL_S and q["X-Amz-SignedHeaders"] == "host"
    assert urlsplit(url).path.endswith(f"/tenants/acme/uploads/{t['upload_id']}")
    assert _sigv4_query_valid(url, "PUT", "testing")  # the check recognises a good URL ...
    other_key = url.replace(f"/uploads/{t['upload_id']}?", f"/uploads/{uuid.uuid4().hex}?")
    submission_key = url.replace(f"/uploads/{t['upload_id']}?", "/submissions/x/originals/001?")
    longer = url.replace("X-Amz-Expires=300", "X-Amz-Expires=604800")
    for forged, method in ((other_key, "PUT"), (submission_key, "PUT"), (longer, "PUT"), (url, "GET"),
                           (url, "DELETE")):
        assert not _sigv4_query_valid(forged, method, "testing"), (forged, method)
    # once submitted, PUTting to the still-valid URL again cannot touch the submission's copy
    assert httpx.put(url, content=body, headers=t["headers"], timeout=30).status_code == 200
    form, ctype = multipart({**STANDARD, "uploads": json.dumps([t["upload_id"]])})
    r = client.post("/v1/submissions", headers=env.headers(**{"Content-Type": ctype}), content=form)
    assert r.status_code == 202, r.text
    key = f"{submission_prefix('acme', r.json()['id'])}originals/001"
    assert httpx.put(url, content=b"\0" * len(body), timeout=30).status_code == 200  # S3 cannot revoke a URL
    with contextlib.closing(storage.get(key)) as fh:
        assert sha(fh.read()) == sha(body)


# --------------------------------------------------------------------------- 37. webhook signatures


def _readme_verify(now: float) -> Any:
    """The receiver recipe from the README, executed as published, with its clock pinned at ``now``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("Verify a delivery like this", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines()),
                 "README.md", "exec"), namespace)
    namespace["time"] = SimpleNamespace(time=lambda: now)
    return namespace["verify"]


def _vectors() -> list[dict[str, Any]]:
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert doc["tolerance_s"] == webhooks.DEFAULT_TOLERANCE_S == 300
    return list(doc["vectors"])


@pytest.mark.catalogue(37)
@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_published_vectors_match_the_signing_code_and_the_readme_recipe(vector: dict[str, Any]) -> None:
    body, ts, keys = vector["body"].encode("utf-8"), vector["timestamp"], vector["secrets"]
    expected = vector["headers"]
    assert f"{ts}.".encode() + body == vector["signed_payload"].encode("utf-8")
    # the signing code, given the list or the stored whitespace-separated value, produces the published header
    for stored in (keys, " ".join(keys)):
        got = webhooks.signature_headers(stored, body, timestamp=ts)
        assert {k: got[k] for k in expected} == expected
    # independently recomputed from the documented construction
    independent = [hmac.new(k.encode(), vector["signed_payload"].encode("utf-8"), hashlib.sha256).hexdigest()
                   for k in keys]
    assert expected["X-Gatecheck-Signature"] == ",".join(f"v1={s}" for s in independent)
    readme = _readme_verify(now=ts + 299)
    for key in keys:  # a receiver holding any one of the secrets verifies
        assert webhooks.verify(key, expected, body, now=ts + 299)
        assert readme(key, expected, body)
    for bad_body, key, now in ((body + b" ", keys[0], ts), (b"x" + body, keys[0], ts),  # tampered
                               (body, keys[0] + "x", ts), (body, "whsec_wrong", ts),  # wrong secret
                               (body, keys[0], ts + 301), (body, keys[0], ts - 301)):  # stale, from the future
        assert not webhooks.verify(key, expected, bad_body, now=now)
        assert not _readme_verify(now)(key, expected, bad_body)
    assert not webhooks.verify(keys[0], {**expected, "X-Gatecheck-Timestamp": str(ts + 1)}, body, now=ts)
    assert not webhooks.verify(keys[0], {"X-Gatecheck-Signature": expected["X-Gatecheck-Signature"]}, body, now=ts)


@pytest.mark.catalogue(37)
def test_rotation_delivery_carries_two_signatures_and_either_secret_verifies(
        embedded: Embedded, receiver: Receiver) -> None:  # noqa: F811 (fixtures)
    new, old = "whsec_rotated_in_2f9a8b7c6d5e4f3a", "whsec_rotating_out_5e1f0c3a9b7d"
    embedded.state.create_tenant(TENANT, f"{new} {old}")  # the stored secret during a rotation
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:], callback_url=receiver.url)
    tasks.process_submission(sid)
    assert tasks.deliver_webhook(sid) == "204" and len(receiver.hits) == 1
    headers, body = receiver.hits[0]
    sigs = headers["X-Gatecheck-Signature"].split(",")
    assert len(sigs) == 2 and all(s.startswith("v1=") for s in sigs)
    readme = _readme_verify(now=time.time())
    for key in (new, old):
        assert webhooks.verify(key, headers, body) and readme(key, headers, body)
    assert webhooks.verify([old, "whsec_receiver_next"], headers, body)  # a receiver mid-rotation holds two
    assert not webhooks.verify("whsec_someone_else", headers, body) and not readme("whsec_someone_else", headers, body)
    assert not webhooks.verify(new, headers, body.replace(b'"done"', b'"failed"'))


# --------------------------------------------------------------------------- 38. auth and rate limits

_SECRET_NAME = re.compile(r"hash|mac|sig|token|secret|digest|expected|want|key", re.IGNORECASE)


def _function(path: Path, qualname: str) -> ast.FunctionDef:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scope: list[ast.stmt] = tree.body
    *owners, name = qualname.split(".")
    for owner in owners:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == owner).body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.catalogue(38)
@pytest.mark.parametrize(("module", "qualname"), [
    (auth, "Authenticator._lookup"), (presigned, "UrlSigner.verify"), (webhooks, "verify")])
def test_secret_comparisons_are_constant_time(module: Any, qualname: str) -> None:
    """Code check: every place a presented secret is checked uses compare_digest, never == on secret material."""
    fn = _function(Path(module.__file__), qualname)
    calls = {ast.unparse(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)}
    assert calls & {"secrets.compare_digest", "hmac.compare_digest"}, qualname
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            operands = [ast.unparse(x) for x in (node.left, *node.comparators)]
            assert not any(_SECRET_NAME.search(x) for x in operands), f"{qualname}: {' == '.join(operands)}"


@pytest.mark.catalogue(38)
def test_per_key_burst_is_429_with_a_truthful_retry_after(env: Env) -> None:
    now = [1000.0]
    limiter = Authenticator(env.state, per_minute=5, clock=lambda: now[0])
    client = TestClient(create_app(env.settings, env.state, env.storage, env.enqueued.append, authenticator=limiter))
    codes = [client.get("/v1/standards", headers=env.headers()).status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    r = client.get("/v1/standards", headers=env.headers())
    assert r.status_code == 429 and error(r)["code"] == "rate_limited"
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 60
    assert client.get("/v1/standards", headers=env.headers("other")).status_code == 200  # per key, not global
    now[0] += wait - 0.5
    assert client.get("/v1/standards", headers=env.headers()).status_code == 429
    now[0] += 0.5
    assert client.get("/v1/standards", headers=env.headers()).status_code == 200  # as promised
    # the failed-authentication limiter answers the same way, Retry-After included
    for _ in range(10):
        assert client.get("/v1/standards", headers={"Authorization": "Bearer gck_guess"}).status_code == 401
    r = client.get("/v1/standards", headers={"Authorization": "Bearer gck_guess"})
    assert r.status_code == 429 and error(r)["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    # a submission refused by the limiter stores nothing
    r = client.post("/v1/submissions", headers=env.headers(), data=STANDARD, files=[("files", ("r.docx", b"x"))])
    assert r.status_code == 429 and env.records() == [] and env.objects() == []


@pytest.mark.catalogue(37)
def test_webhook_secret_list_parsing() -> None:
    assert webhooks.secret_list("a b\tc\na") == ["a", "b", "c"]
    assert webhooks.secret_list(["a", "b c"]) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        webhooks.signature_headers("  ", b"{}")
    assert not webhooks.verify("", {"X-Gatecheck-Timestamp": "1", "X-Gatecheck-Signature": "v1=00"}, b"", now=1)
