"""API keys, roles and rate limits.

Keys are stored only as SHA-256 hex (a stolen state store yields no usable
key); a key is high-entropy random, so an unsalted fast hash is enough: there
is no dictionary to attack. Lookups go by the first 16 hex digits of the hash
into a short-lived in-process cache, and the full hash is then compared with
``secrets.compare_digest`` (reliability-anchors §5, catalogue D38), so the
comparison of secret material takes the same time whatever the input. A miss
asks the state store (``find_api_key``), which only ever sees hashes.

Two token buckets, both in process (per API replica, which is what a
single-node deployment needs; a shared limiter would live in Redis):
per key (``settings.rate_limit_per_minute``) against resource exhaustion
(OWASP API4), and per client IP for *failed* authentications only, so a
guessing client is stopped without slowing legitimate callers behind the same
NAT. An IP over its failure budget gets 429 before its key is even looked at.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .api_models import ApiError
from .contracts import ApiRole, StateStore

KEY_PREFIX = "gck_"
AUTH_FAILURES_PER_MINUTE = 10
CACHE_TTL_S = 30.0
# A refill that float arithmetic leaves a hair under one token counts as one: Retry-After promises that
# waiting that many seconds is enough, and 12 * (5/60) is 0.99999... in binary floating point.
_TOKEN_EPSILON = 1e-9
_MAX_BEARER_LEN = 200


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
    """Turns an Authorization header into a Principal, or raises 401/429."""

    def __init__(
        self,
        state: StateStore,
        per_minute: int,
        failures_per_minute: int = AUTH_FAILURES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.clock = clock
        self.requests = TokenBucket(per_minute, clock=clock)
        self.failures = TokenBucket(failures_per_minute, clock=clock)
        self._cache: dict[str, tuple[str, str, ApiRole, float]] = {}  # hash[:16] -> (hash, tenant, role, expiry)
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, client_ip: str) -> Principal:
        wait = self.failures.wait_time(client_ip)
        if wait > 0:
            raise _rate_limited(wait, "too many failed authentication attempts from this address")
        key = _bearer(authorization)
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


def _bearer(authorization: str | None) -> str | None:
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
