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
import uuid
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
from service.erasure import RETENTION, erase_submission, sweep_orphans
from service.presigned import sweep_abandoned
from service.settings import Settings
from service.state import StateUnavailable, state_from_env
from service.storage import StorageError, storage_from_env
from validators.api import check_paths
from validators.profile import Profile, Role, all_profiles
from validators.runner import Report

from . import avscan
from .celery_app import app, broker_dirs, configure, current_settings, ensure_broker_dirs, lease_s, reconcile_after_s

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
#: Storage or state down mid-check: retries (not counted as attempts) and their backoff cap, seconds.
OUTAGE_RETRIES = 20
OUTAGE_BACKOFF_CAP_S = 30

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
    # one run at a time (catalogue 26): a conditional write, counting the attempt in the same step
    started_at = time.time()
    takeover = rec.owner if rec.status is Status.PROCESSING and _holder_dead(rec.owner) else None
    attempts = svc.state.claim(submission_id, _owner(task), started_at + lease_s(svc.settings.task_time_limit_s),
                               now=started_at, takeover=takeover, progress="checking")
    if attempts is None:
        return _held_elsewhere(task, svc, submission_id)
    if attempts > svc.settings.max_attempts:
        _fail(svc, submission_id, worker_crashed(attempts))
        return "worker_crashed"
    _event("submission_started", submission_id=submission_id, attempt=attempts)
    try:
        _test_only_hooks()
        fields = _check(svc, rec)
    except JobFailed as exc:
        _fail(svc, submission_id, exc.failure)
        return exc.failure.code
    except SoftTimeLimitExceeded:
        raise
    except (StorageError, StateUnavailable) as exc:
        lasting = (task.request.retries or 0) >= OUTAGE_RETRIES
        if lasting or (isinstance(exc, StorageError) and exc.code != "unavailable"):
            return _unexpected(task, svc, submission_id, attempts, exc)
        return _outage(task, svc, submission_id, attempts, exc)
    except Exception as exc:
        return _unexpected(task, svc, submission_id, attempts, exc)
    if not svc.state.transition(submission_id, frozenset({Status.PROCESSING}), Status.DONE, **fields):
        if svc.state.get(submission_id) is None:  # erased while we checked: our report must not outlive it
            svc.storage.delete_prefix(submission_prefix(rec.tenant, rec.id))
            _event("submission_gone", submission_id=submission_id)
            return "gone"
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
    svc.state.update(submission_id, progress="retrying", lease_until=None)  # the retry may run anywhere
    # Raises Retry in a worker; re-raises ``exc`` on a plain function call (nothing to reschedule).
    raise task.retry(exc=exc, countdown=_backoff(attempts))


def _backoff(attempt: int) -> int:
    return RETRY_BACKOFF_S[max(1, min(attempt, len(RETRY_BACKOFF_S))) - 1]


def _outage(task: Task, svc: Services, submission_id: str, attempts: int, exc: Exception) -> str:
    """Storage or the state store went away mid-check (catalogue 31): not the file's fault.

    The submission goes back to QUEUED (nothing stuck in PROCESSING) with its attempt given back, and
    the message is retried with capped exponential backoff (1, 2, 4 ... OUTAGE_BACKOFF_CAP_S s, like
    boto3's standard mode). Past OUTAGE_RETRIES it counts as an unexpected error, so attempts bound it.
    """
    retries = int(task.request.retries or 0)
    countdown = min(OUTAGE_BACKOFF_CAP_S, 2 ** retries)
    _event("dependency_unavailable", logging.WARNING, submission_id=submission_id, attempt=attempts,
           exception=type(exc).__name__, retry=retries + 1, countdown_s=countdown)
    svc.state.transition(submission_id, frozenset({Status.PROCESSING}), Status.QUEUED, attempts=attempts - 1,
                         owner="", lease_until=None, started_at=None, progress="waiting_for_storage")
    if task.request.called_directly:
        return "deferred"  # QUEUED: the reconciler sends it again
    raise task.retry(countdown=countdown)


