"""Streaming multipart upload: parse as bytes arrive, spool files to disk, enforce limits, sniff content.

Why not ``await request.form()``: Starlette spools the whole body (every file)
before the endpoint sees a byte, so a 4 GiB upload is fully received before a
limit could refuse it. Here python-multipart's push parser is fed each chunk of
``request.stream()``; file parts go straight to a temp file while being hashed,
and per-file, per-submission and file-count limits raise a 413 the moment they
are crossed, leaving the rest of the body unread. Memory per request is one
network chunk plus the small text fields (capped), whatever the files' size.

Why the temp files live under ``settings.data_dir`` and not ``/tmp``: ``/tmp``
is often tmpfs, i.e. RAM, which would undo the point of streaming.

Nothing here trusts the client (OWASP upload checklist, reliability-anchors §2):

* the name must end in an allowed extension, the formats we read (``ALLOWED_EXTENSIONS``),
  checked as the part's headers arrive, so a refused name costs no body bytes. The check
  runs on the percent-decoded name and again on what precedes a NUL (``cv.php%00.pdf`` is
  ``cv.php`` to C code), with no trimming (``cv.PDF `` is refused, not "fixed");
* the type is sniffed from the content (``extractors.sniff``) and must be the family the
  extension names (a .pptx sent as ``cv.pdf`` is 422 ``content_mismatch``); the part's and
  the request's Content-Type never change a decision;
* the name is otherwise only display metadata: sanitised, length-capped, never a path or a
  storage key (objects are ``originals/NNN`` under a generated submission id).

Backpressure, checked before a body is read (so a refusal stores nothing): at most
``max_inflight_uploads`` bodies are received at once per API process (503), and no new
submission is taken while ``max_queued`` wait in the broker queue (429). Both carry Retry-After.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from extractors import zipscan
from extractors.errors import ErrorCode, ExtractionError
from extractors.limits import Limits
from extractors.sniff import sniff

from .api_models import ApiError, SubmissionForm, check_field_early
from .contracts import StateStore, Status, Storage, StoredFile, SubmissionRecord, submission_prefix
from .logs import event, submission_id_var
from .settings import Settings
from .webhooks import is_allowed_target

if TYPE_CHECKING:
    from .presigned import Staging

FILE_FIELD = "files"
TEXT_FIELDS = ("standard", "epao", "method", "roles", "meta", "callback_url")
UPLOADS_FIELD = "uploads"  # JSON list of upload ids from POST /v1/uploads (service.presigned)
FORM_FIELDS = (*TEXT_FIELDS, UPLOADS_FIELD)
MAX_FIELD_BYTES = 64 * 1024  # roles and meta are small JSON objects
MAX_NAME_CHARS = 255
MAX_PART_HEADER_BYTES = 16 * 1024  # a 10 000-character file name is capped, not a parse error
SPOOL_MAX_AGE_S = 24 * 3600.0  # far longer than any upload can take
FORM_OVERHEAD_BYTES = 1024 * 1024  # part headers, boundaries and text fields on top of the files
_DOCUMENT_FORMATS = {"docx", "pptx", "pdf"}  # extractors.pipeline refuses these above max_document_bytes
QUEUE_FULL_RETRY_AFTER_S = 15
QUEUE_UNAVAILABLE = "queue_unavailable"
INFLIGHT_RETRY_AFTER_S = 5

#: The extensions an upload's name may end in, and the sniffed format family each one promises:
#: exactly the formats the extractors read. Anything else is refused by name (415) before its bytes are read.
ALLOWED_EXTENSIONS: dict[str, str] = {
    "pdf": "pdf", "docx": "docx", "pptx": "pptx", "ppsx": "pptx", "zip": "zip",
    "txt": "text", "md": "text", "markdown": "text",
    "png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "webp": "image",
    **dict.fromkeys(("mp4", "m4v", "mov", "m4a", "mp3", "wav", "webm", "mkv", "avi", "ogg", "oga", "opus", "flac",
                     "aif", "aiff", "flv", "wmv", "wma"), "media"),
}
#: Refused extensions that have a better remedy than the list of allowed ones.
_EXTENSION_REMEDIES = {
    "doc": "Open it in Word and 'Save as' .docx.",
    "ppt": "Open it in PowerPoint and 'Save as' .pptx.",
    "odt": "Save it as .docx (Word) and upload that.",
    "odp": "Save it as .pptx (PowerPoint) and upload that.",
}


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_file_bytes: int
    max_submission_bytes: int  # sum of the files' sizes
    max_files: int


@dataclass(slots=True)
class SpooledFile:
    index: int  # 1-based position in the request: how errors name a file (never by its name)
    path: Path
    name: str  # sanitised display name
    size: int = 0
    sha256: str = ""
    detected: str = ""
    upload_id: str = ""  # set when the bytes came through an upload URL, not this request
    ext: str = ""  # the allowed extension the name ends in (lower case): the format family the content must be


@dataclass(slots=True)
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[SpooledFile] = field(default_factory=list)
    upload_ids: list[str] = field(default_factory=list)


def too_large(code: str, message: str) -> ApiError:
    return ApiError(413, code, message, "Split the submission or reduce the files' size (compress images, "
                    "trim media) and upload again.")


def invalid_multipart(message: str) -> ApiError:
    return ApiError(400, "invalid_multipart", message,
                    "Send multipart/form-data with one or more 'files' parts and the text fields.")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_name(raw: str, index: int) -> str:
    """A safe display name: last path segment, NFC, no control/format characters (bidi overrides), capped."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"})
    name = _CONTROL.sub("", name).strip().strip(".")
    if len(name) > MAX_NAME_CHARS:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[: MAX_NAME_CHARS - len(suffix)] + suffix
    return name or f"file-{index:03d}"


