"""Redis state for scale-out: records as hashes, indexes as sorted sets, Lua for atomicity."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

from service.contracts import ApiRole, Status, SubmissionRecord
from service.state_common import (
    BATCH,
    DEFAULT_IDEMPOTENCY_TTL_S,
    STATUS_ORDER,
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

    def _k_task_stats(self) -> str:
        return f"{self._p}:stats:tasks"

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
