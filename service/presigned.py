"""Uploads through short-lived URLs: ``POST /v1/uploads`` hands out one PUT URL per file, and the
submission then names the upload ids (form field ``uploads``) instead of carrying the bytes.

Why: a 2 GiB video sent through ``POST /v1/submissions`` holds an API connection for the whole
transfer and cannot be resumed. With S3/MinIO the client PUTs straight to the object server
(``Storage.presigned_put``). Local disk (embedded mode) has no object server, so the API serves
the same flow itself: the URL is ``PUT /v1/uploads/{upload_id}?token=...``, and the token is the
capability (no API key on that request, exactly like an S3 presigned URL).

Keys, all generated, all under the caller's tenant:

* ``tenants/{tenant}/uploads/{upload_id}``       the bytes, written by the PUT (a second PUT replaces);
* ``tenants/{tenant}/uploads/{upload_id}.json``  the manifest: sanitised name, declared size, expiry.

The manifest is an object in storage, not a state-store row, so no contract changes. Its key is
built from the caller's tenant, so another tenant's upload id is simply not found (422
``unknown_upload``, the same answer as a made-up id: no existence leak).

At submission each upload is streamed from storage into the spool like a direct file (its size
must be exactly the declared one, which is never over the per-file limit), hashed, sniffed with
the direct files, copied to the submission's ``originals/NNN``, and its staging objects deleted.
A rejected submission leaves staging as it was, so the client can correct a field and resubmit.

Idempotency: with an Idempotency-Key, each consumed manifest is replaced by a tombstone holding
no name and no bytes, only the submission's response, the key's sha256 and the request hash: the
retry of a request whose response was lost must replay that response, and the staged bytes the
retry names are gone by then.

The local token is ``b64url(json [tenant, expires]) "." b64url(HMAC-SHA256(secret, json
["gatecheck.upload/1", tenant, upload_id, expires]))``. The MAC is checked (constant time) before
anything in the token is trusted, then the expiry. The secret is 32 random bytes in
``{data_dir}/upload-url.key`` (0600), created at first use with a link-based first-writer-wins,
so API processes sharing the data directory agree on one; deleting it only voids outstanding URLs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .api_models import ApiError, UploadRequest, UploadsCreated, UploadStored, UploadTicket
from .contracts import Storage
from .logs import event
from .settings import MAX_UPLOAD_URL_TTL_S, Settings, check_upload_url_ttl
from .storage import StorageError
from .uploads import (
    Inflight,
    SpooledFile,
    Upload,
    UploadLimits,
    check_name,
    display_name,
    idempotency_conflict,
    make_spool,
    remove_spool,
    too_large,
)

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_TTL_S = 900
MAX_TTL_S = MAX_UPLOAD_URL_TTL_S  # the S3 limit for presigned URLs
MAX_REQUEST_BYTES = 1024 * 1024  # the JSON body of POST /v1/uploads: names and sizes only
MAX_MANIFEST_BYTES = 64 * 1024
CHUNK = 1024 * 1024
PUT_HEADERS = {"Content-Type": "application/octet-stream"}
_PURPOSE = "gatecheck.upload/1"
Replay = tuple[int, dict[str, Any], bool]  # (status code, body, replayed), as Submissions.create answers


def now() -> float:
    """The clock tokens and manifests use (tests move it)."""
    return time.time()


def upload_url_ttl_s(env: Mapping[str, str] | None = None) -> int:
    """``GATECHECK_UPLOAD_URL_TTL_S`` (default 900 s), between 1 s and 7 days."""
    raw = (os.environ if env is None else env).get("GATECHECK_UPLOAD_URL_TTL_S", "").strip()
    return check_upload_url_ttl(int(raw) if raw else DEFAULT_TTL_S)


def staging_key(tenant: str, upload_id: str) -> str:
    return f"tenants/{tenant}/uploads/{upload_id}"


def manifest_key(tenant: str, upload_id: str) -> str:
    return staging_key(tenant, upload_id) + ".json"


@dataclass(slots=True)
class Manifest:
    tenant: str
    upload_id: str
    name: str = ""
    size: int = 0
    expires_at: int = 0
    # set when a submission with an Idempotency-Key consumed the upload (name and size are then cleared):
    # {"submission_id", "key_sha256", "request_hash", "status_code", "body"}
    replay: dict[str, Any] | None = None


def unknown_upload(upload_id: str, status_code: int = 422) -> ApiError:
    shown = upload_id if UPLOAD_ID.match(upload_id) else "(malformed id)"
    return ApiError(status_code, "unknown_upload", f"no pending upload {shown} for this tenant",
                    "Create uploads with POST /v1/uploads (same tenant) and submit their upload_id.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class UrlSigner:
    """HMAC tokens for the API's own upload URLs (local storage)."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._secret: bytes | None = None

    def token(self, tenant: str, upload_id: str, expires: int) -> str:
        head = json.dumps([tenant, expires], separators=(",", ":")).encode("utf-8")
        return f"{_b64(head)}.{_b64(self._mac(self._key(create=True), tenant, upload_id, expires))}"

    def verify(self, upload_id: str, token: str) -> str:
        """The tenant the token was issued to, or 403 (``invalid_upload_token`` / ``upload_url_expired``)."""
        invalid = ApiError(403, "invalid_upload_token", "the upload URL is not valid for this upload",
                           "PUT to the url returned by POST /v1/uploads, unchanged.")
        secret = self._key(create=False)  # no key yet: no URL was ever issued (and a request cannot make one)
        try:
            head, _, mac = token.partition(".")
            tenant, expires = json.loads(_unb64(head))
            if secret is None or not isinstance(tenant, str) or type(expires) is not int:
                raise ValueError("malformed token")
            good = hmac.compare_digest(_unb64(mac), self._mac(secret, tenant, upload_id, expires))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise invalid from exc
        if not good:
            raise invalid
        if now() > expires:
            raise ApiError(403, "upload_url_expired", "the upload URL has expired",
                           "Create a new upload with POST /v1/uploads and PUT the file to its url.")
        return tenant

    @staticmethod
    def _mac(secret: bytes, tenant: str, upload_id: str, expires: int) -> bytes:
        msg = json.dumps([_PURPOSE, tenant, upload_id, expires], separators=(",", ":")).encode("utf-8")
        return hmac.new(secret, msg, hashlib.sha256).digest()

    def _key(self, *, create: bool) -> bytes | None:
        if self._secret is None and (create or self.key_path.exists()):
            self._secret = _load_or_create_secret(self.key_path)
        return self._secret