def extension_of(raw: str) -> str | None:
    """The allowed extension (lower case) ``raw`` ends in, or None.

    Validated as OWASP says: after decoding (one round of %XX), on the last path segment, and
    on both the whole name and what precedes a NUL; nothing is trimmed, so a trailing space or
    dot, or an invisible character after the extension, leaves no allowed extension.
    """
    decoded = unquote(raw, errors="strict") if "%" in raw else raw
    exts = []
    for candidate in (decoded, decoded.split("\x00", 1)[0]):
        stem, dot, ext = candidate.replace("\\", "/").rsplit("/", 1)[-1].rpartition(".")
        if not dot or not stem or ext.lower() not in ALLOWED_EXTENSIONS:
            return None
        exts.append(ext.lower())
    return exts[0]


def check_name(raw: str, index: int) -> str:
    """The allowed extension of file #``index``'s name, or 415 ``extension_not_allowed`` (a typed body)."""
    try:
        ext = extension_of(raw)
    except UnicodeDecodeError:
        ext = None
    if ext is not None:
        return ext
    segment = raw.replace("\\", "/").rsplit("/", 1)[-1]
    shown = segment.rpartition(".")[2].lower() if "." in segment else ""
    shown = shown if shown.isascii() and shown.isalnum() and len(shown) <= 8 else ""
    remedy = _EXTENSION_REMEDIES.get(shown) or ("Upload documents as " + ", ".join(
        f".{e}" for e in ALLOWED_EXTENSIONS if ALLOWED_EXTENSIONS[e] != "media") + ", or media files; name each "
        "file with its real extension.")
    what = f"'.{shown}' files are not accepted" if shown else "the name has no allowed extension"
    raise ApiError(415, "extension_not_allowed", f"file #{index}: {what}", remedy,
                   options=sorted(f".{e}" for e in ALLOWED_EXTENSIONS))


