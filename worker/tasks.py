"""Celery tasks: check a submission, deliver its webhook, purge expired data.

Why every task is idempotent: with late acks a message can arrive twice (a worker
killed after finishing but before acking; Redis redelivery after the visibility
timeout). The state store's compare-and-set ``transition`` decides who finishes a
submission, so a duplicate is a no-op and nobody reports twice.

Why attempts are counted in the state store: a worker killed mid-task (segfault,
OOM, SIGKILL) never gets to update its message, and ``task_reject_on_worker_lost``
requeues it. Counting before the work starts is the only way a file that kills
the worker every time ends ``failed`` instead of looping (anchors C2, test 25).

Messages carry the submission id only; files come from storage by key.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded, TimeLimitExceeded

from extractors import Limits, Result
from gatecheck.cli import to_json
from service.contracts import TERMINAL, StateStore, Status, Storage, StoredFile, SubmissionRecord, submission_prefix
from service.settings import Settings
from service.state import StateUnavailable, state_from_env
from service.storage import StorageError, storage_from_env
from validators.api import check_paths
from validators.profile import Profile, Role, all_profiles
from validators.runner import Report

from .celery_app import app, broker_dirs, configure, current_settings, ensure_broker_dirs

log = logging.getLogger("gatecheck.worker")

ACTIVE = frozenset({Status.QUEUED, Status.PROCESSING})
COPY_CHUNK = 1024 * 1024
JOB_PREFIX = "job-"
#: A job folder older than this was left by a killed worker (far beyond any time limit).
STALE_JOB_S = 24 * 3600
WEBHOOK_TIMEOUT_S = 10
WEBHOOK_MAX_RETRIES = 8
WEBHOOK_USER_AGENT = "gatecheck-webhook/1"
#: Backoff between retries of an unexpected error, seconds (attempt 1, 2, ...).
RETRY_BACKOFF_S = (5, 30, 120)
#: Retries when the state store itself is unreachable (no attempt counter to use).
INFRA_RETRIES = 5

# -- services -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Services:
    settings: Settings
    state: StateStore
    storage: Storage
    pid: int


_services: Services | None = None


def bind(settings: Settings, state: StateStore, storage: Storage) -> None:
    """Use these backends in this process (tests, and ``gatecheck serve``'s API process)."""
    global _services
    configure(settings)
    _services = Services(settings, state, storage, os.getpid())


def services() -> Services:
    """The backends from the environment, built lazily once per process.

    Per process because prefork children must not share a SQLite or Redis
    connection their parent opened before forking.
    """
    global _services
    if _services is None or _services.pid != os.getpid():
        settings = current_settings()
        _services = Services(settings, state_from_env(), storage_from_env(), os.getpid())
    return _services


def enqueue(submission_id: str) -> None:
    """What the API calls after storing the originals: one message with the id only."""
    ensure_broker_dirs(current_settings())
    process_submission.delay(submission_id)


def _event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON log line with ids and codes: never file names or document text (UK GDPR)."""
    log.log(level, name, extra={"fields": fields})


# -- failures -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    remedy: str


class JobFailed(Exception):
    """An expected failure: the submission cannot be checked as it stands; retrying will not help."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.code)
        self.failure = failure


def worker_crashed(attempts: int) -> Failure:
    return Failure(
        "worker_crashed",
        f"The checker stopped unexpectedly {attempts - 1} times on this submission; a file may be damaged "
        "or too complex to open.",
        "Check each file opens normally, re-save or export it again (e.g. Save As .docx or PDF) and resubmit. "
        "If it keeps failing, contact support quoting the submission id.",
    )


def timed_out(limit_s: int) -> Failure:
    return Failure(
        "timeout",
        f"Checking took longer than the {limit_s} s limit.",
        "Split very large portfolios, compress or link long videos instead of embedding them, and resubmit.",
    )


INTERNAL_ERROR = Failure(
    "internal_error",
    "An unexpected error stopped the check.",
    "Resubmit later; if it happens again, contact support quoting the submission id.",
)


def _fail(svc: Services, submission_id: str, failure: Failure) -> bool:
    """Record a terminal failure (once) and notify; False if something else already finished it."""
    finished_at = time.time()
    done = svc.state.transition(
        submission_id, ACTIVE, Status.FAILED, error_code=failure.code, error_message=failure.message,
        remedy=failure.remedy, finished_at=finished_at, progress="",
    )
    if done:
        _event("submission_failed", logging.WARNING, submission_id=submission_id, code=failure.code)
        _count_task(svc, submission_id, Status.FAILED, None, finished_at)
        _after_terminal(svc, submission_id)
    return done


def _after_terminal(svc: Services, submission_id: str) -> None:
    rec = svc.state.get(submission_id)
    if rec is not None and rec.callback_url:
        deliver_webhook.delay(submission_id)


def _count_task(svc: Services, submission_id: str, status: Status, outcome: str | None, finished_at: float,
                started_at: float | None = None) -> None:
    """Add a finished task to the metrics in the state store (read by the API's /metrics).

    Only the caller whose terminal ``transition`` returned True calls this, so each
    submission is counted once however often its message is delivered. Metrics are
    best effort: a failure here is logged and never fails or retries the task.
    ``started_at`` unknown (a failure path): read from the record; a submission that
    never started (crashed before its PROCESSING transition) counts as 0 s.
    """
    try:
        if started_at is None:
            rec = svc.state.get(submission_id)
            started_at = rec.started_at if rec is not None else None
        duration = finished_at - started_at if started_at else 0.0
        svc.state.record_task(outcome or "", status, max(0.0, duration))
    except Exception as exc:
        _event("task_metrics_error", logging.WARNING, submission_id=submission_id, exception=type(exc).__name__)


# -- process_submission ---------------------------------------------------------------------------------


class SubmissionTask(Task):  # type: ignore[misc]
    """Records failures Celery sees but the task body cannot: the hard time limit.

    A hard time limit kills the pool child, so no ``except`` in the task runs; the
    worker's main process calls ``on_failure`` with ``TimeLimitExceeded`` and acks
    the message (``task_acks_on_failure_or_timeout``). Without this the submission
    would stay ``processing`` for ever. Any other exception reaching here (retries
    exhausted while the state store was down) becomes ``internal_error``.
    """

    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                   einfo: Any) -> None:
        submission_id = args[0] if args else kwargs.get("submission_id")
        if not submission_id:
            return
        limit = current_settings().task_time_limit_s
        failure = timed_out(limit) if isinstance(exc, TimeLimitExceeded) else INTERNAL_ERROR
        try:
            _fail(services(), str(submission_id), failure)
        except Exception:
            _event("fail_record_error", logging.ERROR, submission_id=submission_id, code=failure.code)