def _load_or_create_secret(path: Path) -> bytes:
    """Read the secret, creating it first if missing; concurrent creators agree (first link wins)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-url-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic: never a half-written key, never two keys
        finally:
            os.unlink(tmp)
    secret = path.read_bytes()
    if len(secret) < 32:
        raise RuntimeError(f"{path} is not an upload-URL key (expected 32 random bytes)")
    return secret


async def read_upload_request(chunks: AsyncIterator[bytes], content_type: str | None) -> UploadRequest:
    """The JSON body of ``POST /v1/uploads``, read with a size cap (FastAPI would read any size first)."""
    if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        raise ApiError(415, "not_json", "the request body must be application/json",
                       'Send {"files": [{"name": "...", "size": 123}]} as JSON.')
    raw = bytearray()
    async for chunk in chunks:
        raw += chunk
        if len(raw) > MAX_REQUEST_BYTES:
            raise ApiError(413, "request_too_large", f"the request body is over {MAX_REQUEST_BYTES} bytes",
                           "Send names and sizes only; create uploads in several requests if needed.")
    try:
        return UploadRequest.model_validate_json(bytes(raw))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from exc


class Staging:
    """Pending uploads of every tenant: create tickets, receive local PUTs, hand uploads to a submission."""

    def __init__(self, settings: Settings, storage: Storage, base_url: str) -> None:
        self.settings = settings
        self.storage = storage
        self.base_url = base_url
        self.ttl_s = check_upload_url_ttl(settings.upload_url_ttl_s)  # also for Settings never validate()d
        self.signer = UrlSigner(settings.data_dir / "upload-url.key")
        self.inflight = Inflight(settings.max_inflight_uploads)  # shared with direct uploads (Submissions)

    # ---- POST /v1/uploads (blocking: run in a thread)

    def create(self, tenant: str, request: UploadRequest) -> UploadsCreated:
        s = self.settings
        if len(request.files) > s.max_files:
            raise too_large("too_many_files", f"more than {s.max_files} files in one submission")
        for n, f in enumerate(request.files, 1):
            if f.size > s.max_file_bytes:
                raise too_large("file_too_large", f"file #{n} is over the {s.max_file_bytes}-byte limit per file")
            check_name(f.name, n)  # the same allow-list as direct uploads: refused before any URL exists
        expires = int(now()) + self.ttl_s
        tickets = []
        for n, f in enumerate(request.files, 1):
            upload_id = uuid.uuid4().hex
            name = display_name(f.name, n)
            url = self.storage.presigned_put(staging_key(tenant, upload_id), self.ttl_s)
            if url is None:  # local disk: the API receives the PUT itself
                url = f"{self.base_url}/v1/uploads/{upload_id}?token={self.signer.token(tenant, upload_id, expires)}"
            self._write(Manifest(tenant, upload_id, name=name, size=f.size, expires_at=expires))
            tickets.append(UploadTicket(upload_id=upload_id, name=name, url=url, headers=dict(PUT_HEADERS),
                                        expires_at=expires))
        event("uploads_created", tenant=tenant, uploads=len(tickets), bytes=sum(f.size for f in request.files))
        return UploadsCreated(uploads=tickets)

    # ---- PUT /v1/uploads/{upload_id} (local storage)

    async def receive(self, upload_id: str, token: str, chunks: AsyncIterator[bytes],
                      content_length: str | None) -> UploadStored:
        """Check the token, then spool the body (declared size enforced as bytes arrive) and store it."""
        with self.inflight.slot():
            return await self._receive(upload_id, token, chunks, content_length)

    async def _receive(self, upload_id: str, token: str, chunks: AsyncIterator[bytes],
                       content_length: str | None) -> UploadStored:
        if not UPLOAD_ID.match(upload_id):
            raise unknown_upload(upload_id, 404)
        tenant = self.signer.verify(upload_id, token)
        manifest = await run_in_threadpool(self._read, tenant, upload_id)
        if manifest is None or manifest.replay is not None:
            raise unknown_upload(upload_id, 404)
        declared = manifest.size
        over = too_large("file_too_large", f"the body is over the {declared} bytes declared for this upload")
        if content_length and content_length.isdigit() and int(content_length) > declared:
            raise over
        spool = await run_in_threadpool(make_spool, self.settings.data_dir)
        try:
            path, digest, received = spool / "body", hashlib.sha256(), 0
            with path.open("xb") as fh:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > declared:
                        raise over
                    if chunk:
                        await run_in_threadpool(_append, fh, digest, chunk)
            if received != declared:
                raise ApiError(400, "upload_size_mismatch", f"received {received} of the {declared} bytes declared",
                               "PUT the whole file; its size must be the size given to POST /v1/uploads.")
            await run_in_threadpool(self._put_file, staging_key(tenant, upload_id), path, declared)
        finally:
            await run_in_threadpool(remove_spool, spool)
        event("upload_received", tenant=tenant, upload_id=upload_id, bytes=declared)
        return UploadStored(upload_id=upload_id, size=declared, sha256=digest.hexdigest())

    # ---- POST /v1/submissions with `uploads` (blocking: run in a thread, except replay)

    def load(self, tenant: str, upload_ids: list[str]) -> list[Manifest]:
        """The manifests of ``upload_ids`` in the caller's tenant, in order; 422 ``unknown_upload`` otherwise."""
        found = []
        for upload_id in upload_ids:
            manifest = self._read(tenant, upload_id) if UPLOAD_ID.match(upload_id) else None
            if manifest is None:
                raise unknown_upload(upload_id)
            found.append(manifest)
        return found

    @staticmethod
    def replay(manifests: list[Manifest], key: str | None, request_hash: str) -> Replay | None:
        """The stored response if the request names an upload a keyed submission consumed; None if none is."""
        used = next((m for m in manifests if m.replay is not None), None)
        if used is None or used.replay is None:
            return None
        if key and used.replay["key_sha256"] == _sha256(key):
            if used.replay["request_hash"] != request_hash:
                raise idempotency_conflict()
            return int(used.replay["status_code"]), dict(used.replay["body"]), True
        raise ApiError(422, "upload_consumed", f"upload {used.upload_id} was already used by a submission",
                       "Create a new upload for each submission.")

    def fetch(self, tenant: str, manifests: list[Manifest], upload: Upload, spool: Path,
              limits: UploadLimits) -> None:
        """Stream each staged object into the spool as the next file of ``upload`` (sha256 as it is read)."""
        if len(upload.files) + len(manifests) > limits.max_files:
            raise too_large("too_many_files", f"more than {limits.max_files} files in one submission")
        if sum(f.size for f in upload.files) + sum(m.size for m in manifests) > limits.max_submission_bytes:
            raise too_large("submission_too_large", f"the files are over the "
                            f"{limits.max_submission_bytes}-byte limit per submission")
        for m in manifests:
            f = SpooledFile(len(upload.files) + 1, spool / f"{len(upload.files) + 1:03d}", m.name,
                            upload_id=m.upload_id)
            if m.size > limits.max_file_bytes:  # the limit may have been lowered since the upload was created
                raise too_large("file_too_large", f"file #{f.index} is over the {limits.max_file_bytes}-byte "
                                "limit per file")
            self._download(staging_key(tenant, m.upload_id), f, m.size)
            upload.files.append(f)

    def consume(self, tenant: str, manifests: list[Manifest], key: str | None, request_hash: str,
                status_code: int, body: dict[str, Any]) -> None:
        """After the submission is stored: delete the staging objects (a tombstone stays for a keyed request)."""
        for m in manifests:
            prefix = staging_key(tenant, m.upload_id)  # the object and its manifest, no other upload's keys
            try:
                self.storage.delete_prefix(prefix)
                if key:
                    self._write(Manifest(tenant, m.upload_id, replay={
                        "submission_id": body["id"], "key_sha256": _sha256(key), "request_hash": request_hash,
                        "status_code": status_code, "body": body}))
            except Exception:  # the submission is stored and queued: report success, log the leftover
                event("orphan_objects", logging.WARNING, prefix=prefix)

    # ---- storage

    def _download(self, key: str, f: SpooledFile, declared: int) -> None:
        mismatch = ApiError(422, "upload_size_mismatch", f"file #{f.index} (upload {f.upload_id}) is not the "
                            f"{declared} bytes declared", "PUT the whole file again to its upload URL, or create "
                            "a new upload with the right size.")
        try:
            src = self.storage.get(key)
        except StorageError as exc:
            if exc.code == "not_found":
                raise ApiError(422, "upload_missing", f"file #{f.index} (upload {f.upload_id}) was never uploaded",
                               "PUT the file to its upload URL first (create a new upload if it expired).") from exc
            raise
        digest = hashlib.sha256()
        with contextlib.closing(src), f.path.open("xb") as dst:
            while chunk := src.read(CHUNK):
                f.size += len(chunk)
                if f.size > declared:  # never read on past the declared size (itself within the limits)
                    raise mismatch
                dst.write(chunk)
                digest.update(chunk)
        if f.size != declared:
            raise mismatch
        f.sha256 = digest.hexdigest()

    def _put_file(self, key: str, path: Path, size: int) -> None:
        with path.open("rb") as fh:
            self.storage.put(key, fh, length=size, content_type="application/octet-stream")

    def _write(self, manifest: Manifest) -> None:
        raw = json.dumps(dataclasses.asdict(manifest), separators=(",", ":")).encode("utf-8")
        self.storage.put(manifest_key(manifest.tenant, manifest.upload_id), io.BytesIO(raw), length=len(raw),
                         content_type="application/json")

    def _read(self, tenant: str, upload_id: str) -> Manifest | None:
        return read_manifest(self.storage, tenant, upload_id)


