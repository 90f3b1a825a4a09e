"""API keys, roles and rate limits.

Keys are stored only as SHA-256 hex (a stolen state store yields no usable
key); a key is high-entropy random, so an unsalted fast hash is enough: there
is no dictionary to attack. Lookups go by the first 16 hex digits of the hash
into a short-lived in-process cache, and the full hash is then compared with
``secrets.compare_digest`` (reliability-anchors §5, catalogue D38), so the
comparison of secret material takes the same time whatever the input. A miss
asks the state store (``find_api_key``), which only ever sees hashes.

Two token buckets: per key (``settings.rate_limit_per_minute``) against
resource exhaustion (OWASP API4), and per client IP for *failed*
authentications only, so a guessing client is stopped without slowing
legitimate callers behind the same NAT. An IP over its failure budget gets 429
before its key is even looked at. With the Redis state store (scale-out) both
buckets live in that Redis (``RedisTokenBucket``: one Lua script, Redis's own
clock), so N API replicas share one budget instead of granting N times it; a
Redis outage fails the limiter open (the store's outage already answers 503).
Embedded (SQLite) keeps them in process (``TokenBucket``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import logs
from .api_models import ApiError
from .contracts import ApiRole, StateStore

KEY_PREFIX = "gck_"
AUTH_FAILURES_PER_MINUTE = 10
CACHE_TTL_S = 30.0
# A refill that float arithmetic leaves a hair under one token counts as one: Retry-After promises that
# waiting that many seconds is enough, and 12 * (5/60) is 0.99999... in binary floating point.
_TOKEN_EPSILON = 1e-9
_MAX_BEARER_LEN = 200
#: While Redis is unreachable the shared limiter lets requests through; it says so at most this often.
_OUTAGE_LOG_INTERVAL_S = 60.0


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A new key: (plaintext to hand over once, sha256 hex to store)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_key(plaintext)


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    role: ApiRole
    key_hash: str

    def may(self, *roles: ApiRole) -> bool:
        return self.role is ApiRole.ADMIN or self.role in roles


class RateLimiter(Protocol):
    """Token buckets keyed by string: ``TokenBucket`` (in process) or ``RedisTokenBucket`` (shared by replicas)."""

    def take(self, key: str) -> float:
        """Take a token; returns 0 on success, else the seconds until one is available."""
        ...

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` has a token, without taking one."""
        ...


