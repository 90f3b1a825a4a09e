"""Submission state behind the ``StateStore`` contract: SQLite (embedded) or Redis (scale-out).

Both backends make ``transition`` one atomic compare-and-set (a single conditional UPDATE;
a Lua script), so two workers or a redelivered task can never both finish a submission.

Shared rules, so the API behaves the same on either backend:

* ``id``, ``tenant``, ``status`` and ``created_at`` are fixed by ``create``; ``status``
  changes only through ``transition``. ``update``/``transition`` refuse unknown fields
  (a typo would otherwise be silently stored) and stamp ``updated_at`` unless given.
* ``list`` is newest first (``created_at`` desc, then ``id`` desc). Its cursor is opaque to
  callers: url-safe base64 of ``[created_at, id]`` of the last row returned, used as a
  keyset bound, so pages stay stable while submissions are created or deleted.
* Idempotency records live ``idempotency_ttl_s`` (default 24 h), then the key may be reused.
* Server/database failures raise ``StateUnavailable`` (the API answers 503, workers retry).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, cast

from service.contracts import ApiRole, Status, SubmissionRecord
from service.storage import default_data_dir

FIELDS = frozenset(f.name for f in dataclasses.fields(SubmissionRecord))
FIXED_FIELDS = frozenset({"id", "tenant", "status", "created_at"})
STATUS_ORDER: tuple[Status, ...] = tuple(Status)
MAX_PAGE = 1000
BATCH = 200
DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600.0

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL  -- SubmissionRecord.to_dict() as JSON; status kept equal to the column
);
CREATE INDEX IF NOT EXISTS submissions_by_tenant ON submissions (tenant, created_at, id);
CREATE INDEX IF NOT EXISTS submissions_by_tenant_status ON submissions (tenant, status, created_at, id);
CREATE INDEX IF NOT EXISTS submissions_by_created ON submissions (created_at, id);
CREATE TABLE IF NOT EXISTS requests (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX IF NOT EXISTS requests_by_created ON requests (created_at);
CREATE TABLE IF NOT EXISTS tenants (
    tenant TEXT PRIMARY KEY,
    webhook_secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL
);
PRAGMA user_version = 1;
"""

_sqlite_errors = _translate_errors(lambda e: isinstance(e, sqlite3.OperationalError))


