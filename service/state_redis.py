"""Redis state for scale-out: records as hashes, indexes as sorted sets, Lua for atomicity."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from service.contracts import ApiRole, AuditRecord, Status, SubmissionRecord
from service.state_common import (
    BATCH,
    DEFAULT_IDEMPOTENCY_TTL_S,
    STATUS_ORDER,
    _audit_fill,
    _clamp,
    _dumps,
    _field_updates,
    _record,
    _response_submission_id,
    _stamp_new,
    _task_increments,
    _task_stats,
    _translate_errors,
    decode_cursor,
    encode_cursor,
)

if TYPE_CHECKING:
    from service.auth import RedisTokenBucket

_LUA_CREATE = """
-- KEYS: record, tenant index, tenant+status index, created index, global status index.
-- ARGV: id, score, field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 2, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return 1
"""

# Moves the id between status indexes (the tenant's: KEYS[2..5]; global: KEYS[6..9]) when the status
# changes from `cur` to `new`. ARGV[3..6] are the 4 statuses (JSON) in STATUS_ORDER, ARGV[2] the id.
_LUA_MOVE = """
local function move(cur, new)
  if cur == new then return end
  local score = redis.call('HGET', KEYS[1], 'created_at')
  for i = 1, 4 do
    if ARGV[2 + i] == cur then
      redis.call('ZREM', KEYS[1 + i], ARGV[2]); redis.call('ZREM', KEYS[5 + i], ARGV[2])
    end
    if ARGV[2 + i] == new then
      redis.call('ZADD', KEYS[1 + i], score, ARGV[2]); redis.call('ZADD', KEYS[5 + i], score, ARGV[2])
    end
  end
end
"""

_LUA_TRANSITION = _LUA_MOVE + """
-- KEYS: record, the tenant's 4 status indexes, the 4 global status indexes (STATUS_ORDER).
-- ARGV: tenant (JSON), id, the 4 statuses (JSON), new status (JSON), n allowed, n allowed statuses (JSON),
--       then field/value pairs.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[8])
local ok = false
for i = 9, 8 + n do
  if ARGV[i] == cur then ok = true break end
end
if not ok then return 0 end
for i = 9 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'status', ARGV[7])
move(cur, ARGV[7])
return 1
"""

_LUA_CLAIM = _LUA_MOVE + """
-- KEYS: as transition. ARGV: tenant (JSON), id, the 4 statuses (JSON), now, takeover owner (JSON, '' = none),
--       then field/value pairs (owner, lease_until, started_at, ...). Returns the new attempt count or false.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return false end
local queued, processing = ARGV[3], ARGV[4]
if cur ~= queued then
  if cur ~= processing then return false end
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or 'null')
  if lease and lease >= tonumber(ARGV[7]) then
    if ARGV[8] == '' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[8] then return false end
  end
end
for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'status', processing)
move(cur, processing)
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

_LUA_REMEMBER = """
-- KEYS: idempotency key, then the index of keys naming a submission (optional).
-- ARGV: value, ttl ms. Returns false if stored now, else the value stored first.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if KEYS[2] then
    redis.call('SADD', KEYS[2], KEYS[1])
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return false
end
return redis.call('GET', KEYS[1])
"""