def _disposition(value: str) -> tuple[str, str | None]:
    """(field name, file name or None) from a Content-Disposition value; RFC 5987 ``filename*`` wins."""
    _, params = parse_options_header(value.encode("utf-8", "surrogateescape"))
    name = params.get(b"name", b"").decode("utf-8", "replace")
    filename: str | None = None
    if b"filename" in params:
        filename = params[b"filename"].decode("utf-8", "replace")
    star = re.search(r"filename\*\s*=\s*([^;]+)", value, re.IGNORECASE)
    if star:
        charset, _, rest = star.group(1).strip().strip('"').partition("'")
        _, _, encoded = rest.partition("'")
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            filename = unquote(encoded, encoding=charset or "utf-8", errors="strict")
    return name, filename


class _Receiver:
    """python-multipart callbacks: route each part to a spool file or a bounded text buffer."""

    def __init__(self, spool: Path, limits: UploadLimits, on_field: Callable[[str, str], None]) -> None:
        self.spool = spool
        self.limits = limits
        self.on_field = on_field
        self.upload = Upload()
        self.total = 0
        self.ended = False
        self._headers: dict[str, str] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._field: str | None = None
        self._text = bytearray()
        self._file: SpooledFile | None = None
        self._fh: IO[bytes] | None = None
        self._hash = hashlib.sha256()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self._headers = {}
        self._field = None
        self._text = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        key = self._hname.decode("latin-1").strip().lower()
        self._headers[key] = self._hvalue.decode("utf-8", "surrogateescape")
        self._hname, self._hvalue = bytearray(), bytearray()

    def headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition")
        if not disposition:
            raise invalid_multipart("a part has no Content-Disposition header")
        name, filename = _disposition(disposition)
        if name == FILE_FIELD:
            self._open_file(filename or "")
        elif name in FORM_FIELDS:
            if name in self.upload.fields:
                raise ApiError(422, "duplicate_field", f"field '{name}' is given more than once",
                               "Send each text field once.")
            self._field = name
        else:
            raise ApiError(422, "unknown_field", f"unexpected form field '{name[:64]}'",
                           "Send only the documented fields.", options=[FILE_FIELD, *FORM_FIELDS])

    def _open_file(self, filename: str) -> None:
        index = len(self.upload.files) + 1
        if index > self.limits.max_files:
            raise too_large("too_many_files", f"more than {self.limits.max_files} files in one submission")
        ext = check_name(filename, index)  # before a byte of the body is read or spooled
        path = self.spool / f"{index:03d}"
        self._file = SpooledFile(index, path, display_name(filename, index), ext=ext)
        self._fh = path.open("xb")
        self._hash = hashlib.sha256()
        self.upload.files.append(self._file)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]
        if self._file is not None and self._fh is not None:
            self._file.size += len(chunk)
            self.total += len(chunk)
            if self._file.size > self.limits.max_file_bytes:
                raise too_large("file_too_large", f"file #{self._file.index} is over the "
                                f"{self.limits.max_file_bytes}-byte limit per file")
            if self.total > self.limits.max_submission_bytes:
                raise too_large("submission_too_large", f"the files are over the "
                                f"{self.limits.max_submission_bytes}-byte limit per submission")
            self._fh.write(chunk)
            self._hash.update(chunk)
        elif self._field is not None:
            if len(self._text) + len(chunk) > MAX_FIELD_BYTES:
                raise ApiError(413, "field_too_large", f"field '{self._field}' is over {MAX_FIELD_BYTES} bytes",
                               "Keep roles and meta small (names and short values).")
            self._text += chunk

    def part_end(self) -> None:
        if self._file is not None and self._fh is not None:
            self._fh.close()
            self._fh = None
            self._file.sha256 = self._hash.hexdigest()
            self._file = None
        elif self._field is not None:
            try:
                value = self._text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(422, "invalid_field", f"field '{self._field}' is not UTF-8 text",
                               "Send text fields as UTF-8.") from exc
            self.upload.fields[self._field] = value
            self.on_field(self._field, value)  # fail fast: an unknown standard stops the upload here
            self._field = None

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def boundary_of(content_type: str | None) -> bytes:
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, "not_multipart", "the request body must be multipart/form-data",
                       "Send the files and fields as multipart/form-data (a browser form or curl -F).")
    return boundary


