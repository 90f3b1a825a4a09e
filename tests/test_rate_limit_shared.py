"""Rate limits shared by API replicas through Redis (catalogue 38 in scale-out mode).

Each "replica" is its own ``create_app`` over its own ``RedisState`` client, both on one real
``redis-server``: a per-process limiter would let two replicas accept twice the budget. Time comes
from Redis (``TIME``), so refill is checked with a 60/minute bucket (one token a second), not a fake clock.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import AUTH_FAILURES_PER_MINUTE, Authenticator, RedisTokenBucket, TokenBucket, new_api_key
from service.contracts import ApiRole
from service.settings import Settings
from service.state import RedisState, SqliteState
from service.storage import LocalStorage
from tests.servers import require_redis_server, start_redis

pytestmark = [pytest.mark.catalogue(38), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@dataclass
class Replicas:
    clients: list[TestClient]
    states: list[RedisState]
    keys: dict[str, str]

    def headers(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}


def replicas(url: str, tmp_path: Path, per_minute: int, n: int = 2) -> Replicas:
    """``n`` API apps, each with its own Redis client, sharing one key prefix (one deployment)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=tmp_path / "data", public_url="http://gatecheck.test",
                        rate_limit_per_minute=per_minute)
    storage = LocalStorage(tmp_path / "objects")
    states = [RedisState(url, prefix=prefix) for _ in range(n)]
    clients = [TestClient(create_app(settings, st, storage, lambda _sid: None, queue_depth=lambda: 0)) for st in states]
    keys: dict[str, str] = {}
    for tenant in ("acme", "other"):
        states[0].create_tenant(tenant, f"whsec-{tenant}")
        plaintext, digest = new_api_key()
        states[0].add_api_key(tenant, digest, ApiRole.SUBMITTER)
        keys[tenant] = plaintext
    return Replicas(clients, states, keys)


def test_a_burst_split_across_replicas_gets_one_budget(redis_url: str, tmp_path: Path) -> None:
    env = replicas(redis_url, tmp_path, per_minute=6)
    responses = [env.clients[i % 2].get("/v1/standards", headers=env.headers()) for i in range(9)]
    assert [r.status_code for r in responses] == [200] * 6 + [429] * 3  # not 12 x 200: one budget, two replicas
    for r in responses[6:]:
        assert r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 10  # 6/minute: a token every 10 s
    assert all(c.get("/v1/standards", headers=env.headers("other")).status_code == 200 for c in env.clients)  # per key


def test_failed_auth_budget_per_address_is_shared(redis_url: str, tmp_path: Path) -> None:
    env = replicas(redis_url, tmp_path, per_minute=1000)
    guess = {"Authorization": "Bearer gck_guess"}
    n = AUTH_FAILURES_PER_MINUTE
    assert [env.clients[i % 2].get("/v1/standards", headers=guess).status_code for i in range(n)] == [401] * n
    for client in env.clients:  # both replicas now refuse the address, even with a good key
        r = client.get("/v1/standards", headers=guess)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert client.get("/v1/standards", headers=env.headers()).status_code == 429


def test_shared_bucket_refills_by_redis_time_and_retry_after_is_truthful(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    a, b = (RedisState(redis_url, prefix=prefix).rate_limiter("key", 60) for _ in range(2))
    assert all((a if i % 2 else b).take("k") == 0 for i in range(60))
    wait = a.take("k")
    assert 0 < wait <= 1.0  # 60/minute refills one a second
    assert b.wait_time("k") > 0  # the other replica sees the same empty bucket
    time.sleep(wait)  # exactly the promised wait (Redis's clock) is enough
    assert b.take("k") == 0
    assert a.take("k") > 0


def test_buckets_expire_when_they_would_be_full_again(redis_url: str) -> None:
    state = RedisState(redis_url, prefix=f"t{uuid.uuid4().hex[:10]}")
    bucket = state.rate_limiter("key", 60)
    key = f"{bucket.prefix}:k"
    assert bucket.wait_time("k") == 0 and not state._r.exists(key)  # a peek stores nothing
    for _ in range(3):
        assert bucket.take("k") == 0
    # 3 tokens short of full at 1/s: full again in 3 s, so the key lives about 3 s (+1 s slack), never 60
    assert 3000 <= state._r.pttl(key) <= 4000


def test_redis_down_fails_the_limiter_open_never_a_5xx_from_it(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    require_redis_server()
    url, stop = start_redis()
    try:
        env = replicas(url, tmp_path, per_minute=2, n=1)
        client = env.clients[0]
        assert client.get("/v1/standards", headers=env.headers()).status_code == 200  # the key is now cached
    finally:
        stop()
    with caplog.at_level(logging.WARNING, logger="gatecheck.api"):
        started = time.perf_counter()
        codes = [client.get("/v1/standards", headers=env.headers()).status_code for _ in range(5)]
        per_request_s = (time.perf_counter() - started) / 5
        assert codes == [200] * 5  # over the 2/minute budget, but the limiter cannot count: let through
        # a request that needs the store gets the store's 503, not a 500 from the limiter
        assert client.get("/v1/submissions", headers=env.headers()).status_code == 503
        assert client.get("/v1/standards", headers={"Authorization": "Bearer gck_guess"}).status_code == 503
    outages = [r for r in caplog.records if r.getMessage() == "rate_limiter_unavailable"]
    assert sorted(r.fields["limiter"].rsplit(":", 1)[1] for r in outages) == ["auth-failures", "key"]  # once each
    assert per_request_s < 1.0, per_request_s


def test_sqlite_keeps_in_process_buckets_redis_shares(redis_url: str, tmp_path: Path) -> None:
    local = Authenticator.for_state(SqliteState(tmp_path / "state.sqlite3"), 5)
    assert isinstance(local.requests, TokenBucket) and isinstance(local.failures, TokenBucket)
    shared = Authenticator.for_state(RedisState(redis_url, prefix=f"t{uuid.uuid4().hex[:10]}"), 5)
    assert isinstance(shared.requests, RedisTokenBucket) and isinstance(shared.failures, RedisTokenBucket)
    assert shared.requests.capacity == 5 and shared.failures.capacity == AUTH_FAILURES_PER_MINUTE