@app.task(bind=True, base=SubmissionTask, name="worker.tasks.process_submission", max_retries=None)
def process_submission(self: Task, submission_id: str) -> str:
    """Check one submission; safe to run any number of times for the same id."""
    try:
        return _process(self, services(), submission_id)
    except SoftTimeLimitExceeded:
        _fail(services(), submission_id, timed_out(current_settings().task_time_limit_s))
        return "timeout"
    except Retry:
        raise
    except Exception as exc:  # state store or storage unreachable outside the counted attempt
        if self.request.called_directly or self.request.retries >= INFRA_RETRIES:
            raise
        _event("infra_retry", logging.WARNING, submission_id=submission_id, exception=type(exc).__name__)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries + 1)) from exc


def _process(task: Task, svc: Services, submission_id: str) -> str:
    rec = svc.state.get(submission_id)
    if rec is None:
        _event("submission_gone", submission_id=submission_id)
        return "gone"
    if rec.status in TERMINAL:
        _event("duplicate_delivery", submission_id=submission_id, status=str(rec.status))
        return "duplicate"
    try:
        attempts = svc.state.add_attempt(submission_id)
    except KeyError:  # deleted by its owner since get()
        return "gone"
    if attempts > svc.settings.max_attempts:
        _fail(svc, submission_id, worker_crashed(attempts))
        return "worker_crashed"
    started_at = time.time()
    if not svc.state.transition(submission_id, ACTIVE, Status.PROCESSING, started_at=started_at,
                                progress="checking"):
        return "finished_elsewhere"
    _event("submission_started", submission_id=submission_id, attempt=attempts)
    try:
        _test_only_hooks()
        fields = _check(svc, rec)
    except JobFailed as exc:
        _fail(svc, submission_id, exc.failure)
        return exc.failure.code
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        return _unexpected(task, svc, submission_id, attempts, exc)
    if not svc.state.transition(submission_id, frozenset({Status.PROCESSING}), Status.DONE, **fields):
        _event("finished_elsewhere", submission_id=submission_id)
        return "finished_elsewhere"
    _event("submission_done", submission_id=submission_id, outcome=fields["outcome"], attempt=attempts)
    _count_task(svc, submission_id, Status.DONE, fields["outcome"], fields["finished_at"], started_at)
    _after_terminal(svc, submission_id)
    return "done"