def make_spool(data_dir: Path) -> Path:
    root = data_dir / "spool"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=root))


def remove_spool(spool: Path) -> None:
    shutil.rmtree(spool, ignore_errors=True)


def sweep_spool(data_dir: Path, older_than_s: float = SPOOL_MAX_AGE_S) -> int:
    """Remove spool directories a crashed process left behind; age-based, so live uploads of
    other API processes sharing ``data_dir`` are never touched. Returns how many were removed."""
    root = data_dir / "spool"
    cutoff = time.time() - older_than_s
    removed = 0
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            with contextlib.suppress(OSError):
                if entry.name.startswith("upload-") and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
    return removed


async def receive(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    content_length: str | None,
    spool: Path,
    limits: UploadLimits,
    on_field: Callable[[str, str], None],
) -> Upload:
    """Parse a multipart body from ``chunks`` into ``spool``; raises ApiError (400/413/415/422)."""
    boundary = boundary_of(content_type)
    ceiling = limits.max_submission_bytes + FORM_OVERHEAD_BYTES + limits.max_files * (MAX_PART_HEADER_BYTES + 256)
    if content_length and content_length.isdigit() and int(content_length) > ceiling:
        raise too_large("submission_too_large", f"the request body is over the {ceiling}-byte limit")
    receiver = _Receiver(spool, limits, on_field)
    try:
        parser = MultipartParser(boundary, receiver.callbacks(),  # type: ignore[arg-type]
                                 max_header_size=MAX_PART_HEADER_BYTES)
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > ceiling:  # chunked bodies have no Content-Length: count what arrives
                raise too_large("submission_too_large", f"the request body is over the {ceiling}-byte limit")
            if chunk:
                # disk writes and hashing off the event loop, one chunk at a time
                await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise invalid_multipart(f"malformed multipart body ({type(exc).__name__})") from exc
    finally:
        receiver.close()
    if not receiver.ended:
        raise invalid_multipart("the multipart body ended before its closing boundary")
    return receiver.upload


def parse_upload_ids(raw: str | None, max_files: int) -> list[str]:
    """The ``uploads`` field: a JSON list of distinct upload ids (checked against storage later)."""
    if raw is None or not raw.strip():
        return []
    invalid = ApiError(422, "invalid_uploads", "'uploads' must be a JSON list of distinct upload ids",
                       'Send uploads like ["<upload_id>", ...] with the ids from POST /v1/uploads.')
    try:
        ids = json.loads(raw)
    except ValueError as exc:
        raise invalid from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise invalid
    if len(ids) > max_files:
        raise too_large("too_many_files", f"more than {max_files} files in one submission")
    return ids


_REFUSED_STATUS = {ErrorCode.UNSUPPORTED_FORMAT: 415, ErrorCode.TOO_LARGE: 413}


def _refused(f: SpooledFile, exc: ExtractionError) -> ApiError:
    return ApiError(_REFUSED_STATUS.get(exc.code, 422), str(exc.code), f"file #{f.index}: {exc.message}", exc.remedy)


def content_mismatch(f: SpooledFile, found: str) -> ApiError:
    return ApiError(422, "content_mismatch", f"file #{f.index}: content does not match the file name "
                    f"(named .{f.ext}, but the content is {found})",
                    "Upload the file under its real extension (save it in the format its name says).")


