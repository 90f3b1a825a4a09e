"""Contracts shared by the API and the workers: the submission record, state and storage.

Why a state store of our own: a submission's status must survive worker crashes
and reach a terminal state exactly once, which Celery's result backend does not
promise. ``transition`` is an atomic compare-and-set on the status, so two
workers (or a redelivered task) can never both finish the same submission.
Implementations: SQLite in embedded mode (no server), Redis in scale-out (already
deployed as the broker, with append-only persistence; compose has no database).

Why object keys only: the API and workers share nothing but storage and the
broker, so messages carry submission ids and storage keys, never bytes or paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import IO, Any, Protocol


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({Status.DONE, Status.FAILED})

#: Upper bounds (seconds) of the task duration histogram, ``+Inf`` implied. Fixed: both state
#: backends store one counter per bucket, so changing them would mislabel stored counts.
TASK_DURATION_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class ApiRole(StrEnum):
    SUBMITTER = "submitter"  # create submissions, read its tenant's
    READER = "reader"  # read its tenant's submissions and reports
    ADMIN = "admin"  # everything, incl. keys and deletion


@dataclass(slots=True)
class StoredFile:
    key: str  # storage key: generated, never the user's file name
    name: str  # the name the user gave (display only)
    size: int
    sha256: str
    detected: str = ""  # sniffed format at upload


@dataclass(slots=True)
class SubmissionRecord:
    id: str
    tenant: str
    profile: str  # validators profile id
    method: str
    status: Status = Status.QUEUED
    files: list[StoredFile] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    progress: str = ""
    error_code: str | None = None
    error_message: str | None = None
    remedy: str | None = None
    outcome: str | None = None  # report outcome: pass | attention | fail
    report_key: str | None = None
    extracted_key: str | None = None
    # the run holding a PROCESSING record (``claim``): "task id|host|pid|start ticks", and until when
    owner: str = ""
    lease_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubmissionRecord:
        d = dict(d)
        d["status"] = Status(d["status"])
        d["files"] = [StoredFile(**f) for f in d.get("files", [])]
        return cls(**d)


@dataclass(slots=True)
class AuditRecord:
    """One erasure, kept after the data is gone (UK GDPR accountability).

    Holds identifiers and counts only: never a file name, document text, report or callback URL.
    """

    action: str  # "erasure" (DELETE by an admin) | "retention_expiry" (purge_expired)
    tenant: str
    submission_id: str
    actor: str  # "api-key:<first 12 hex of the key's sha256>" or "system:retention"
    deleted: dict[str, int] = field(default_factory=dict)  # what was removed, as counts
    at: float = 0.0
    id: str = ""  # filled by the store when empty

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # epoch seconds of the last write


class StateStore(Protocol):
    """Submission records, API keys and idempotency keys. Every method is tenant-safe."""

    def create(self, rec: SubmissionRecord) -> None: ...

    def get(self, submission_id: str, tenant: str | None = None) -> SubmissionRecord | None:
        """``tenant=None`` only for workers; the API always passes the caller's tenant."""

    def list(
        self, tenant: str, *, status: Status | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[SubmissionRecord], str | None]: ...

    def transition(self, submission_id: str, allowed_from: frozenset[Status], to: Status, **fields: Any) -> bool:
        """Atomically set status ``to`` (and fields) iff the current status is in ``allowed_from``."""

    def update(self, submission_id: str, **fields: Any) -> None: ...

    def add_attempt(self, submission_id: str) -> int:
        """Atomically increment and return the attempt counter."""

    def claim(self, submission_id: str, owner: str, lease_until: float, *, now: float,
              takeover: str | None = None, **fields: Any) -> int | None:
        """Take a submission for one run: the conditional write that stops two runs at once.

        Succeeds iff the status is QUEUED, or PROCESSING with no live lease (``lease_until`` unset
        or ``< now``), or PROCESSING held by exactly ``takeover`` (a holder the caller proved dead).
        Then, atomically: status PROCESSING, ``owner``, ``lease_until``, ``started_at = now``,
        ``fields``, attempts + 1. Returns the new attempt count, or None if another run holds it
        (or it is terminal or gone).
        """

    def unfinished(self) -> Iterator[SubmissionRecord]:
        """Every QUEUED or PROCESSING submission of every tenant (the reconciler's input)."""

    def delete(self, submission_id: str, tenant: str) -> bool: ...

    def expired(self, older_than: float) -> Iterator[SubmissionRecord]: ...

    def erase(self, submission_id: str, tenant: str, audit: AuditRecord) -> bool:
        """Erasure in one atomic step: the record, the idempotency entries whose response names it,
        and ``audit`` appended (``deleted["records"]`` and ``deleted["idempotency_entries"]`` filled in).
        False, and no audit, if the record was already gone."""

    def audit_log(self, tenant: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Audit records, newest first; one tenant's or all."""

    # idempotency: remember (tenant, key) -> (request hash, response), atomically, first writer wins
    def remember_request(self, tenant: str, key: str, request_hash: str, response: dict[str, Any]) -> tuple[
        str, dict[str, Any]] | None:
        """Store it if new and return None; otherwise return the (hash, response) stored first.

        A response whose ``body.id`` is a string is indexed by it, so ``erase`` can drop it.
        """

    # tenants and API keys (keys stored as SHA-256 hashes only)
    def create_tenant(self, tenant: str, webhook_secret: str) -> None: ...

    def add_api_key(self, tenant: str, key_hash: str, role: ApiRole) -> None: ...

    def find_api_key(self, key_hash: str) -> tuple[str, ApiRole] | None: ...

    def webhook_secret(self, tenant: str) -> str | None: ...

    # task metrics: only workers see tasks finish, and the state store is what they share with the API
    def record_task(self, outcome: str, status: Status, duration_s: float) -> None:
        """Count one finished task atomically: +1 for (status, outcome), +1 in its duration bucket, sum, count.

        Call once per submission, by the worker whose terminal ``transition`` returned True.
        ``status`` must be terminal; a negative duration (clock skew between machines) counts as 0.
        """

    def task_stats(self) -> dict[str, Any]:
        """A consistent snapshot of what ``record_task`` counted::

            {"tasks": {(status, outcome): count, ...},
             "duration": {"buckets": [(le, cumulative count), ..., (inf, count)], "sum": float, "count": int}}

        ``le`` runs over ``TASK_DURATION_BUCKETS`` then ``math.inf``; the ``inf`` bucket equals ``count``.
        """


class Storage(Protocol):
    """Object storage: one bucket per deployment, keys prefixed by tenant/submission."""

    def put(self, key: str, stream: IO[bytes], length: int | None = None, content_type: str = "") -> None:
        """Stream ``stream`` to ``key`` (never read whole into memory)."""

    def get(self, key: str) -> IO[bytes]:
        """A readable stream; the caller closes it."""

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (recursive, a plain string prefix as in S3).

        Strongly consistent with ``put``/``delete_prefix`` on both backends (MinIO and S3 promise
        list-after-write; catalogue test 33). Order is unspecified; errors may surface mid-iteration.
        """

    def presigned_put(self, key: str, expires_s: int) -> str | None:
        """A short-lived URL to PUT one object, or None where the backend has none (local disk)."""

    def ping(self) -> bool: ...


def submission_prefix(tenant: str, submission_id: str) -> str:
    return f"tenants/{tenant}/submissions/{submission_id}/"