def _held_elsewhere(task: Task, svc: Services, submission_id: str) -> str:
    """The claim failed: finished, erased, or another live run holds the lease (a duplicate message).

    A duplicate waits for the lease rather than being dropped: if the holder dies without its
    message coming back (a lost message), this one takes over once the lease expires.
    """
    rec = svc.state.get(submission_id)
    if rec is None:
        return "gone"
    if rec.status in TERMINAL:
        _event("duplicate_delivery", submission_id=submission_id, status=str(rec.status))
        return "duplicate"
    wait = (rec.lease_until or 0) - time.time() + 1
    _event("already_processing", submission_id=submission_id, wait_s=round(wait, 1))
    if task.request.called_directly:
        return "in_progress"
    # an ETA longer than the visibility timeout would be redelivered while held: stay well below it
    raise task.retry(countdown=max(1.0, min(wait, svc.settings.visibility_timeout_s / 2)))


def _owner(task: Task) -> str:
    """Who holds a claim: this message's task id, and this process as "host/pid-namespace|pid|start ticks"."""
    task_id = task.request.id or f"direct-{uuid.uuid4().hex}"
    pid = os.getpid()
    return f"{task_id}|{_host()}|{pid}|{_start_ticks(pid)}"


def _holder_dead(owner: str) -> bool:
    """True only if the holder provably runs no check: this very process (one task at a time), or a
    process of this host and PID namespace that is gone (or whose PID was reused). Another host: unknown."""
    parts = owner.split("|")
    if len(parts) != 4 or parts[1] != _host() or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    return pid == os.getpid() or _start_ticks(pid) != parts[3]


def _host() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}"


def _start_ticks(pid: int) -> str:
    """A process's start time (field 22 of /proc/PID/stat): with the PID, names one process; "" if none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


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
        _scan(svc, rec, inputs)  # malware scan before any parser opens a file
        paths = cast(list[str | Path], inputs)  # os.PathLike: see _Upload
        # sandbox: a parser hang, memory blow-up or native crash fails that file, never this worker.
        with _scratch_in(Path(tmp)):  # zip portfolios are unpacked here, not in /tmp (often RAM)
            report = check_paths(paths, profile, rec.method, roles=roles, meta=dict(rec.meta),
                                 limits=Limits.from_env(), sandbox=True)
    prefix = submission_prefix(rec.tenant, rec.id)
    extracted_key, report_key = prefix + "extracted.json", prefix + "report.json"
    _put_json(svc.storage, extracted_key, extract_model(report))
    _put_json(svc.storage, report_key, report.to_dict())  # written last: its presence means complete
    return {"outcome": report.outcome, "report_key": report_key, "extracted_key": extracted_key,
            "finished_at": time.time(), "progress": ""}


@contextlib.contextmanager
def _scratch_in(folder: Path) -> Iterator[None]:
    """Point ``tempfile`` at the job's folder for one check: a pool process runs one task at a time,
    and a worker killed mid-job leaves its unpacked portfolio where ``_prune_work`` finds it."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


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


MALWARE_REMEDY = ("Scan your computer with up-to-date antivirus software, then upload clean copies of your files. "
                  "If you believe this is a mistake, contact support quoting the submission id.")
SCAN_LIMITS_REMEDY = ("A file is too large or too deeply nested for the malware scanner to check completely. "
                      "Split large files or archives (or compress long videos) and resubmit.")