class SqliteState:
    """State in one SQLite file (embedded mode: API and workers on one machine, several processes).

    WAL lets readers run beside the single writer; every write is one autocommit statement,
    waiting up to ``busy_timeout_s`` for the write lock. Each thread (and each forked process,
    e.g. Celery prefork children) opens its own connection, because sqlite3 connections must
    not be shared across threads mid-statement nor across ``fork``.
    """

    def __init__(self, path: Path | str, *, idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S,
                 busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ttl = idempotency_ttl_s
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[int, sqlite3.Connection]] = []
        self._generation = 0
        self._init_schema()

    @_sqlite_errors
    def _init_schema(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the database file
        conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (or after ``close``/``fork``)."""
        local = self._local
        key = (os.getpid(), self._generation)
        if getattr(local, "key", None) != key:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")  # a terminal status must survive power loss too
            local.conn, local.key = conn, key
            with self._lock:
                self._conns.append((os.getpid(), conn))
        return cast(sqlite3.Connection, local.conn)

    def close(self) -> None:
        """Close every connection this object opened in this process; later calls reopen.

        Connections inherited across ``fork`` are left alone: SQLite forbids using them in the child.
        """
        with self._lock:
            conns, self._conns = self._conns, []
            self._generation += 1
        for pid, conn in conns:
            if pid == os.getpid():
                conn.close()

    @_sqlite_errors
    def ping(self) -> bool:
        self._conn().execute("SELECT 1").fetchone()
        return True

    # ---- submissions

    @_sqlite_errors
    def create(self, rec: SubmissionRecord) -> None:
        _stamp_new(rec)
        try:
            self._conn().execute(
                "INSERT INTO submissions (id, tenant, status, created_at, record) VALUES (?, ?, ?, ?, ?)",
                (rec.id, rec.tenant, str(rec.status), rec.created_at, _dumps(rec.to_dict())),
            )
        except sqlite3.IntegrityError as e:
            raise ValueError(f"submission {rec.id!r} already exists") from e

    @staticmethod
    def _row_record(status: str, record: str) -> SubmissionRecord:
        data = json.loads(record)
        data["status"] = status  # the indexed column is the source of truth
        return _record(data)

    @_sqlite_errors
    def get(self, submission_id: str, tenant: str | None = None) -> SubmissionRecord | None:
        sql, args = "SELECT status, record FROM submissions WHERE id = ?", [submission_id]
        if tenant is not None:
            sql, args = sql + " AND tenant = ?", [*args, tenant]
        row = self._conn().execute(sql, args).fetchone()
        return self._row_record(*row) if row else None

    @_sqlite_errors
    def list(
        self, tenant: str, *, status: Status | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[SubmissionRecord], str | None]:
        limit = _clamp(limit)
        where, args = ["tenant = ?"], [tenant]
        if status is not None:
            where.append("status = ?")
            args.append(str(Status(status)))
        if cursor:
            where.append("(created_at, id) < (?, ?)")
            args.extend(decode_cursor(cursor))
        rows = self._conn().execute(
            f"SELECT created_at, id, status, record FROM submissions WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            [*args, limit + 1],
        ).fetchall()
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0], page[-1][1]) if len(rows) > limit else None
        return [self._row_record(st, rec) for _c, _i, st, rec in page], next_cursor

    @_sqlite_errors
    def transition(self, submission_id: str, allowed_from: frozenset[Status], to: Status, **fields: Any) -> bool:
        """One conditional UPDATE: the WHERE clause is the compare, rowcount says who won."""
        to = Status(to)
        allowed = sorted(str(Status(s)) for s in allowed_from)
        if not allowed:
            return False
        updates = _field_updates(fields)
        sets = "".join(f", '$.{name}', json(?)" for name in updates)  # names are checked dataclass fields
        cur = self._conn().execute(
            f"UPDATE submissions SET status = ?, record = json_set(record, '$.status', ?{sets}) "
            f"WHERE id = ? AND status IN ({', '.join('?' * len(allowed))})",
            [str(to), str(to), *updates.values(), submission_id, *allowed],
        )
        return cur.rowcount == 1

    @_sqlite_errors
    def update(self, submission_id: str, **fields: Any) -> None:
        """Set fields; a submission deleted meanwhile is ignored (a worker's late progress write is harmless)."""
        updates = _field_updates(fields)
        sets = ", ".join(f"'$.{name}', json(?)" for name in updates)
        self._conn().execute(f"UPDATE submissions SET record = json_set(record, {sets}) WHERE id = ?",
                             [*updates.values(), submission_id])

    @_sqlite_errors
    def add_attempt(self, submission_id: str) -> int:
        rows = self._conn().execute(
            "UPDATE submissions SET record = json_set(record, '$.attempts', "
            "COALESCE(json_extract(record, '$.attempts'), 0) + 1) WHERE id = ? "
            "RETURNING json_extract(record, '$.attempts')",
            (submission_id,),
        ).fetchall()
        if not rows:
            raise KeyError(submission_id)
        return int(rows[0][0])

    @_sqlite_errors
    def delete(self, submission_id: str, tenant: str) -> bool:
        cur = self._conn().execute("DELETE FROM submissions WHERE id = ? AND tenant = ?", (submission_id, tenant))
        return cur.rowcount == 1

    @_sqlite_errors
    def expired(self, older_than: float) -> Iterator[SubmissionRecord]:
        """Submissions created before ``older_than`` (epoch seconds), oldest first, in keyset batches.

        Batches are re-queried after the last (created_at, id) seen, so the caller may delete
        each record while iterating without skipping or repeating any.
        """
        after: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self._conn().execute(
                "SELECT created_at, id, status, record FROM submissions "
                "WHERE created_at < ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
                (older_than, *after, BATCH),
            ).fetchall()
            for _created, _id, status, record in rows:
                yield self._row_record(status, record)
            if len(rows) < BATCH:
                return
            after = (rows[-1][0], rows[-1][1])

    # ---- idempotency

    @_sqlite_errors
    def remember_request(
        self, tenant: str, key: str, request_hash: str, response: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """INSERT OR IGNORE decides the first writer; everyone else reads what it stored."""
        conn = self._conn()
        now = time.time()
        conn.execute("DELETE FROM requests WHERE created_at < ?", (now - self._ttl,))
        cur = conn.execute(
            "INSERT OR IGNORE INTO requests (tenant, key, request_hash, response, created_at) VALUES (?, ?, ?, ?, ?)",
            (tenant, key, request_hash, _dumps(response), now),
        )
        if cur.rowcount == 1:
            return None
        row = conn.execute("SELECT request_hash, response FROM requests WHERE tenant = ? AND key = ?",
                           (tenant, key)).fetchone()
        if row is None:  # expired between the two statements: try again as a new request
            return self.remember_request(tenant, key, request_hash, response)
        return row[0], json.loads(row[1])

    # ---- tenants and keys

    @_sqlite_errors
    def create_tenant(self, tenant: str, webhook_secret: str) -> None:
        """Create the tenant, or rotate its webhook secret if it exists."""
        self._conn().execute(
            "INSERT INTO tenants (tenant, webhook_secret, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET webhook_secret = excluded.webhook_secret",
            (tenant, webhook_secret, time.time()),
        )

    @_sqlite_errors
    def add_api_key(self, tenant: str, key_hash: str, role: ApiRole) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO api_keys (key_hash, tenant, role, created_at) VALUES (?, ?, ?, ?)",
            (key_hash, tenant, str(ApiRole(role)), time.time()),
        )

    @_sqlite_errors
    def find_api_key(self, key_hash: str) -> tuple[str, ApiRole] | None:
        row = self._conn().execute("SELECT tenant, role FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        return (row[0], ApiRole(row[1])) if row else None

    @_sqlite_errors
    def webhook_secret(self, tenant: str) -> str | None:
        row = self._conn().execute("SELECT webhook_secret FROM tenants WHERE tenant = ?", (tenant,)).fetchone()
        return row[0] if row else None


# --------------------------------------------------------------------------- Redis
#
# Layout (prefix "gc" by default):
#   {p}:sub:{id}                   hash: one field per SubmissionRecord field, value JSON-encoded
#   {p}:tenant:{tenant}            zset id -> created_at (listing, newest first)
#   {p}:tenant-status:{s}:{tenant} zset id -> created_at, one per status (filtered listing)
#   {p}:created                    zset id -> created_at over all tenants (expired)
#   {p}:idem:{len(tenant)}:{tenant}:{key}  JSON {"hash", "response"}, SET NX with a TTL
#   {p}:key:{sha256}               "tenant|role"
#   {p}:tenant-secret:{tenant}     webhook secret
#
# A hash of JSON values rather than one JSON string: the Lua scripts then compare and set
# fields without decoding JSON in Redis, whose cjson would round floats to 14 digits and turn
# empty lists into objects; HINCRBY gives add_attempt for free.

_LUA_CREATE = """
-- KEYS: record, tenant index, tenant+status index, created index. ARGV: id, score, field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 2, 4 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return 1
"""

_LUA_TRANSITION = """
-- KEYS: record, then the tenant's status indexes in STATUS_ORDER.
-- ARGV: tenant (JSON), id, new status (JSON), the 4 statuses (JSON) in KEYS order,
--       n allowed, n allowed statuses (JSON), then field/value pairs.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[8])
local ok = false
for i = 9, 8 + n do
  if ARGV[i] == cur then ok = true break end
end
if not ok then return 0 end
for i = 9 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
if cur ~= ARGV[3] then
  local score = redis.call('HGET', KEYS[1], 'created_at')
  for i = 1, 4 do
    if ARGV[3 + i] == cur then redis.call('ZREM', KEYS[1 + i], ARGV[2]) end
    if ARGV[3 + i] == ARGV[3] then redis.call('ZADD', KEYS[1 + i], score, ARGV[2]) end
  end
end
return 1
"""

_LUA_UPDATE = """
-- KEYS: record. ARGV: field/value pairs. Never resurrects a deleted record.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_LUA_ADD_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

_LUA_DELETE = """
-- KEYS: record, then every index holding the id. ARGV: tenant (JSON), id
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return 1
"""


def _redis_unavailable(exc: BaseException) -> bool:
    import redis.exceptions as rx

    return isinstance(exc, rx.ConnectionError | rx.TimeoutError | rx.ReadOnlyError)


_redis_errors = _translate_errors(_redis_unavailable)


class RedisState:
    """State in Redis (scale-out mode: the broker's Redis, with append-only persistence).

    Every multi-key change is one Lua script, so indexes never disagree with records and the
    status compare-and-set is atomic. ``prefix`` namespaces keys (tests share one server).
    """

    def __init__(self, url: str, *, prefix: str = "gc", idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S,
                 socket_timeout_s: float = 10.0) -> None:
        import redis

        self._r = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5.0,
                                       socket_timeout=socket_timeout_s, health_check_interval=30)
        self._p = prefix
        self._ttl_ms = int(idempotency_ttl_s * 1000)
        self._create = self._r.register_script(_LUA_CREATE)
        self._transition = self._r.register_script(_LUA_TRANSITION)
        self._update = self._r.register_script(_LUA_UPDATE)
        self._add_attempt = self._r.register_script(_LUA_ADD_ATTEMPT)
        self._delete = self._r.register_script(_LUA_DELETE)

    # ---- keys

    def _k_sub(self, submission_id: str) -> str:
        return f"{self._p}:sub:{submission_id}"

    def _k_tenant(self, tenant: str) -> str:
        return f"{self._p}:tenant:{tenant}"

    def _k_status(self, tenant: str, status: Status) -> str:
        return f"{self._p}:tenant-status:{status}:{tenant}"

    def _k_statuses(self, tenant: str) -> list[str]:
        return [self._k_status(tenant, s) for s in STATUS_ORDER]

    def _k_created(self) -> str:
        return f"{self._p}:created"

    def _k_idem(self, tenant: str, key: str) -> str:
        return f"{self._p}:idem:{len(tenant)}:{tenant}:{key}"  # length prefix: "a:b"+"c" != "a"+"b:c"

    def _k_apikey(self, key_hash: str) -> str:
        return f"{self._p}:key:{key_hash}"

    def _k_secret(self, tenant: str) -> str:
        return f"{self._p}:tenant-secret:{tenant}"

    def close(self) -> None:
        self._r.close()

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except Exception as e:
            if _redis_unavailable(e):
                return False
            raise

    # ---- submissions

    @staticmethod
    def _decode(raw: Mapping[str, str]) -> SubmissionRecord | None:
        return _record({k: json.loads(v) for k, v in raw.items()}) if raw else None

    @_redis_errors
    def create(self, rec: SubmissionRecord) -> None:
        _stamp_new(rec)
        pairs = [x for name, value in rec.to_dict().items() for x in (name, _dumps(value))]
        keys = [self._k_sub(rec.id), self._k_tenant(rec.tenant), self._k_status(rec.tenant, rec.status),
                self._k_created()]
        if not self._create(keys=keys, args=[rec.id, repr(float(rec.created_at)), *pairs]):
            raise ValueError(f"submission {rec.id!r} already exists")

    @_redis_errors
    def get(self, submission_id: str, tenant: str | None = None) -> SubmissionRecord | None:
        rec = self._decode(self._r.hgetall(self._k_sub(submission_id)))
        if rec is None or (tenant is not None and rec.tenant != tenant):
            return None
        return rec

    @_redis_errors
    def list(
        self, tenant: str, *, status: Status | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[SubmissionRecord], str | None]:
        limit = _clamp(limit)
        index = self._k_tenant(tenant) if status is None else self._k_status(tenant, Status(status))
        after = decode_cursor(cursor) if cursor else None
        hits = self._zkeyset(index, after, limit + 1, desc=True)
        page = hits[:limit]
        next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(hits) > limit else None
        recs = [r for r in self._fetch([i for i, _ in page]) if r.tenant == tenant]
        return recs, next_cursor

    def _zkeyset(self, key: str, after: tuple[float, str] | None, count: int, *, desc: bool,
                 below: float | None = None) -> list[tuple[str, float]]:
        """Up to ``count`` (id, score) strictly after ``after`` in (score, id) order, keyset-style.

        Redis orders equal scores by member, so only the members sharing the bound's score
        need skipping; they come first and are passed over by offset.
        """
        out: list[tuple[str, float]] = []
        offset = 0
        while len(out) < count:
            want = count - len(out) + 16
            if desc:
                hi = repr(after[0]) if after else "+inf"
                rows = self._r.zrevrangebyscore(key, hi, "-inf", start=offset, num=want, withscores=True)
            else:
                lo = repr(after[0]) if after else "-inf"
                hi = f"({below!r}" if below is not None else "+inf"
                rows = self._r.zrangebyscore(key, lo, hi, start=offset, num=want, withscores=True)
            for member, score in rows:
                if after and score == after[0] and (member >= after[1] if desc else member <= after[1]):
                    continue
                out.append((member, score))
                if len(out) == count:
                    break
            if len(rows) < want:
                break
            offset += len(rows)
        return out

    def _fetch(self, ids: list[str]) -> list[SubmissionRecord]:
        """Records for ``ids`` in one round trip; ids deleted meanwhile are dropped."""
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for submission_id in ids:
            pipe.hgetall(self._k_sub(submission_id))
        return [rec for raw in pipe.execute() if (rec := self._decode(raw)) is not None]

    @_redis_errors
    def transition(self, submission_id: str, allowed_from: frozenset[Status], to: Status, **fields: Any) -> bool:
        """Compare-and-set in Lua; the tenant is read first only to name its status indexes."""
        to = Status(to)
        allowed = [_dumps(Status(s)) for s in allowed_from]
        updates = _field_updates(fields)
        tenant_json = self._r.hget(self._k_sub(submission_id), "tenant")
        if not allowed or tenant_json is None:
            return False
        keys = [self._k_sub(submission_id), *self._k_statuses(json.loads(tenant_json))]
        args = [tenant_json, submission_id, _dumps(to), *(_dumps(s) for s in STATUS_ORDER), len(allowed), *allowed,
                *(x for pair in updates.items() for x in pair)]
        return bool(self._transition(keys=keys, args=args))

    @_redis_errors
    def update(self, submission_id: str, **fields: Any) -> None:
        """Set fields; a submission deleted meanwhile is ignored (a worker's late progress write is harmless)."""
        updates = _field_updates(fields)
        self._update(keys=[self._k_sub(submission_id)], args=[x for pair in updates.items() for x in pair])

    @_redis_errors
    def add_attempt(self, submission_id: str) -> int:
        n = self._add_attempt(keys=[self._k_sub(submission_id)])
        if n is None:
            raise KeyError(submission_id)
        return int(n)

    @_redis_errors
    def delete(self, submission_id: str, tenant: str) -> bool:
        keys = [self._k_sub(submission_id), self._k_tenant(tenant), *self._k_statuses(tenant), self._k_created()]
        return bool(self._delete(keys=keys, args=[_dumps(tenant), submission_id]))

    @_redis_errors
    def expired(self, older_than: float) -> Iterator[SubmissionRecord]:
        """Submissions created before ``older_than``, oldest first, from the global created index.

        Keyset batches (not offsets), so the caller may delete each record while iterating.
        """
        after: tuple[float, str] | None = None
        while True:
            hits = self._zkeyset(self._k_created(), after, BATCH, desc=False, below=older_than)
            yield from self._fetch([i for i, _ in hits])
            if len(hits) < BATCH:
                return
            after = (hits[-1][1], hits[-1][0])

    # ---- idempotency

    @_redis_errors
    def remember_request(
        self, tenant: str, key: str, request_hash: str, response: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """SET NX decides the first writer; the loop covers the stored entry expiring in between."""
        k = self._k_idem(tenant, key)
        value = _dumps({"hash": request_hash, "response": response})
        while True:
            if self._r.set(k, value, nx=True, px=self._ttl_ms):
                return None
            stored = self._r.get(k)
            if stored is not None:
                data = json.loads(stored)
                return data["hash"], data["response"]

    # ---- tenants and keys

    @_redis_errors
    def create_tenant(self, tenant: str, webhook_secret: str) -> None:
        """Create the tenant, or rotate its webhook secret if it exists."""
        self._r.set(self._k_secret(tenant), webhook_secret)

    @_redis_errors
    def add_api_key(self, tenant: str, key_hash: str, role: ApiRole) -> None:
        self._r.set(self._k_apikey(key_hash), f"{tenant}|{ApiRole(role)}")

    @_redis_errors
    def find_api_key(self, key_hash: str) -> tuple[str, ApiRole] | None:
        raw = self._r.get(self._k_apikey(key_hash))
        if raw is None:
            return None
        tenant, role = raw.rsplit("|", 1)  # roles never contain "|"; tenants might
        return tenant, ApiRole(role)

    @_redis_errors
    def webhook_secret(self, tenant: str) -> str | None:
        return cast(str | None, self._r.get(self._k_secret(tenant)))


# --------------------------------------------------------------------------- factory

def state_from_env(env: Mapping[str, str] | None = None) -> SqliteState | RedisState:
    """``GATECHECK_STATE=sqlite`` (default; file under ``GATECHECK_DATA_DIR``) or ``redis``."""
    env = os.environ if env is None else env
    kind = env.get("GATECHECK_STATE", "sqlite").strip().lower()
    if kind == "sqlite":
        return SqliteState(default_data_dir(env) / "state.sqlite3")
    if kind == "redis":
        return RedisState(env.get("GATECHECK_REDIS_URL") or "redis://127.0.0.1:6379/0")
    raise ValueError(f"GATECHECK_STATE must be 'sqlite' or 'redis', not {kind!r}")
