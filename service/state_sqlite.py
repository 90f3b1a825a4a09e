"""SQLite state for embedded mode: one file, WAL, atomic conditional UPDATEs."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from service.contracts import ApiRole, AuditRecord, Status, SubmissionRecord
from service.state_common import (
    BATCH,
    DEFAULT_IDEMPOTENCY_TTL_S,
    _audit_fill,
    _clamp,
    _dumps,
    _field_updates,
    _record,
    _stamp_new,
    _task_increments,
    _task_stats,
    _translate_errors,
    decode_cursor,
    encode_cursor,
)

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
CREATE TABLE IF NOT EXISTS task_stats (
    name TEXT PRIMARY KEY,  -- counter names: see state_common (task|status|outcome, le|bound, sum, count)
    value NUMERIC NOT NULL  -- integer counts; REAL for sum
);
CREATE INDEX IF NOT EXISTS submissions_by_status ON submissions (status, created_at, id);
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL  -- AuditRecord as JSON: ids and counts, never names or content
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, at);
CREATE INDEX IF NOT EXISTS audit_by_at ON audit (at);
PRAGMA user_version = 3;
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
    def claim(self, submission_id: str, owner: str, lease_until: float, *, now: float,
              takeover: str | None = None, **fields: Any) -> int | None:
        """One conditional UPDATE ... RETURNING: the WHERE clause is the whole claim rule (see the contract)."""
        updates = _field_updates({**fields, "owner": owner, "lease_until": lease_until, "started_at": now})
        sets = "".join(f", '$.{name}', json(?)" for name in updates)
        rows = self._conn().execute(
            "UPDATE submissions SET status = 'processing', record = json_set(record, '$.status', 'processing', "
            f"'$.attempts', COALESCE(json_extract(record, '$.attempts'), 0) + 1{sets}) "
            "WHERE id = ? AND (status = 'queued' OR (status = 'processing' AND ("
            "COALESCE(json_extract(record, '$.lease_until'), 0) < ? OR json_extract(record, '$.owner') = ?))) "
            "RETURNING json_extract(record, '$.attempts')",
            [*updates.values(), submission_id, now, takeover],  # takeover None: "= NULL" never matches
        ).fetchall()
        return int(rows[0][0]) if rows else None

    @_sqlite_errors
    def unfinished(self) -> Iterator[SubmissionRecord]:
        """QUEUED and PROCESSING submissions, oldest first, in keyset batches over the status index."""
        yield from self._oldest_first("status IN ('queued', 'processing')", ())

    @_sqlite_errors
    def delete(self, submission_id: str, tenant: str) -> bool:
        cur = self._conn().execute("DELETE FROM submissions WHERE id = ? AND tenant = ?", (submission_id, tenant))
        return cur.rowcount == 1

    @_sqlite_errors
    def erase(self, submission_id: str, tenant: str, audit: AuditRecord) -> bool:
        """One IMMEDIATE transaction: record, idempotency entries naming it, audit row; all or nothing."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("DELETE FROM submissions WHERE id = ? AND tenant = ?",
                            (submission_id, tenant)).rowcount != 1:
                conn.execute("ROLLBACK")
                return False
            forgotten = conn.execute(
                "DELETE FROM requests WHERE tenant = ? AND json_extract(response, '$.body.id') = ?",
                (tenant, submission_id)).rowcount
            entry = _audit_fill(audit)
            entry.deleted |= {"records": 1, "idempotency_entries": forgotten}
            conn.execute("INSERT INTO audit (id, at, tenant, record) VALUES (?, ?, ?, ?)",
                         (entry.id, entry.at, entry.tenant, _dumps(entry.to_dict())))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return True

    @_sqlite_errors
    def audit_log(self, tenant: str | None = None, limit: int = 100) -> list[AuditRecord]:
        sql, args = "SELECT record FROM audit", []
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", [tenant]
        rows = self._conn().execute(sql + " ORDER BY at DESC, id DESC LIMIT ?", [*args, _clamp(limit)]).fetchall()
        return [AuditRecord(**json.loads(r[0])) for r in rows]

    @_sqlite_errors
    def expired(self, older_than: float) -> Iterator[SubmissionRecord]:
        """Submissions created before ``older_than`` (epoch seconds), oldest first, in keyset batches.

        Batches are re-queried after the last (created_at, id) seen, so the caller may delete
        each record while iterating without skipping or repeating any.
        """
        yield from self._oldest_first("created_at < ?", (older_than,))

    def _oldest_first(self, where: str, params: tuple[object, ...]) -> Iterator[SubmissionRecord]:
        """Records matching ``where``, oldest first, re-queried after the last (created_at, id) seen."""
        after: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self._conn().execute(
                f"SELECT created_at, id, status, record FROM submissions WHERE {where} "  # callers pass fixed SQL
                "AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?", (*params, *after, BATCH),
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

    # ---- task metrics

    @_sqlite_errors
    def record_task(self, outcome: str, status: Status, duration_s: float) -> None:
        """One multi-row UPSERT: a single statement, so all four counters change together or not at all."""
        incs = _task_increments(outcome, status, duration_s)
        self._conn().execute(
            f"INSERT INTO task_stats (name, value) VALUES {', '.join(['(?, ?)'] * len(incs))} "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [x for pair in incs.items() for x in pair],
        )

    @_sqlite_errors
    def task_stats(self) -> dict[str, Any]:
        """One SELECT: one snapshot under WAL, never half of a ``record_task``."""
        return _task_stats(dict(self._conn().execute("SELECT name, value FROM task_stats").fetchall()))


# --------------------------------------------------------------------------- Redis
#
# Layout (prefix "gc" by default):
#   {p}:sub:{id}                   hash: one field per SubmissionRecord field, value JSON-encoded
#   {p}:tenant:{tenant}            zset id -> created_at (listing, newest first)
#   {p}:tenant-status:{s}:{tenant} zset id -> created_at, one per status (filtered listing)
#   {p}:status:{s}                 zset id -> created_at over all tenants, one per status (unfinished)
#   {p}:created                    zset id -> created_at over all tenants (expired)
#   {p}:idem:{len(tenant)}:{tenant}:{key}  JSON {"hash", "response"}, SET NX with a TTL
#   {p}:idem-of:{submission id}    set of the idem keys whose response names it (erase), same TTL
#   {p}:audit:{audit id}           hash: record (AuditRecord JSON), idempotency_entries (count)
#   {p}:audit-index, {p}:audit-tenant:{tenant}  zsets audit id -> at
#   {p}:key:{sha256}               "tenant|role"
#   {p}:tenant-secret:{tenant}     webhook secret
#   {p}:stats:tasks                hash: task metrics counters (names in state_common), HINCRBY in MULTI
#
# A hash of JSON values rather than one JSON string: the Lua scripts then compare and set
# fields without decoding JSON in Redis, whose cjson would round floats to 14 digits and turn
# empty lists into objects; HINCRBY gives add_attempt for free.