def sniff_files(upload: Upload, limits: Limits) -> None:
    """Refuse, file by file, what extraction would refuse outright; sets ``detected``. Blocking: run in a thread.

    The content decides the format; the extension must name that format's family (else 422
    ``content_mismatch``). The name is passed to the sniffer only for text, where it tells
    Markdown from plain text: passed for a binary extension it would turn "HTML named .pdf"
    into a vaguer ``corrupt``. A PDF also gets the parser-free byte preflight (header,
    ``startxref``, xref loop) the worker would run, so a truncated one is refused now, not queued.
    """
    for f in upload.files:
        if not f.ext:  # a staged upload: its name was checked when the upload URL was made
            f.ext = check_name(f.name, f.index)
        family = ALLOWED_EXTENSIONS[f.ext]
        try:
            found = sniff(f.path, limits, f.name if family == "text" else "")
            if found.format in _DOCUMENT_FORMATS and f.size > limits.max_document_bytes:
                raise ExtractionError(ErrorCode.TOO_LARGE,
                                      f"document is {f.size} bytes (limit {limits.max_document_bytes})")
            if found.format == "zip":  # a portfolio: its directory is checked now, members by the worker
                zipscan.open_zip(str(f.path), limits).close()
            if found.format == "pdf":
                from extractors.pdf_preflight import preflight  # imports pypdf; only the byte checks run here

                preflight(f.path, limits)
        except ExtractionError as exc:
            raise _refused(f, exc) from exc
        except Exception as exc:  # a sniffer bug on hostile bytes is a refusal, never a 500 with a traceback
            raise _refused(f, ExtractionError(ErrorCode.CORRUPT, "the file could not be identified")) from exc
        if found.format != family:
            raise content_mismatch(f, found.format)
        f.detected = found.format


# --------------------------------------------------------------------------- from upload to queued submission


def request_hash(upload: Upload) -> str:
    """What "the same request" means for an Idempotency-Key: the text fields and each file's name and sha256.

    Files sent through upload URLs count by upload id: an id is single-use and its bytes are fixed
    once a submission consumed it, so a retry hashes the same after the staged copy is gone.
    """
    canon: dict[str, Any] = {
        "fields": {k: upload.fields.get(k) for k in TEXT_FIELDS},
        "files": [[f.name, f.sha256] for f in upload.files if not f.upload_id],
    }
    if upload.upload_ids:  # absent otherwise, so hashes remembered before upload URLs existed still match
        canon["uploads"] = upload.upload_ids
    return hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