def read_manifest(storage: Storage, tenant: str, upload_id: str) -> Manifest | None:
    """The manifest of one upload of ``tenant``; None if missing, unreadable or not that tenant's."""
    try:
        src = storage.get(manifest_key(tenant, upload_id))
    except StorageError as exc:
        if exc.code == "not_found":
            return None
        raise
    with contextlib.closing(src):
        raw = src.read(MAX_MANIFEST_BYTES + 1)
    try:
        manifest = Manifest(**json.loads(raw))
    except (ValueError, TypeError):
        event("bad_upload_manifest", logging.WARNING, upload_id=upload_id)
        return None
    return manifest if (manifest.tenant, manifest.upload_id) == (tenant, upload_id) else None


def _append(fh: IO[bytes], digest: Any, chunk: bytes) -> None:
    fh.write(chunk)
    digest.update(chunk)


# ---- retention of staging objects (worker.tasks.purge_expired, service.erasure)

#: A pending upload is abandoned this long after its URL expired (time to submit a file PUT at the last second).
ABANDONED_AFTER_S = 3600
#: Receipts (consumed-upload tombstones) serve idempotent replays as long as the state store's keys do.
RECEIPT_TTL_S = 24 * 3600
_STAGED = re.compile(r"^tenants/(?P<tenant>[^/]+)/uploads/(?P<upload_id>[0-9a-f]{32})(?P<json>\.json)?$")


