"""Shared by both state backends: record (de)serialisation, cursors, limits, and the
translation of backend failures into ``StateUnavailable``."""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, TypeVar, cast

from service.contracts import TASK_DURATION_BUCKETS, TERMINAL, AuditRecord, Status, SubmissionRecord

FIELDS = frozenset(f.name for f in dataclasses.fields(SubmissionRecord))
FIXED_FIELDS = frozenset({"id", "tenant", "status", "created_at"})
STATUS_ORDER: tuple[Status, ...] = tuple(Status)
MAX_PAGE = 1000
BATCH = 200
DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600.0
MAX_OUTCOME_LEN = 64  # a metrics label: report outcomes are short words

F = TypeVar("F", bound=Callable[..., Any])


class StateUnavailable(Exception):
    """The state backend cannot be reached or is overloaded; retrying later may succeed."""


# --------------------------------------------------------------------------- shared helpers

def _plain(value: Any) -> Any:
    """JSON-ready form of a field value (StoredFile dataclasses, enums, tuples)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_plain(value), separators=(",", ":"), allow_nan=False)


def _field_updates(fields: Mapping[str, Any]) -> dict[str, str]:
    """Validate ``update``/``transition`` fields and JSON-encode them, stamping ``updated_at``."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise ValueError(f"unknown submission fields: {sorted(unknown)}")
    fixed = set(fields) & FIXED_FIELDS
    if fixed:
        raise ValueError(f"fields {sorted(fixed)} cannot be updated (status changes only via transition)")
    merged = {"updated_at": time.time(), **fields}
    return {name: _dumps(value) for name, value in merged.items()}


def _record(data: Mapping[str, Any]) -> SubmissionRecord:
    """Build a record, ignoring stored fields a newer/older version of the contract no longer has."""
    return SubmissionRecord.from_dict({k: v for k, v in data.items() if k in FIELDS})


def _stamp_new(rec: SubmissionRecord) -> None:
    """Fill ``created_at``/``updated_at`` when the caller left them 0 (the record object is updated too)."""
    if not rec.created_at:
        rec.created_at = time.time()
    if not rec.updated_at:
        rec.updated_at = rec.created_at


def encode_cursor(created_at: float, submission_id: str) -> str:
    raw = json.dumps([created_at, submission_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of encode_cursor; ValueError for anything a client tampered with."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, submission_id = json.loads(raw)
        if not isinstance(submission_id, str) or isinstance(created_at, bool):
            raise TypeError
        return float(created_at), submission_id
    except (ValueError, TypeError) as e:  # binascii.Error and JSONDecodeError are ValueErrors
        raise ValueError("invalid cursor") from e


# --------------------------------------------------------------------------- task metrics
#
# Both backends keep the same flat counters (a SQLite table, a Redis hash), one per name:
#   task|{status}|{outcome}   tasks finished with that status and outcome
#   le|{bound}                tasks whose duration fell in that bucket (NOT cumulative: one increment each)
#   sum, count                total duration (seconds) and number of tasks
# ``record_task`` adds all four in one atomic write; ``task_stats`` reads all in one snapshot.

_TASK, _LE = "task|", "le|"
_BOUNDS: tuple[float, ...] = (*TASK_DURATION_BUCKETS, math.inf)


def _task_increments(outcome: str, status: Status, duration_s: float) -> dict[str, int | float]:
    """Validate a ``record_task`` call and return the counters it increments, by name."""
    status = Status(status)
    if status not in TERMINAL:
        raise ValueError(f"record_task needs a terminal status, not {status!r}")
    if not isinstance(outcome, str) or len(outcome) > MAX_OUTCOME_LEN:
        raise ValueError(f"outcome must be a string of at most {MAX_OUTCOME_LEN} characters")
    duration = float(duration_s)
    if not math.isfinite(duration):
        raise ValueError(f"duration must be finite, not {duration_s!r}")
    duration = max(0.0, duration)  # started and finished on machines whose clocks disagree
    bound = next(b for b in _BOUNDS if duration <= b)
    return {f"{_TASK}{status}|{outcome}": 1, f"{_LE}{bound!r}": 1, "sum": duration, "count": 1}


def _task_stats(counters: Mapping[str, Any]) -> dict[str, Any]:
    """The ``task_stats`` snapshot (cumulative buckets) from the stored counters; unknown names are ignored."""
    tasks: dict[tuple[str, str], int] = {}
    for name, value in counters.items():
        if name.startswith(_TASK):
            status, _, outcome = name[len(_TASK):].partition("|")
            tasks[status, outcome] = int(float(value))
    buckets: list[tuple[float, int]] = []
    cumulative = 0
    for bound in _BOUNDS:
        cumulative += int(float(counters.get(f"{_LE}{bound!r}", 0)))
        buckets.append((bound, cumulative))
    return {"tasks": tasks,
            "duration": {"buckets": buckets, "sum": float(counters.get("sum", 0.0)),
                         "count": int(float(counters.get("count", 0)))}}


def _response_submission_id(response: Mapping[str, Any]) -> str | None:
    """The submission an idempotency response names (``body.id``), so erasure can find it."""
    body = response.get("body") if isinstance(response, Mapping) else None
    sid = body.get("id") if isinstance(body, Mapping) else None
    return sid if isinstance(sid, str) and sid else None


def _audit_fill(audit: AuditRecord) -> AuditRecord:
    """Stamp an audit record's id and time, and refuse anything but counts in ``deleted``."""
    if not all(isinstance(k, str) and type(v) is int for k, v in audit.deleted.items()):
        raise ValueError("audit 'deleted' holds counts only (str -> int)")
    return dataclasses.replace(audit, id=audit.id or uuid.uuid4().hex, at=audit.at or time.time(),
                               deleted=dict(audit.deleted))


def _clamp(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


def _translate_errors(is_unavailable: Callable[[BaseException], bool]) -> Callable[[F], F]:
    """Decorate methods (and generator methods) to raise StateUnavailable for backend outages."""

    def deco(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from fn(*args, **kwargs)
                except Exception as e:
                    if is_unavailable(e):
                        raise StateUnavailable(f"{type(e).__name__}: {e}") from e
                    raise

            return cast(F, gen)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if is_unavailable(e):
                    raise StateUnavailable(f"{type(e).__name__}: {e}") from e
                raise

        return cast(F, call)

    return deco


# --------------------------------------------------------------------------- SQLite