class TokenBucket:
    """Many buckets keyed by string, each refilling ``per_minute`` tokens a minute up to ``per_minute``.

    Bounded: the least recently used buckets are dropped past ``max_keys``, so a
    client spraying source addresses cannot grow memory without limit (a dropped
    bucket restarts full, which only ever errs towards letting a request in).
    """

    def __init__(self, per_minute: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max(per_minute, 1))
        self.rate = self.capacity / 60.0
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.rate)

    def take(self, key: str) -> float:
        """Take a token; returns 0 on success, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            tokens = self._level(key, now)
            if tokens >= 1.0 - _TOKEN_EPSILON:
                self._store(key, max(tokens - 1.0, 0.0), now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.rate

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` has a token, without taking one."""
        with self._lock:
            tokens = self._level(key, self.clock())
            return 0.0 if tokens >= 1.0 - _TOKEN_EPSILON else (1.0 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


# KEYS[1]: the bucket, a hash {tokens, ts}. ARGV: capacity, refill per second, '1' take / '0' peek, epsilon.
# Returns the seconds to wait as a string ('0': there was a token), since Redis truncates Lua numbers to integers.
# Time is Redis's (TIME), so replicas with skewed clocks agree; a clock stepping back refills nothing. The key
# expires when the bucket would be full again: a missing bucket is a full one, so idle buckets cost no memory.
_LUA_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap, rate, eps = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if not tokens or not ts then tokens, ts = cap, now end
tokens = math.min(cap, tokens + math.max(now - ts, 0) * rate)
if tokens < 1 - eps then return string.format('%.17g', (1 - tokens) / rate) end
if ARGV[3] == '1' then
  tokens = math.max(tokens - 1, 0)
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate * 1000) + 1000)
end
return '0'
"""


class RedisTokenBucket:
    """``TokenBucket`` semantics in Redis, one atomic script per call, so every API replica draws on one budget.

    Fails open: if Redis cannot answer, the request is let through (logged at most once a minute). The limiter
    guards against exhaustion, not access; the state store's own outage already turns the request into a 503,
    and a limiter hiccup must not turn it into a 500.
    """

    def __init__(self, client: Any, per_minute: int, prefix: str) -> None:
        import redis.exceptions as rx

        self.capacity = float(max(per_minute, 1))
        self.rate = self.capacity / 60.0
        self.prefix = prefix
        # _TOKEN_EPSILON, plus a microsecond of refill: TIME is whole microseconds, so a wait measured between two
        # truncated readings can come up 1 us short of the real one, and Retry-After must still be enough.
        self._epsilon = _TOKEN_EPSILON + self.rate * 1e-6
        self._script = client.register_script(_LUA_BUCKET)
        self._errors: tuple[type[BaseException], ...] = (rx.RedisError,)
        self._logged_at = -math.inf
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token; returns 0 on success, else the seconds until one is available."""
        return self._run(key, "1")

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` has a token, without taking one."""
        return self._run(key, "0")

    def _run(self, key: str, take: str) -> float:
        try:
            wait = self._script(keys=[f"{self.prefix}:{key}"], args=[self.capacity, self.rate, take, self._epsilon])
        except self._errors as e:
            self._outage(e)
            return 0.0
        return float(wait)

    def _outage(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._logged_at < _OUTAGE_LOG_INTERVAL_S:
                return
            self._logged_at = now
        logs.event("rate_limiter_unavailable", logging.WARNING, limiter=self.prefix, exception=type(exc).__name__)


def _rate_limited(wait_s: float, message: str) -> ApiError:
    return ApiError(
        429, "rate_limited", message, "Wait for the number of seconds in Retry-After and try again.",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, "Send 'Authorization: Bearer <API key>' with a key issued for your tenant.",
        headers={"WWW-Authenticate": 'Bearer realm="gatecheck"'},
    )


class Authenticator:
    """Turns an Authorization header into a Principal, or raises 401/429.

    Limiters default to in-process ``TokenBucket``s (driven by ``clock``); ``for_state`` picks shared ones.
    """

    def __init__(
        self,
        state: StateStore,
        per_minute: int,
        failures_per_minute: int = AUTH_FAILURES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        *,
        requests: RateLimiter | None = None,
        failures: RateLimiter | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.requests: RateLimiter = requests or TokenBucket(per_minute, clock=clock)
        self.failures: RateLimiter = failures or TokenBucket(failures_per_minute, clock=clock)
        self._cache: dict[str, tuple[str, str, ApiRole, float]] = {}  # hash[:16] -> (hash, tenant, role, expiry)
        self._lock = threading.Lock()

    @classmethod
    def for_state(cls, state: StateStore, per_minute: int,
                  failures_per_minute: int = AUTH_FAILURES_PER_MINUTE) -> Authenticator:
        """Shared limiters when the store offers them (``RedisState.rate_limiter``: replicas share one budget),
        else in process (SQLite: one API process)."""
        shared = getattr(state, "rate_limiter", None)
        if not callable(shared):
            return cls(state, per_minute, failures_per_minute)
        return cls(state, per_minute, failures_per_minute,
                   requests=shared("key", per_minute), failures=shared("auth-failures", failures_per_minute))

    def authenticate(self, authorization: str | None, client_ip: str) -> Principal:
        wait = self.failures.wait_time(client_ip)
        if wait > 0:
            raise _rate_limited(wait, "too many failed authentication attempts from this address")
        key = bearer_token(authorization)
        found = self._lookup(hash_key(key)) if key else None
        if found is None:
            self.failures.take(client_ip)
            raise _unauthorized("missing or invalid API key")
        wait = self.requests.take(found.key_hash)
        if wait > 0:
            raise _rate_limited(wait, "request rate limit for this API key exceeded")
        return found

    def _lookup(self, key_hash: str) -> Principal | None:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key_hash[:16])
        if cached is not None and cached[3] > now and secrets.compare_digest(cached[0], key_hash):
            return Principal(cached[1], cached[2], key_hash)
        row = self.state.find_api_key(key_hash)
        if row is None:
            return None
        tenant, role = row
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash[:16]] = (key_hash, tenant, ApiRole(role), now + CACHE_TTL_S)
        return Principal(tenant, ApiRole(role), key_hash)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None (bounded: no huge headers parsed)."""
    if not authorization or len(authorization) > _MAX_BEARER_LEN + 7:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_BEARER_LEN:
        return None
    return token


def require(principal: Principal, *roles: ApiRole) -> None:
    """403 unless the principal's role is one of ``roles`` (admin may do everything)."""
    if not principal.may(*roles):
        allowed = ", ".join(sorted({str(r) for r in (*roles, ApiRole.ADMIN)}))
        raise ApiError(
            403, "forbidden", f"a {principal.role} key may not do this (needs {allowed})",
            "Use a key with the needed role; ask your gatecheck administrator.",
        )