def _staged_uploads(storage: Storage, prefix: str) -> dict[tuple[str, str], dict[str, float]]:
    """(tenant, upload id) -> {"bytes"|"manifest": modified} for every staging object under ``prefix``."""
    found: dict[tuple[str, str], dict[str, float]] = {}
    for obj in storage.list(prefix):
        m = _STAGED.match(obj.key)
        if m:
            found.setdefault((m["tenant"], m["upload_id"]), {})["manifest" if m["json"] else "bytes"] = obj.modified
    return found


def sweep_abandoned(storage: Storage, at: float, *, abandoned_after_s: float = ABANDONED_AFTER_S,
                    receipt_ttl_s: float = RECEIPT_TTL_S) -> int:
    """Delete staging no submission will use (UK GDPR storage limitation); returns how many uploads.

    * pending uploads whose URL expired more than ``abandoned_after_s`` ago (bytes and manifest);
    * receipts older than ``receipt_ttl_s`` (past it a keyed retry is a new request anyway);
    * bytes with no manifest (a crash mid-consume) or an unreadable manifest, older than the longest URL.
    One listing of ``tenants/``: S3 has no cheaper way to find every tenant's ``uploads/``.
    """
    swept = 0
    for (tenant, upload_id), parts in _staged_uploads(storage, "tenants/").items():
        manifest = read_manifest(storage, tenant, upload_id) if "manifest" in parts else None
        newest = max(parts.values())
        if manifest is None:
            stale = newest + MAX_TTL_S < at
        elif manifest.replay is not None:
            stale = parts["manifest"] + receipt_ttl_s < at
        else:
            stale = manifest.expires_at + abandoned_after_s < at
        if stale:
            storage.delete_prefix(staging_key(tenant, upload_id))
            swept += 1
    if swept:
        event("staging_swept", uploads=swept)
    return swept


def drop_receipts(storage: Storage, tenant: str, submission_id: str) -> int:
    """Delete the receipts of uploads a submission consumed (they hold its id and response: erasure)."""
    dropped = 0
    for (t, upload_id), parts in _staged_uploads(storage, f"tenants/{tenant}/uploads/").items():
        manifest = read_manifest(storage, t, upload_id) if "manifest" in parts else None
        if manifest is not None and (manifest.replay or {}).get("submission_id") == submission_id:
            dropped += storage.delete_prefix(staging_key(t, upload_id))
    return dropped

