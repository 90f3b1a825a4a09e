"""Storage (local disk, MinIO SDK against moto's S3 server) and state (SQLite, real Redis) contracts.

Each behaviour is tested once and run against every backend, so the embedded and
scale-out modes cannot drift apart.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.contracts import (
    TASK_DURATION_BUCKETS,
    ApiRole,
    Status,
    StoredFile,
    SubmissionRecord,
    submission_prefix,
)
from service.state import (
    RedisState,
    SqliteState,
    StateUnavailable,
    decode_cursor,
    encode_cursor,
    state_from_env,
)
from service.storage import (
    LocalStorage,
    MinioStorage,
    StorageError,
    check_key,
    storage_from_env,
    translate_s3_error,
)
from tests.servers import fill_redis, free_port, require_redis_server

MiB = 1024 * 1024

# --------------------------------------------------------------------------- server fixtures


def _minio(url: str, **kw: Any) -> MinioStorage:
    return MinioStorage(url, "testing", "testing", bucket=f"gc-{uuid.uuid4().hex[:12]}", region="us-east-1", **kw)


@pytest.fixture(params=["local", "minio"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStorage | MinioStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    return _minio(request.getfixturevalue("moto_url"))


@pytest.fixture(params=["sqlite", "redis"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., SqliteState | RedisState]]:
    """A factory for fresh, isolated stores of the parametrized backend (own file / own key prefix)."""
    made: list[SqliteState | RedisState] = []

    def make(**kw: Any) -> SqliteState | RedisState:
        if request.param == "sqlite":
            st: SqliteState | RedisState = SqliteState(tmp_path / f"state-{len(made)}.sqlite3", **kw)
        else:
            st = RedisState(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex[:10]}", **kw)
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


@pytest.fixture
def state(make_state: Callable[..., SqliteState | RedisState]) -> SqliteState | RedisState:
    return make_state()


# --------------------------------------------------------------------------- helpers


class ChunkStream(io.RawIOBase):
    """``total`` pseudo-random bytes produced chunk by chunk (never the whole object in memory)."""

    def __init__(self, total: int, seed: bytes = b"gc", on_read: Callable[[int], None] | None = None) -> None:
        self.total, self.sent, self.seed, self.on_read, self.reads = total, 0, seed, on_read, 0
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.total - self.sent, 256 * 1024)
        if n <= 0:
            return 0
        self.reads += 1
        if self.on_read:
            self.on_read(self.reads)
        block = hashlib.sha256(self.seed + self.sent.to_bytes(8, "big")).digest() * (n // 32 + 1)
        data = block[:n]
        buf[:n] = data
        self.sha.update(data)
        self.sent += n
        return n


def sha256_of(stream: io.IOBase) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with stream:
        while chunk := stream.read(MiB):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def read(storage: LocalStorage | MinioStorage, key: str) -> bytes:
    with storage.get(key) as f:
        return f.read()


def record(tenant: str = "acme", created_at: float = 0.0, **kw: Any) -> SubmissionRecord:
    return SubmissionRecord(id=kw.pop("id", uuid.uuid4().hex), tenant=tenant, profile="st0505", method="portfolio",
                            created_at=created_at, **kw)


def run_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in n threads released together by a barrier; return results by index."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


# --------------------------------------------------------------------------- storage: both backends


def test_put_get_exists(storage: LocalStorage | MinioStorage) -> None:
    key = submission_prefix("acme", "s1") + "files/f1"
    assert not storage.exists(key)
    storage.put(key, io.BytesIO(b"hello"), 5, "text/plain")
    assert storage.exists(key)
    assert read(storage, key) == b"hello"
    storage.put(key, io.BytesIO(b"replaced"))  # overwrite, unknown length
    assert read(storage, key) == b"replaced"
    assert storage.ping()


def test_get_missing_is_not_found(storage: LocalStorage | MinioStorage) -> None:
    with pytest.raises(StorageError) as e:
        storage.get("tenants/acme/nothing")
    assert e.value.code == "not_found"


@pytest.mark.parametrize("known_length", [False, True])
def test_large_stream_roundtrip(storage: LocalStorage | MinioStorage, known_length: bool) -> None:
    total = 30 * MiB + 12345  # several 10 MiB multipart parts plus a ragged tail
    src = ChunkStream(total)
    storage.put("big/object.bin", io.BufferedReader(src), total if known_length else None)
    assert src.sent == total
    assert sha256_of(storage.get("big/object.bin")) == (src.sha.hexdigest(), total)


def test_short_stream_with_length_fails_and_leaves_nothing(storage: LocalStorage | MinioStorage) -> None:
    with pytest.raises(OSError):
        storage.put("short/obj", io.BytesIO(b"abc"), 10)
    assert not storage.exists("short/obj")


def test_delete_prefix(storage: LocalStorage | MinioStorage) -> None:
    keep, gone = submission_prefix("acme", "s2"), submission_prefix("acme", "s1")
    for key in (gone + "a", gone + "files/b", gone + "files/deep/c", keep + "a", "tenants/acme/submissions/s10/x"):
        storage.put(key, io.BytesIO(key.encode()))
    assert storage.delete_prefix(gone) == 3
    assert not storage.exists(gone + "files/b")
    assert storage.exists(keep + "a") and storage.exists("tenants/acme/submissions/s10/x")  # s10 is not s1/
    assert storage.delete_prefix(gone) == 0
    assert storage.delete_prefix("tenants/acme/submissions/s") == 2  # a plain string prefix, as in S3
    assert storage.delete_prefix("never/written/") == 0


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "a\\b", "a/\x00b", "a/.gctmp-x"])
def test_unsafe_keys_rejected(storage: LocalStorage | MinioStorage, bad: str) -> None:
    with pytest.raises(ValueError):
        storage.put(bad, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        storage.get(bad)
    with pytest.raises(ValueError):
        storage.delete_prefix(bad)


def test_check_key_allows_prefixes_with_trailing_slash() -> None:
    assert check_key("tenants/a/", prefix=True) == "tenants/a/"
    with pytest.raises(ValueError):
        check_key("tenants/a/")  # an object key cannot end in /
    with pytest.raises(ValueError):
        check_key("x" * 1025)


# --------------------------------------------------------------------------- storage: local specifics


def test_local_keys_stay_under_root(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError):
        st.put("../escape", io.BytesIO(b"x"))
    assert not (tmp_path / "escape").exists()
    st.put("a/b/c", io.BytesIO(b"x"))
    assert (tmp_path / "root" / "a" / "b" / "c").read_bytes() == b"x"


def test_local_readers_never_see_partial_objects(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    st.put("doc", io.BytesIO(b"old"))
    seen: list[bytes] = []

    def mid_write(n: int) -> None:
        if n == 3:  # the new object is half written: readers still see the old one whole
            seen.append(read(st, "doc"))

    st.put("doc", io.BufferedReader(ChunkStream(2 * MiB, on_read=mid_write)))
    assert seen == [b"old"]
    assert len(read(st, "doc")) == 2 * MiB

    class Boom(ChunkStream):
        def readinto(self, buf: Any) -> int:
            if self.reads == 2:
                raise RuntimeError("client went away")
            return super().readinto(buf)

    with pytest.raises(RuntimeError):
        st.put("doc", io.BufferedReader(Boom(4 * MiB)))
    assert len(read(st, "doc")) == 2 * MiB  # the failed write left the previous object
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".gctmp-")]


def test_local_presign_is_none_and_delete_prunes_dirs(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    assert st.presigned_put("a/b", 60) is None
    st.put("tenants/t/submissions/s/files/x", io.BytesIO(b"1"))
    assert st.delete_prefix("tenants/t/submissions/s/") == 1
    assert not (tmp_path / "tenants" / "t" / "submissions" / "s").exists()


# --------------------------------------------------------------------------- storage: MinIO specifics


def test_minio_presigned_put_roundtrip(moto_url: str) -> None:
    st = _minio(moto_url)
    key = submission_prefix("acme", "s9") + "files/upload.pdf"
    url = st.presigned_put(key, 300)
    assert url and url.startswith(moto_url) and "X-Amz-Signature=" in url
    body = os.urandom(256 * 1024)
    resp = httpx.put(url, content=body, timeout=10)
    assert resp.status_code == 200, resp.text
    assert read(st, key) == body
    with pytest.raises(ValueError):
        st.presigned_put(key, 8 * 24 * 3600)


def test_minio_public_endpoint_signs_for_public_host(moto_url: str) -> None:
    st = _minio(moto_url, public_endpoint="https://files.example.org")
    url = st.presigned_put("a/b", 60)
    assert url and url.startswith("https://files.example.org/")


def test_minio_unreachable_is_unavailable() -> None:
    st = MinioStorage(f"127.0.0.1:{free_port()}", "k", "s", "gatecheck", retries=0, connect_timeout_s=1)
    assert st.ping() is False
    with pytest.raises(StorageError) as e:
        st.put("a/b", io.BytesIO(b"x"), 1)
    assert e.value.code == "unavailable"
    with pytest.raises(StorageError):
        st.get("a/b")


def test_minio_error_translation() -> None:
    from minio.error import S3Error, ServerError

    def s3(code: str) -> S3Error:
        return S3Error(None, code, "msg", "/r", "req", "host")  # type: ignore[arg-type]

    assert translate_s3_error(s3("NoSuchKey")).code == "not_found"  # type: ignore[union-attr]
    assert translate_s3_error(s3("AccessDenied")).code == "denied"  # type: ignore[union-attr]
    assert translate_s3_error(s3("SlowDown")).code == "unavailable"  # type: ignore[union-attr]
    assert translate_s3_error(ServerError("bad gateway", 502)).code == "unavailable"  # type: ignore[union-attr]
    assert translate_s3_error(ValueError("not ours")) is None
    err = pickle.loads(pickle.dumps(StorageError("denied", "AccessDenied")))
    assert (err.code, err.message, str(err)) == ("denied", "AccessDenied", "denied: AccessDenied")


def test_storage_from_env(tmp_path: Path, moto_url: str) -> None:
    local = storage_from_env({"GATECHECK_DATA_DIR": str(tmp_path)})
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "objects").resolve()
    env = {"GATECHECK_STORAGE": "minio", "GATECHECK_S3_ENDPOINT": moto_url, "GATECHECK_S3_ACCESS_KEY": "a",
           "GATECHECK_S3_SECRET_KEY": "b", "GATECHECK_S3_BUCKET": f"gc-env-{uuid.uuid4().hex[:8]}"}
    remote = storage_from_env(env)
    assert isinstance(remote, MinioStorage) and remote.ping()
    with pytest.raises(ValueError):
        storage_from_env({"GATECHECK_STORAGE": "minio"})  # no default credentials
    with pytest.raises(ValueError):
        storage_from_env({"GATECHECK_STORAGE": "nfs"})


# --------------------------------------------------------------------------- state: both backends


def test_create_get_roundtrip(state: SqliteState | RedisState) -> None:
    rec = record(created_at=time.time() + 0.123456789, files=[StoredFile("k1", "a.pdf", 10, "ab" * 32, "pdf")],
                 roles={"k1": "portfolio"}, meta={"gateway": "2025-01-01"}, callback_url="https://x.example/cb")
    state.create(rec)
    got = state.get(rec.id)
    assert got == rec and got is not rec
    assert state.get(rec.id, "acme") == rec
    with pytest.raises(ValueError):
        state.create(record(id=rec.id))
    empty = record()
    state.create(empty)
    got_empty = state.get(empty.id)
    assert got_empty is not None and got_empty.files == [] and got_empty.meta == {}  # empty list stays a list
    assert empty.created_at > 0 and got_empty.updated_at == empty.created_at  # create stamps the times


@pytest.mark.catalogue(35)
def test_tenant_isolation(state: SqliteState | RedisState) -> None:
    rec = record("acme")
    state.create(rec)
    assert state.get(rec.id, "other") is None
    assert state.list("other") == ([], None)
    assert state.delete(rec.id, "other") is False
    assert state.get(rec.id, "acme") is not None
    assert state.delete(rec.id, "acme") is True
    assert state.get(rec.id) is None
    assert state.delete(rec.id, "acme") is False
    assert state.list("acme") == ([], None)


def test_list_pagination_and_status_filter(state: SqliteState | RedisState) -> None:
    base = 1_700_000_000.25
    recs = [record("acme", base + i) for i in range(7)]
    recs += [record("acme", base + 3, id=f"tie-{c}") for c in "abc"]  # equal created_at: ordered by id
    recs.append(record("other", base + 100))
    for r in recs:
        state.create(r)
    want = sorted((r for r in recs if r.tenant == "acme"), key=lambda r: (r.created_at, r.id), reverse=True)

    pages, cursor, seen = 0, None, []
    while True:
        page, cursor = state.list("acme", limit=3, cursor=cursor)
        seen += page
        pages += 1
        if cursor is None:
            break
    assert [r.id for r in seen] == [r.id for r in want] and pages == 4

    for r in want[:4]:
        assert state.transition(r.id, frozenset({Status.QUEUED}), Status.PROCESSING)
    assert state.transition(want[1].id, frozenset({Status.PROCESSING}), Status.DONE)
    processing, cur = state.list("acme", status=Status.PROCESSING, limit=2)
    assert [r.id for r in processing] == [want[0].id, want[2].id] and cur
    rest, cur2 = state.list("acme", status=Status.PROCESSING, limit=2, cursor=cur)
    assert [r.id for r in rest] == [want[3].id] and cur2 is None
    assert [r.id for r in state.list("acme", status=Status.DONE)[0]] == [want[1].id]
    assert len(state.list("acme", status=Status.QUEUED)[0]) == 6

    with pytest.raises(ValueError):
        state.list("acme", cursor="not-a-cursor!")


def test_cursor_is_opaque_and_exact() -> None:
    c = encode_cursor(1_700_000_000.123456789, "id/ü")
    assert "/" not in c and "=" not in c
    assert decode_cursor(c) == (1_700_000_000.123456789, "id/ü")


def test_transition_and_update(state: SqliteState | RedisState) -> None:
    rec = record()
    state.create(rec)
    assert not state.transition(rec.id, frozenset({Status.PROCESSING}), Status.DONE)
    assert state.transition(rec.id, frozenset({Status.QUEUED}), Status.PROCESSING, started_at=123.5, progress="x")
    got = state.get(rec.id)
    assert got and got.status is Status.PROCESSING and got.started_at == 123.5 and got.progress == "x"
    assert got.updated_at >= rec.updated_at
    state.update(rec.id, progress="extracting", files=[StoredFile("k", "n", 1, "h")], meta={"a": "b"})
    got = state.get(rec.id)
    assert got and got.progress == "extracting" and got.files == [StoredFile("k", "n", 1, "h")]
    assert got.meta == {"a": "b"} and got.status is Status.PROCESSING
    assert state.transition(rec.id, frozenset({Status.PROCESSING}), Status.FAILED, error_code="E", error_message=None)
    assert not state.transition(rec.id, frozenset({Status.PROCESSING}), Status.DONE)
    assert not state.transition("missing", frozenset({Status.QUEUED}), Status.DONE)
    assert not state.transition(rec.id, frozenset(), Status.DONE)
    for bad in ({"status": Status.DONE}, {"tenant": "x"}, {"no_such_field": 1}):
        with pytest.raises(ValueError):
            state.update(rec.id, **bad)
    with pytest.raises(ValueError):
        state.transition(rec.id, frozenset({Status.FAILED}), Status.DONE, id="x")
    state.update("missing", progress="late")  # no-op, and nothing is created
    assert state.get("missing") is None


@pytest.mark.catalogue(26)
def test_transition_race_exactly_one_winner(state: SqliteState | RedisState) -> None:
    for _round in range(3):
        rec = record()
        state.create(rec)
        assert state.transition(rec.id, frozenset({Status.QUEUED}), Status.PROCESSING)
        won = run_threads(8, lambda i, sid=rec.id: state.transition(
            sid, frozenset({Status.PROCESSING}), Status.DONE, outcome=f"worker-{i}"))
        assert sum(won) == 1
        final = state.get(rec.id)
        assert final and final.status is Status.DONE and final.outcome == f"worker-{won.index(True)}"
        assert [r.id for r in state.list("acme", status=Status.DONE, limit=1000)[0]].count(rec.id) == 1
        assert rec.id not in [r.id for r in state.list("acme", status=Status.PROCESSING, limit=1000)[0]]


def test_add_attempt_is_atomic(state: SqliteState | RedisState) -> None:
    rec = record()
    state.create(rec)
    assert state.add_attempt(rec.id) == 1
    results = run_threads(8, lambda _i: [state.add_attempt(rec.id) for _ in range(5)])
    flat = sorted(n for r in results for n in r)
    assert flat == list(range(2, 42))
    got = state.get(rec.id)
    assert got and got.attempts == 41
    with pytest.raises(KeyError):
        state.add_attempt("missing")


def test_remember_request_first_writer_wins(state: SqliteState | RedisState) -> None:
    assert state.remember_request("acme", "k1", "h1", {"id": "s1"}) is None
    assert state.remember_request("acme", "k1", "h2", {"id": "s2"}) == ("h1", {"id": "s1"})
    assert state.remember_request("other", "k1", "h3", {"id": "s3"}) is None  # keys are per tenant
    assert state.remember_request("acme:k", "1", "h4", {}) is None  # no "acme" + "k:1" collision
    results = run_threads(8, lambda i: state.remember_request("acme", "race", f"h{i}", {"n": i}))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    w = winners[0]
    assert all(r == (f"h{w}", {"n": w}) for r in results if r is not None)


def test_remember_request_expires(make_state: Callable[..., SqliteState | RedisState]) -> None:
    st = make_state(idempotency_ttl_s=0.2)
    assert st.remember_request("acme", "k", "h1", {}) is None
    assert st.remember_request("acme", "k", "h2", {}) == ("h1", {})
    time.sleep(0.3)
    assert st.remember_request("acme", "k", "h3", {}) is None


def test_api_keys_and_tenants(state: SqliteState | RedisState) -> None:
    h = hashlib.sha256(b"secret-key").hexdigest()
    assert state.find_api_key(h) is None
    state.add_api_key("acme|x", h, ApiRole.SUBMITTER)
    assert state.find_api_key(h) == ("acme|x", ApiRole.SUBMITTER)
    state.add_api_key("acme|x", h, ApiRole.ADMIN)
    assert state.find_api_key(h) == ("acme|x", ApiRole.ADMIN)
    assert state.webhook_secret("acme") is None
    state.create_tenant("acme", "s1")
    assert state.webhook_secret("acme") == "s1"
    state.create_tenant("acme", "s2")  # rotation
    assert state.webhook_secret("acme") == "s2"


def test_expired(state: SqliteState | RedisState) -> None:
    now = time.time()
    old = [record(t, now - 100 - i) for i, t in enumerate(["acme", "other", "acme"] * 90)]  # > one batch
    new = [record("acme", now - 1), record("other", now)]
    for r in old + new:
        state.create(r)
    got = []
    for r in state.expired(now - 50):
        got.append(r.id)
        assert state.delete(r.id, r.tenant)  # deleting while iterating must not skip any
    assert sorted(got) == sorted(r.id for r in old) and len(got) == len(set(got))
    assert list(state.expired(now - 50)) == []
    assert {r.id for r in state.expired(now + 1)} == {r.id for r in new}


# --------------------------------------------------------------------------- state: task metrics


def _consistent(stats: dict[str, Any]) -> None:
    """One snapshot of one ``record_task`` at a time: count, +Inf bucket and per-label counts agree."""
    d = stats["duration"]
    assert [le for le, _ in d["buckets"]] == [*TASK_DURATION_BUCKETS, math.inf]
    cumulative = [n for _, n in d["buckets"]]
    assert cumulative == sorted(cumulative)
    assert d["count"] == cumulative[-1] == sum(stats["tasks"].values())


def test_task_stats_record_and_buckets(state: SqliteState | RedisState) -> None:
    empty = state.task_stats()
    _consistent(empty)
    assert empty["tasks"] == {} and empty["duration"]["sum"] == 0.0 and empty["duration"]["count"] == 0
    state.record_task("pass", Status.DONE, 0.25)  # on a bound: le is inclusive
    state.record_task("pass", Status.DONE, 3.0)
    state.record_task("attention", Status.DONE, 1000.0)  # beyond the last bound: +Inf only
    state.record_task("", Status.FAILED, -2.0)  # clocks of two machines disagree: counts as 0 s
    state.record_task("odd|outcome", "failed", 0.5)  # the separator in a label, status as plain string
    stats = state.task_stats()
    _consistent(stats)
    assert stats["tasks"] == {("done", "pass"): 2, ("done", "attention"): 1, ("failed", ""): 1,
                              ("failed", "odd|outcome"): 1}
    assert stats["duration"]["count"] == 5 and stats["duration"]["sum"] == 0.25 + 3.0 + 1000.0 + 0.5
    cumulative = dict(stats["duration"]["buckets"])
    assert (cumulative[0.25], cumulative[0.5], cumulative[1.0], cumulative[2.0], cumulative[5.0]) == (2, 3, 3, 3, 4)
    assert cumulative[900.0] == 4 and cumulative[math.inf] == 5
    for bad in (("x", Status.QUEUED, 1.0), ("x", Status.PROCESSING, 1.0), ("x", Status.DONE, math.nan),
                ("x", Status.DONE, math.inf), ("x" * 65, Status.DONE, 1.0), ("x", "bogus", 1.0)):
        with pytest.raises(ValueError):
            state.record_task(*bad)
    assert state.task_stats() == stats  # refused calls counted nothing
    if isinstance(state, RedisState):  # one hash under {prefix}:stats:
        assert state._r.type(f"{state._p}:stats:tasks") == "hash"


def test_record_task_is_atomic_under_concurrency(state: SqliteState | RedisState) -> None:
    """8 writers x 50 records: exact totals; a reader alongside never sees half of a record."""
    outcomes = ("pass", "attention", "fail")
    snapshots: list[dict[str, Any]] = []

    def work(i: int) -> None:
        if i == 8:  # the reader
            for _ in range(100):
                snapshots.append(state.task_stats())
            return
        for j in range(50):
            state.record_task(outcomes[j % 3], Status.DONE if i % 2 else Status.FAILED, 0.5 * (j % 4))

    run_threads(9, work)
    for snap in snapshots:
        _consistent(snap)
    stats = state.task_stats()
    _consistent(stats)
    per_thread = {o: sum(1 for j in range(50) if outcomes[j % 3] == o) for o in outcomes}  # 17, 17, 16
    assert stats["tasks"] == {(s, o): 4 * n for s in ("done", "failed") for o, n in per_thread.items()}
    d = stats["duration"]
    assert d["count"] == 400 and d["sum"] == 8 * sum(0.5 * (j % 4) for j in range(50))  # halves add exactly
    cumulative = dict(d["buckets"])
    assert (cumulative[0.25], cumulative[0.5], cumulative[1.0], cumulative[2.0]) == (104, 208, 304, 400)


def test_task_stats_shared_between_instances(make_state: Callable[..., SqliteState | RedisState],
                                             request: pytest.FixtureRequest) -> None:
    """Workers record, the API reads: a second store object on the same database sees the counts."""
    writer = make_state()
    reader: SqliteState | RedisState
    if isinstance(writer, SqliteState):
        reader = SqliteState(writer.path)
    else:
        reader = RedisState(request.getfixturevalue("redis_url"), prefix=writer._p)
    try:
        writer.record_task("pass", Status.DONE, 1.5)
        assert reader.task_stats()["tasks"] == {("done", "pass"): 1}
        assert reader.task_stats()["duration"]["sum"] == 1.5
    finally:
        reader.close()

def test_sqlite_persists_and_is_shared_across_instances(tmp_path: Path) -> None:
    a = SqliteState(tmp_path / "db.sqlite3")
    rec = record()
    a.create(rec)
    b = SqliteState(tmp_path / "db.sqlite3")  # e.g. the worker process
    assert b.transition(rec.id, frozenset({Status.QUEUED}), Status.PROCESSING)
    a.close()
    got = a.get(rec.id)  # reopens after close
    assert got and got.status is Status.PROCESSING and a.ping()
    assert a._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (Celery prefork model)")
def test_sqlite_connection_not_reused_after_fork(tmp_path: Path) -> None:
    st = SqliteState(tmp_path / "db.sqlite3")
    rec = record()
    st.create(rec)  # the parent has an open connection, as a Celery master would before forking
    pid = os.fork()
    if pid == 0:  # child: must open its own connection
        code = 1
        try:
            code = 0 if st.transition(rec.id, frozenset({Status.QUEUED}), Status.PROCESSING) else 2
            st.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = st.get(rec.id)
    assert got and got.status is Status.PROCESSING


def test_redis_unreachable_is_unavailable() -> None:
    st = RedisState(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    assert st.ping() is False
    with pytest.raises(StateUnavailable):
        st.get("x")
    with pytest.raises(StateUnavailable):
        list(st.expired(time.time()))
    with pytest.raises(StateUnavailable):
        st.record_task("pass", Status.DONE, 1.0)
    with pytest.raises(StateUnavailable):
        st.task_stats()


def test_state_from_env_sqlite(tmp_path: Path) -> None:
    sq = state_from_env({"GATECHECK_DATA_DIR": str(tmp_path / "d")})
    assert isinstance(sq, SqliteState) and sq.path == tmp_path / "d" / "state.sqlite3" and sq.ping()
    with pytest.raises(ValueError):
        state_from_env({"GATECHECK_STATE": "postgres"})


def test_state_from_env_redis(redis_url: str) -> None:
    rd = state_from_env({"GATECHECK_STATE": "redis", "GATECHECK_REDIS_URL": redis_url})
    assert isinstance(rd, RedisState) and rd.ping()


# --------------------------------------------------------------------------- claim, unfinished, erase, audit, list


def test_claim_one_run_at_a_time(state: SqliteState | RedisState) -> None:
    """The conditional write behind catalogue 26: a live lease keeps every other run out."""
    rec = record()
    state.create(rec)
    now = time.time()
    assert state.claim(rec.id, "run-a", now + 60, now=now, progress="checking") == 1
    got = state.get(rec.id)
    assert got and got.status is Status.PROCESSING and got.owner == "run-a" and got.lease_until == now + 60
    assert got.started_at == now and got.progress == "checking" and got.attempts == 1
    assert state.list("acme", status=Status.PROCESSING)[0][0].id == rec.id  # indexes moved
    assert state.claim(rec.id, "run-b", now + 60, now=now) is None  # live lease: refused
    assert state.claim(rec.id, "run-b", now + 60, now=now, takeover="someone-else") is None
    assert state.claim(rec.id, "run-b", now + 60, now=now, takeover="run-a") == 2  # holder proved dead
    assert state.claim(rec.id, "run-c", now + 200, now=now + 61) == 3  # lease expired
    results = run_threads(8, lambda i: state.claim(rec.id, f"t{i}", now + 999, now=now + 500))
    assert sorted(results, key=lambda r: r or 0)[-1] == 4 and results.count(None) == 7  # exactly one winner
    assert state.transition(rec.id, frozenset({Status.PROCESSING}), Status.DONE)
    assert state.claim(rec.id, "late", now + 2000, now=now + 1000) is None  # terminal is final
    assert state.claim("missing", "x", now, now=now) is None
    legacy = record()  # PROCESSING without a lease (before claims existed): claimable
    state.create(legacy)
    assert state.transition(legacy.id, frozenset({Status.QUEUED}), Status.PROCESSING)
    assert state.claim(legacy.id, "run", now + 60, now=now) == 1


def test_unfinished_lists_queued_and_processing_of_every_tenant(state: SqliteState | RedisState) -> None:
    recs = {name: record(tenant, created_at=1000.0 + i) for i, (name, tenant) in
            enumerate([("q", "acme"), ("p", "other"), ("d", "acme"), ("f", "other")])}
    for r in recs.values():
        state.create(r)
    state.claim(recs["p"].id, "x", 10.0, now=1.0)
    for name, to in (("d", Status.DONE), ("f", Status.FAILED)):
        assert state.transition(recs[name].id, frozenset({Status.QUEUED}), to)
    got = {r.id: r.status for r in state.unfinished()}
    assert got == {recs["q"].id: Status.QUEUED, recs["p"].id: Status.PROCESSING}
    many = [record("acme", created_at=2000.0 + i) for i in range(250)]  # more than one batch
    for r in many:
        state.create(r)
    assert len({r.id for r in state.unfinished()}) == 252
    state.delete(recs["q"].id, "acme")
    assert recs["q"].id not in {r.id for r in state.unfinished()}


def test_erase_removes_record_and_idempotency_and_audits(state: SqliteState | RedisState) -> None:
    """Catalogue 40(iii) in the store: one atomic step, and the audit holds ids and counts only."""
    from service.contracts import AuditRecord

    rec = record(files=[StoredFile("k", "secret-name.pdf", 1, "ab" * 32)])
    keep = record()
    for r in (rec, keep):
        state.create(r)
        assert state.remember_request("acme", f"key-{r.id}", "h", {"status_code": 202, "body": {"id": r.id}}) is None
    audit = AuditRecord("erasure", "acme", rec.id, "api-key:0123456789ab", {"objects": 3})
    assert not state.erase(rec.id, "other", audit)  # another tenant's id: nothing happens
    assert state.audit_log() == []
    assert state.erase(rec.id, "acme", audit)
    assert state.get(rec.id) is None and rec.id not in {r.id for r in state.unfinished()}
    assert state.list("acme")[0] == [keep]
    # the idempotency entry naming the erased id is gone (the key is free again); the other one stays
    assert state.remember_request("acme", f"key-{rec.id}", "h2", {}) is None
    assert state.remember_request("acme", f"key-{keep.id}", "h2", {}) == ("h", {"status_code": 202,
                                                                               "body": {"id": keep.id}})
    assert not state.erase(rec.id, "acme", audit)  # already gone: no second audit
    [entry] = state.audit_log()
    assert (entry.action, entry.tenant, entry.submission_id, entry.actor) == ("erasure", "acme", rec.id,
                                                                             "api-key:0123456789ab")
    assert entry.deleted == {"objects": 3, "records": 1, "idempotency_entries": 1}
    assert entry.id and abs(entry.at - time.time()) < 60
    assert state.audit_log("acme") == [entry] and state.audit_log("other") == []
    assert "secret-name" not in repr(entry)
    with pytest.raises(ValueError):
        state.erase(keep.id, "acme", AuditRecord("erasure", "acme", keep.id, "x", {"name": "x.pdf"}))  # type: ignore[dict-item]
    assert state.get(keep.id) is not None


def test_list_prefix(storage: LocalStorage | MinioStorage) -> None:
    keys = ["tenants/a/submissions/s1/originals/000", "tenants/a/submissions/s1/report.json",
            "tenants/a/submissions/s10/x", "tenants/a/uploads/u1", "tenants/b/submissions/s1/y"]
    before = time.time() - 5
    for k in keys:
        storage.put(k, io.BytesIO(k.encode()))
    listed = {o.key: o for o in storage.list("tenants/a/")}
    assert set(listed) == set(keys[:4])
    assert all(o.size == len(o.key) and before <= o.modified <= time.time() + 5 for o in listed.values())
    assert {o.key for o in storage.list("tenants/a/submissions/s1")} == set(keys[:3])  # a string prefix
    assert {o.key for o in storage.list("tenants/a/submissions/s1/")} == set(keys[:2])
    assert list(storage.list("tenants/none/")) == []
    storage.delete_prefix("tenants/a/submissions/s1/")
    assert {o.key for o in storage.list("tenants/a/")} == {keys[2], keys[3]}
    with pytest.raises(ValueError):
        list(storage.list("../x"))


def test_redis_oom_is_unavailable(tmp_path: Path) -> None:
    """A full Redis (noeviction) refuses writes with OOM: the store must say "unavailable" (503), not crash."""
    import redis

    binary = require_redis_server()
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--maxmemory", "3mb", "--maxmemory-policy", "noeviction", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        st = RedisState(f"redis://127.0.0.1:{port}/0")
        kept = record()
        st.create(kept)
        fill_redis(r)
        with pytest.raises(StateUnavailable):
            st.create(record())
        with pytest.raises(StateUnavailable):
            st.remember_request("acme", "k", "h", {})
        assert st.get(kept.id) == kept  # reads still work; nothing was evicted
        st.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