_LUA_ERASE = """
-- KEYS: record, tenant index, created index, idempotency index of the id, audit hash, audit index,
--       tenant audit index, then every status index holding the id.
-- ARGV: tenant (JSON), id, audit id, audit time, audit JSON (counts of what the caller deleted).
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2]); redis.call('ZREM', KEYS[3], ARGV[2])
for i = 8, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
local forgotten = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[4])) do forgotten = forgotten + redis.call('DEL', k) end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[5], 'record', ARGV[5], 'idempotency_entries', forgotten)
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[3]); redis.call('ZADD', KEYS[7], ARGV[4], ARGV[3])
return forgotten
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


#: Error replies meaning "this server cannot take the write now" (retry later), not "your request is wrong".
_TRANSIENT_REPLIES = frozenset({"MISCONF", "BUSY", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN"})


def _redis_unavailable(exc: BaseException) -> bool:
    """Outages and refusals: unreachable, loading (BusyLoadingError is a ConnectionError), read-only
    replica, and OOM: with ``maxmemory-policy noeviction`` a full Redis refuses writes, and that must
    reach the API as 503 (catalogue 29), not a 500. Also refused persistence (MISCONF) and busy scripts."""
    import redis.exceptions as rx

    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | rx.ReadOnlyError | rx.OutOfMemoryError):
        return True
    return isinstance(exc, rx.ResponseError) and str(exc).split(" ", 1)[0] in _TRANSIENT_REPLIES


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
        self._claim = self._r.register_script(_LUA_CLAIM)
        self._remember = self._r.register_script(_LUA_REMEMBER)
        self._erase = self._r.register_script(_LUA_ERASE)
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

    def _k_global_status(self, status: Status) -> str:
        return f"{self._p}:status:{status}"

    def _k_global_statuses(self) -> list[str]:
        return [self._k_global_status(s) for s in STATUS_ORDER]

    def _k_idem_of(self, submission_id: str) -> str:
        return f"{self._p}:idem-of:{submission_id}"

    def _k_audit(self, audit_id: str | None = None, tenant: str | None = None) -> str:
        if audit_id is not None:
            return f"{self._p}:audit:{audit_id}"
        return f"{self._p}:audit-index" if tenant is None else f"{self._p}:audit-tenant:{tenant}"

    def _k_created(self) -> str:
        return f"{self._p}:created"

    def _k_idem(self, tenant: str, key: str) -> str:
        return f"{self._p}:idem:{len(tenant)}:{tenant}:{key}"  # length prefix: "a:b"+"c" != "a"+"b:c"

    def _k_apikey(self, key_hash: str) -> str:
        return f"{self._p}:key:{key_hash}"

    def _k_secret(self, tenant: str) -> str:
        return f"{self._p}:tenant-secret:{tenant}"

    def _k_task_stats(self) -> str:
        return f"{self._p}:stats:tasks"

    def close(self) -> None:
        self._r.close()

    def rate_limiter(self, name: str, per_minute: int) -> RedisTokenBucket:
        """A token bucket shared by every API replica on this Redis (keys under this store's prefix)."""
        from service.auth import RedisTokenBucket

        return RedisTokenBucket(self._r, per_minute, prefix=f"{self._p}:rate:{name}")

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
                self._k_created(), self._k_global_status(rec.status)]
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
        keys = [self._k_sub(submission_id), *self._k_statuses(json.loads(tenant_json)), *self._k_global_statuses()]
        args = [tenant_json, submission_id, *(_dumps(s) for s in STATUS_ORDER), _dumps(to), len(allowed), *allowed,
                *(x for pair in updates.items() for x in pair)]
        return bool(self._transition(keys=keys, args=args))

    @_redis_errors
    def claim(self, submission_id: str, owner: str, lease_until: float, *, now: float,
              takeover: str | None = None, **fields: Any) -> int | None:
        """The claim rule (see the contract) in one Lua script; the tenant is read first to name indexes."""
        updates = _field_updates({**fields, "owner": owner, "lease_until": lease_until, "started_at": now})
        tenant_json = self._r.hget(self._k_sub(submission_id), "tenant")
        if tenant_json is None:
            return None
        keys = [self._k_sub(submission_id), *self._k_statuses(json.loads(tenant_json)), *self._k_global_statuses()]
        args = [tenant_json, submission_id, *(_dumps(s) for s in STATUS_ORDER), repr(float(now)),
                "" if takeover is None else _dumps(takeover), *(x for pair in updates.items() for x in pair)]
        n = self._claim(keys=keys, args=args)
        return None if n is None else int(n)

    @_redis_errors
    def unfinished(self) -> Iterator[SubmissionRecord]:
        """From the global QUEUED and PROCESSING indexes, oldest first, in keyset batches."""
        for status in (Status.QUEUED, Status.PROCESSING):
            after: tuple[float, str] | None = None
            while True:
                hits = self._zkeyset(self._k_global_status(status), after, BATCH, desc=False)
                yield from (r for r in self._fetch([i for i, _ in hits]) if r.status is status)
                if len(hits) < BATCH:
                    break
                after = (hits[-1][1], hits[-1][0])

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
        keys = [self._k_sub(submission_id), self._k_tenant(tenant), *self._k_statuses(tenant), self._k_created(),
                *self._k_global_statuses()]
        return bool(self._delete(keys=keys, args=[_dumps(tenant), submission_id]))

    @_redis_errors
    def erase(self, submission_id: str, tenant: str, audit: AuditRecord) -> bool:
        """One Lua script: record and indexes, the idempotency keys indexed under the id, the audit entry."""
        entry = _audit_fill(audit)
        entry.deleted["records"] = 1
        keys = [self._k_sub(submission_id), self._k_tenant(tenant), self._k_created(), self._k_idem_of(submission_id),
                self._k_audit(entry.id), self._k_audit(), self._k_audit(tenant=entry.tenant),
                *self._k_statuses(tenant), *self._k_global_statuses()]
        args = [_dumps(tenant), submission_id, entry.id, repr(float(entry.at)), _dumps(entry.to_dict())]
        return self._erase(keys=keys, args=args) is not None

    @_redis_errors
    def audit_log(self, tenant: str | None = None, limit: int = 100) -> list[AuditRecord]:
        ids = self._r.zrevrange(self._k_audit(tenant=tenant), 0, _clamp(limit) - 1)
        pipe = self._r.pipeline(transaction=False)
        for audit_id in ids:
            pipe.hgetall(self._k_audit(audit_id))
        out = []
        for raw in pipe.execute():
            if raw:
                entry = AuditRecord(**json.loads(raw["record"]))
                entry.deleted["idempotency_entries"] = int(raw.get("idempotency_entries", 0))
                out.append(entry)
        return out

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
        """SET NX decides the first writer, in Lua with the index by submission id (for ``erase``)."""
        keys = [self._k_idem(tenant, key)]
        sid = _response_submission_id(response)
        if sid is not None:
            keys.append(self._k_idem_of(sid))
        stored = self._remember(keys=keys, args=[_dumps({"hash": request_hash, "response": response}), self._ttl_ms])
        if stored is None:
            return None
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

    # ---- task metrics

    @_redis_errors
    def record_task(self, outcome: str, status: Status, duration_s: float) -> None:
        """HINCRBY/HINCRBYFLOAT on one hash in MULTI/EXEC: readers never see half of it applied."""
        key = self._k_task_stats()
        pipe = self._r.pipeline(transaction=True)
        for name, inc in _task_increments(outcome, status, duration_s).items():
            if isinstance(inc, int):
                pipe.hincrby(key, name, inc)
            else:
                pipe.hincrbyfloat(key, name, inc)
        pipe.execute()

    @_redis_errors
    def task_stats(self) -> dict[str, Any]:
        """One HGETALL of the one hash: an atomic snapshot."""
        return _task_stats(self._r.hgetall(self._k_task_stats()))


# --------------------------------------------------------------------------- factory