class Submissions:
    """Receive, validate, store and queue one submission; the order is what makes a rejection store nothing.

    1. stream the body to a spool directory (limits as bytes arrive), then the files named in
       ``uploads`` from storage (``service.presigned``: a retry of a consumed keyed request replays);
    2. validate the fields, the callback URL and every file's content;
    3. copy each file to storage under a generated key, then create the record (queued);
    4. with an Idempotency-Key, remember the response (first writer wins; a replay or a
       concurrent twin rolls its own objects and record back and answers with the first);
    5. enqueue. If the queue is down the record is failed (``queue_unavailable``), never
       left queued for ever, and the caller gets 503. Then the uploads' staging objects are deleted.

    Before any of it: the in-flight and queue caps (503 / 429, nothing read or stored).

    Idempotency never replays a 503: a retry whose key names a submission failed
    ``queue_unavailable`` (its first attempt got 503) queues that same submission instead, and
    answers 202 as an execution, not a replay. Refusals (4xx) are never remembered at all.
    """

    def __init__(self, settings: Settings, state: StateStore, storage: Storage, enqueue: Callable[[str], None],
                 limits: Limits, base_url: str, staging: Staging, queue_depth: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.state = state
        self.storage = storage
        self.enqueue = enqueue
        self.limits = limits
        self.base_url = base_url
        self.staging = staging
        self.queue_depth = queue_depth
        self.upload_limits = UploadLimits(settings.max_file_bytes, settings.max_submission_bytes, settings.max_files)
        sweep_spool(settings.data_dir)

    async def create(
        self, tenant: str, chunks: AsyncIterator[bytes], content_type: str | None, content_length: str | None,
        idempotency_key: str | None,
    ) -> tuple[int, dict[str, Any], bool]:
        """(status code, body, replayed) or ApiError."""
        with self.staging.inflight.slot():
            await self._check_queue()
            return await self._create(tenant, chunks, content_type, content_length, idempotency_key)

    async def _check_queue(self) -> None:
        """429 ``queue_full`` while ``max_queued`` submissions wait in the broker queue (unknown depth: no refusal).

        The broker's count is global (every tenant) and cheap (one LLEN on Redis). Submissions
        being received when the cap is reached still go in: the cap is soft by at most the
        in-flight upload cap, which bounds them.
        """
        cap = self.settings.max_queued
        if not cap or self.queue_depth is None:
            return
        depth = await run_in_threadpool(self.queue_depth)
        if depth >= cap:
            raise ApiError(429, "queue_full", f"{depth} submissions are waiting to be checked (the cap is {cap})",
                           "Wait for the number of seconds in Retry-After and submit again.",
                           headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)})

    async def _create(
        self, tenant: str, chunks: AsyncIterator[bytes], content_type: str | None, content_length: str | None,
        idempotency_key: str | None,
    ) -> tuple[int, dict[str, Any], bool]:
        spool = await run_in_threadpool(make_spool, self.settings.data_dir)
        try:
            upload = await receive(chunks, content_type, content_length, spool, self.upload_limits,
                                   check_field_early)
            upload.upload_ids = parse_upload_ids(upload.fields.get(UPLOADS_FIELD), self.upload_limits.max_files)
            if not upload.files and not upload.upload_ids:
                raise ApiError(422, "no_files", "the submission has no files",
                               "Attach one or more documents as 'files' parts, or name them in 'uploads'.")
            sel = SubmissionForm.parse(upload.fields)
            if sel.callback_url and not await run_in_threadpool(
                    is_allowed_target, sel.callback_url, self.settings.webhook_allow_private):
                raise ApiError(422, "callback_refused", "callback_url must be http(s) to a public address",
                               "Use a public https URL (private, loopback and link-local addresses are refused).")
            staged = await run_in_threadpool(self.staging.load, tenant, upload.upload_ids)
            replay = self.staging.replay(staged, idempotency_key, request_hash(upload))
            if replay is not None:  # a retry naming uploads its first attempt already consumed
                status, body, replayed = replay
            else:
                await run_in_threadpool(self.staging.fetch, tenant, staged, upload, spool, self.upload_limits)
                await run_in_threadpool(sniff_files, upload, self.limits)
                status, body, replayed = await run_in_threadpool(self._commit, tenant, upload, sel, idempotency_key)
                await run_in_threadpool(self.staging.consume, tenant, staged, idempotency_key, request_hash(upload),
                                        status, body)
        finally:
            await run_in_threadpool(remove_spool, spool)
        submission_id_var.set(body["id"])
        return status, body, replayed

    def _accepted(self, sid: str) -> dict[str, Any]:
        url = f"{self.base_url}/v1/submissions/{sid}"
        return {"id": sid, "status": str(Status.QUEUED), "status_url": url, "report_url": f"{url}/report"}

    def _commit(
        self, tenant: str, upload: Upload, sel: SubmissionForm, key: str | None
    ) -> tuple[int, dict[str, Any], bool]:
        sid = uuid.uuid4().hex
        prefix = submission_prefix(tenant, sid)
        body = self._accepted(sid)
        files = self._store(prefix, upload)
        now = time.time()
        rec = SubmissionRecord(id=sid, tenant=tenant, profile=sel.profile, method=sel.method, files=files,
                               roles=sel.roles, meta=sel.meta, callback_url=sel.callback_url,
                               created_at=now, updated_at=now)
        try:
            self.state.create(rec)
        except Exception as exc:
            self._discard(prefix)
            raise unavailable("state_unavailable", "the state store") from exc
        if key:
            try:
                prior = self.state.remember_request(tenant, key, request_hash(upload),
                                                    {"status_code": 202, "body": body})
            except Exception as exc:
                self._rollback(rec)
                raise unavailable("state_unavailable", "the state store") from exc
            if prior is not None:
                self._rollback(rec)
                if prior[0] != request_hash(upload):
                    raise idempotency_conflict()
                first = dict(prior[1]["body"])
                if self._resume(tenant, str(first.get("id", ""))):
                    return 202, first, False
                return int(prior[1].get("status_code", 202)), first, True
        self._enqueue_or_fail(sid)
        event("submission_accepted", tenant=tenant, submission_id=sid, files=len(files),
              bytes=sum(f.size for f in files), profile=sel.profile, method=sel.method)
        return 202, body, False

    def _enqueue_or_fail(self, sid: str) -> None:
        """Enqueue, or fail the record ``queue_unavailable`` (never queued for ever) and answer 503."""
        try:
            self.enqueue(sid)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.state.transition(sid, frozenset({Status.QUEUED}), Status.FAILED, error_code=QUEUE_UNAVAILABLE,
                                      error_message="the submission could not be queued for checking",
                                      remedy="Submit it again in a few minutes.", finished_at=time.time())
            raise unavailable(QUEUE_UNAVAILABLE, "the processing queue") from exc

    def _resume(self, tenant: str, sid: str) -> bool:
        """Queue again the keyed submission whose first attempt answered 503 ``queue_unavailable``.

        True if this call queued it (the caller answers 202 as an execution); False if there is
        nothing to resume (the first attempt succeeded: replay) or a concurrent retry resumed it.
        Its objects were kept when it failed, and its request hash equals this one's: same files.
        """
        rec = self.state.get(sid, tenant) if sid else None
        if rec is None or rec.status is not Status.FAILED or rec.error_code != QUEUE_UNAVAILABLE:
            return False
        if not self.state.transition(sid, frozenset({Status.FAILED}), Status.QUEUED, error_code=None,
                                     error_message=None, remedy=None, finished_at=None):
            return False
        self._enqueue_or_fail(sid)
        event("submission_resumed", tenant=tenant, submission_id=sid)
        return True

    def _store(self, prefix: str, upload: Upload) -> list[StoredFile]:
        """Copy every spooled file to storage under a generated key; all or nothing."""
        stored: list[StoredFile] = []
        try:
            for f in upload.files:
                key = f"{prefix}originals/{f.index:03d}"
                with f.path.open("rb") as fh:
                    self.storage.put(key, fh, length=f.size, content_type="application/octet-stream")
                stored.append(StoredFile(key=key, name=f.name, size=f.size, sha256=f.sha256, detected=f.detected))
        except Exception as exc:
            self._discard(prefix)
            raise unavailable("storage_unavailable", "object storage") from exc
        return stored

    def _discard(self, prefix: str) -> None:
        try:
            self.storage.delete_prefix(prefix)
        except Exception:  # logged: an orphan under a prefix no record names; retention cleanup finds it
            event("orphan_objects", logging.WARNING, prefix=prefix)

    def _rollback(self, rec: SubmissionRecord) -> None:
        with contextlib.suppress(Exception):
            self.state.delete(rec.id, rec.tenant)
        self._discard(submission_prefix(rec.tenant, rec.id))


class Inflight:
    """Counts the upload bodies one API process is receiving; past ``cap`` a new one gets 503 at once.

    Why refuse rather than queue: a waiting upload still holds its connection and, once
    admitted, a spool directory; a client told 503 + Retry-After holds nothing. Per process,
    as each replica's disk and sockets are its own. ``cap`` 0 means no cap.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self.cap and self.count >= self.cap:
                raise ApiError(503, "too_many_uploads", f"this server is already receiving {self.count} uploads",
                               "Wait for the number of seconds in Retry-After and send the request again.",
                               headers={"Retry-After": str(INFLIGHT_RETRY_AFTER_S)})
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


def idempotency_conflict() -> ApiError:
    return ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with a different request",
                    "Use a new Idempotency-Key for a different submission.")


def unavailable(code: str, what: str) -> ApiError:
    return ApiError(503, code, f"{what} is unavailable", "Try again in a minute.", headers={"Retry-After": "30"})