def _scan(svc: Services, rec: SubmissionRecord, inputs: list[_Upload]) -> None:
    """Scan every downloaded original with clamd before any parser opens one (anchors (a) 12, (b) 22).

    Infected: the object is deleted from storage (quarantined: nobody can read it again) and the submission
    fails ``malware``, with no report. Not fully scanned (clamd's limits): fails ``scan_limits_exceeded``, never
    passed as clean. clamd unreachable: ``ScannerUnavailable``, retried like a storage outage (``_unexpected``).
    """
    clamd = avscan.scanner(svc.settings.clamd)
    if clamd is None:
        _event("av_scan", submission_id=rec.id, verdict=str(avscan.Verdict.DISABLED))
        return
    results = []
    for f, upload in zip(rec.files, inputs, strict=True):
        result = clamd.scan_path(upload.path)
        _event("av_scan", logging.WARNING if result.verdict is avscan.Verdict.INFECTED else logging.INFO,
               submission_id=rec.id, key=f.key, verdict=str(result.verdict), signature=result.signature,
               detail=result.detail)
        results.append((f, result))
        if result.verdict is avscan.Verdict.UNAVAILABLE:
            break  # clamd is down or stuck: the rest would wait for it too; what was found still counts
    infected = [(f, r.signature) for f, r in results if r.verdict is avscan.Verdict.INFECTED]
    for f, _ in infected:
        svc.storage.delete_prefix(f.key)  # keys are fixed width (originals/NNN): this prefix is the one object
    if infected:
        found = "; ".join(f"{f.name!r} ({signature})" for f, signature in infected)
        raise JobFailed(Failure("malware", f"Malware was found and the file was deleted: {found}.", MALWARE_REMEDY))
    unscanned = [(f, r.signature) for f, r in results if r.verdict is avscan.Verdict.LIMITS_EXCEEDED]
    if unscanned:
        names = "; ".join(f"{f.name!r} ({signature})" for f, signature in unscanned)
        raise JobFailed(Failure("scan_limits_exceeded", f"Could not be scanned for malware completely: {names}.",
                                SCAN_LIMITS_REMEDY))
    down = [r.detail for _, r in results if r.verdict is not avscan.Verdict.CLEAN]
    if down:
        raise avscan.ScannerUnavailable(down[0])


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
    now = time.time()
    cutoff = now - svc.settings.retention_days * 86400
    count = 0
    for rec in svc.state.expired(cutoff):  # both stores allow deleting while iterating
        # the same erasure as DELETE, audited as retention_expiry (catalogue 40(iii))
        if erase_submission(svc.state, svc.storage, rec, actor="system:retention", action=RETENTION):
            count += 1
    swept = sweep_abandoned(svc.storage, now)  # presigned uploads never submitted (catalogue 33)
    swept += sweep_orphans(svc.state, svc.storage, now)  # objects a failed rollback left without a record
    _prune_broker(svc.settings, cutoff)
    _prune_work(svc.settings)
    _event("purged", count=count, staging_swept=swept)
    return count


@app.task(name="worker.tasks.reconcile")
def reconcile() -> int:
    """Re-enqueue unfinished submissions that may have lost their message; returns how many (catalogue 28).

    The state store is the source of truth. A submission still QUEUED, or PROCESSING with its lease
    expired, and untouched for ``reconcile_after_s`` gets a new message: Redis may have lost the
    enqueue (the last second of an ``everysec`` AOF, a SIGKILL) or kombu the delivery (it pops a
    message before recording it unacked). A duplicate is harmless: ``claim`` lets one run at a
    time and the terminal transition is a compare-and-set; re-running a PROCESSING one costs an
    attempt, so ``max_attempts`` still bounds a submission that kills its worker.
    """
    svc = services()
    now = time.time()
    quiet_since = now - reconcile_after_s()
    count = 0
    for rec in svc.state.unfinished():
        if rec.updated_at > quiet_since:
            continue  # just created, enqueued again, or deferred by an outage: its message is alive
        if rec.status is Status.PROCESSING and (rec.lease_until or 0) >= now:
            continue  # a run holds it (on time; the hard limit ends it before the lease does)
        process_submission.delay(rec.id)
        svc.state.update(rec.id, progress="requeued")  # stamps updated_at: once per quiet period
        count += 1
    _event("reconciled", requeued=count)
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
    """``python -m worker.tasks purge-expired|reconcile``: run retention or the reconciler from cron, without beat."""
    args = sys.argv[1:] if argv is None else argv
    commands = {"purge-expired": purge_expired, "reconcile": reconcile}
    if len(args) != 1 or args[0] not in commands:
        sys.stderr.write("usage: python -m worker.tasks purge-expired|reconcile\n")
        return 2
    print(commands[args[0]]())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