def _unexpected(task: Task, svc: Services, submission_id: str, attempts: int, exc: Exception) -> str:
    """A bug or an outage mid-check: retry with backoff while attempts remain, then ``internal_error``."""
    _event("submission_error", logging.ERROR, submission_id=submission_id, attempt=attempts,
           exception=type(exc).__name__)
    if attempts >= svc.settings.max_attempts:
        _fail(svc, submission_id, INTERNAL_ERROR)
        return INTERNAL_ERROR.code
    svc.state.update(submission_id, progress="retrying")
    # Raises Retry in a worker; re-raises ``exc`` on a plain function call (nothing to reschedule).
    raise task.retry(exc=exc, countdown=_backoff(attempts))


def _backoff(attempt: int) -> int:
    return RETRY_BACKOFF_S[max(1, min(attempt, len(RETRY_BACKOFF_S))) - 1]


def _test_only_hooks() -> None:
    """TEST-ONLY fault injection, inert unless a test sets these variables on a worker process.

    ``GATECHECK_TEST_SLEEP_S``: pause before checking, so a fault test can kill the
    worker mid-task deterministically. ``GATECHECK_TEST_DEAF=1``: pause with SIGUSR1
    (billiard's soft-time-limit signal) blocked, like a parser stuck in C code, so
    only the hard limit can stop it. ``GATECHECK_TEST_CRASH=1``: the process
    SIGKILLs itself, a stand-in for a parser that segfaults on every try.
    """
    pause = float(os.environ.get("GATECHECK_TEST_SLEEP_S") or 0)
    if pause > 0:
        deaf = {signal.SIGUSR1} if os.environ.get("GATECHECK_TEST_DEAF") == "1" else set()
        signal.pthread_sigmask(signal.SIG_BLOCK, deaf)
        try:
            time.sleep(pause)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, deaf)
    if os.environ.get("GATECHECK_TEST_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)


# -- the check itself -----------------------------------------------------------------------------------


class _Upload(os.PathLike[str]):
    """A downloaded original: opened at its generated temp path, reported under the user's name.

    ``validators.api.check_paths`` (via ``extractors.iter_extract``) opens
    ``Path(item)``, which follows ``__fspath__``, and labels documents with
    ``str(item)``. So the report says ``report.docx`` (and roles are detected from
    that name, exactly as for the CLI) while the file on disk is ``000.docx``: the
    user's name never reaches the file system. tests/test_worker.py pins this.
    """

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return self.display


def safe_suffix(name: str) -> str:
    """The user's extension when it is short and alphanumeric (the sniffer reads it), else none."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix[1:]
    if suffix and len(suffix) <= 5 and suffix.isascii() and suffix.isalnum():
        return "." + suffix.lower()
    return ""


def _check(svc: Services, rec: SubmissionRecord) -> dict[str, Any]:
    """Download, check, store report + extract model; returns the DONE transition's fields."""
    profile, roles = _resolve(rec)
    with tempfile.TemporaryDirectory(prefix=JOB_PREFIX, dir=work_dir(svc.settings)) as tmp:
        inputs = [_download(svc.storage, f, Path(tmp), n) for n, f in enumerate(rec.files)]
        paths = cast(list[str | Path], inputs)  # os.PathLike: see _Upload
        # sandbox: a parser hang, memory blow-up or native crash fails that file, never this worker.
        report = check_paths(paths, profile, rec.method, roles=roles, meta=dict(rec.meta),
                             limits=Limits.from_env(), sandbox=True)
    prefix = submission_prefix(rec.tenant, rec.id)
    extracted_key, report_key = prefix + "extracted.json", prefix + "report.json"
    _put_json(svc.storage, extracted_key, extract_model(report))
    _put_json(svc.storage, report_key, report.to_dict())  # written last: its presence means complete
    return {"outcome": report.outcome, "report_key": report_key, "extracted_key": extracted_key,
            "finished_at": time.time(), "progress": ""}


def work_dir(settings: Settings) -> Path:
    """Where originals are downloaded: under the data dir, not /tmp, which is often RAM (tmpfs)."""
    path = settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _resolve(rec: SubmissionRecord) -> tuple[Profile, dict[str, Role]]:
    """The record's profile and role overrides, or an expected failure if they no longer exist."""
    profile = all_profiles().get(rec.profile)
    if profile is None:
        raise JobFailed(Failure("profile_unavailable", f"The standard profile {rec.profile!r} is no longer offered.",
                                "Resubmit against a current profile (see GET /v1/standards)."))
    if rec.method not in profile.methods:
        raise JobFailed(Failure("method_unavailable", f"{rec.profile} no longer has method {rec.method!r}.",
                                f"Resubmit with one of: {', '.join(profile.methods)}."))
    try:
        roles = {name: Role(role) for name, role in rec.roles.items()}
    except ValueError as exc:
        raise JobFailed(Failure("invalid_role", str(exc), f"Use one of: {', '.join(r.value for r in Role)}.")) from exc
    return profile, roles


def _download(storage: Storage, f: StoredFile, tmp: Path, n: int) -> _Upload:
    """Stream one original to a generated name, verifying the checksum taken at upload."""
    missing = JobFailed(Failure("file_missing", f"The uploaded file {f.name!r} is no longer in storage.",
                                "Upload the submission again."))
    if not storage.exists(f.key):
        raise missing
    target = tmp / f"{n:03d}{safe_suffix(f.name)}"
    digest = hashlib.sha256()
    try:
        with contextlib.closing(storage.get(f.key)) as src, target.open("wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
    except StorageError as exc:  # deleted between exists() and get(); "unavailable" is retried
        if exc.code == "not_found":
            raise missing from exc
        raise
    if f.sha256 and digest.hexdigest() != f.sha256:
        raise JobFailed(Failure("file_corrupt", f"The stored copy of {f.name!r} does not match what was uploaded.",
                                "Upload the submission again."))
    return _Upload(target, f.name)


def extract_model(report: Report) -> dict[str, Any]:
    """The located document model behind a report, in the CLI's ``gatecheck extract`` JSON schema."""
    docs = [d.doc for d in report.submission.documents]
    return to_json(Result(documents=docs, errors=list(report.submission.errors)), blocks=True)


def _put_json(storage: Storage, key: str, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")
    storage.put(key, io.BytesIO(data), len(data), "application/json")


# -- webhooks -------------------------------------------------------------------------------------------


class WebhookRetryable(Exception):
    """The receiver may succeed later: 5xx, 429, or no answer."""


def webhook_payload(rec: SubmissionRecord, public_url: str) -> dict[str, Any]:
    return {
        "id": rec.id,
        "status": str(rec.status),
        "outcome": rec.outcome if rec.status is Status.DONE else None,
        "report_url": f"{public_url.rstrip('/')}/v1/submissions/{rec.id}/report",
    }


@app.task(
    bind=True, name="worker.tasks.deliver_webhook",
    autoretry_for=(WebhookRetryable, OSError, http.client.HTTPException, StateUnavailable),
    retry_backoff=True, retry_backoff_max=600, retry_jitter=True, max_retries=WEBHOOK_MAX_RETRIES,
)
def deliver_webhook(self: Task, submission_id: str) -> str:
    """POST the terminal status, signed with the tenant's secret, to the submission's callback URL.

    The target is checked again here (the API checked it at submission time) and
    the connection goes to the very address that passed, so a DNS change in
    between (rebinding) cannot point us at Redis, MinIO or a metadata service.
    Redirects are never followed, for the same reason.
    """
    from service import webhooks

    svc = services()
    rec = svc.state.get(submission_id)
    if rec is None or not rec.callback_url or rec.status not in TERMINAL:
        return "skipped"
    addresses = webhooks.allowed_addresses(rec.callback_url, svc.settings.webhook_allow_private)
    if not addresses:
        _event("webhook_refused", logging.WARNING, submission_id=submission_id)
        return "refused"
    secret = svc.state.webhook_secret(rec.tenant)
    if not secret:
        _event("webhook_no_secret", logging.WARNING, submission_id=submission_id)
        return "no_secret"
    body = json.dumps(webhook_payload(rec, svc.settings.public_url), separators=(",", ":")).encode()
    headers = webhooks.signature_headers(secret, body) | {"User-Agent": WEBHOOK_USER_AGENT}
    status = post_pinned(rec.callback_url, addresses[0], body, headers, WEBHOOK_TIMEOUT_S)
    _event("webhook_sent", submission_id=submission_id, http_status=status, attempt=self.request.retries + 1)
    if status >= 500 or status == 429:
        raise WebhookRetryable(f"receiver answered {status}")
    return str(status)


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a pre-checked address, with the URL's host in the Host header."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address; SNI and certificate checks still use the URL's host name."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_pinned(url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url`` via ``address``; returns the HTTP status (redirects are not followed)."""
    parts = urlsplit(url)
    cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = cls(parts.hostname or "", parts.port, address, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", target, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(64 * 1024)
        return resp.status
    finally:
        conn.close()


# -- retention ------------------------------------------------------------------------------------------


@app.task(name="worker.tasks.purge_expired")
def purge_expired() -> int:
    """Delete submissions (records and objects) older than ``retention_days``; returns how many.

    Objects go first: a crash in between leaves a record that the next run
    deletes again, never an object no record points at (UK GDPR storage limitation).
    """
    svc = services()
    cutoff = time.time() - svc.settings.retention_days * 86400
    count = 0
    for rec in svc.state.expired(cutoff):  # both stores allow deleting while iterating
        svc.storage.delete_prefix(submission_prefix(rec.tenant, rec.id))
        svc.state.delete(rec.id, rec.tenant)
        count += 1
    _prune_broker(svc.settings, cutoff)
    _prune_work(svc.settings)
    _event("purged", count=count)
    return count


def _prune_work(settings: Settings) -> None:
    """Download folders of workers killed mid-job (SIGKILL skips TemporaryDirectory's cleanup)."""
    root = settings.data_dir / "work"
    if not root.is_dir():
        return
    stale = time.time() - STALE_JOB_S
    for path in root.glob(JOB_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and path.stat().st_mtime < stale:
                shutil.rmtree(path, ignore_errors=True)


def _prune_broker(settings: Settings, cutoff: float) -> None:
    """Embedded broker: drop consumed message files (kept for debugging) older than the cutoff."""
    if not settings.embedded:
        return
    for path in _files(broker_dirs(settings.data_dir)["processed"]):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from (p for p in folder.iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.tasks purge-expired``: run retention from cron, without a beat process."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["purge-expired"]:
        sys.stderr.write("usage: python -m worker.tasks purge-expired\n")
        return 2
    print(purge_expired())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
