"""The Celery worker: idempotent processing, fault handling, webhooks, retention.

Three layers, all on real corpus files:

1. Embedded path, in process: ``process_submission`` called as a function over
   SqliteState + LocalStorage. Its report must equal ``validators.api.check_paths``
   on the same files under the user's names, and every fault path must end in the
   right terminal state.
2. A REAL Celery worker process, a REAL ``redis-server`` (broker and state) and a
   REAL S3 server (moto), end to end, including the signed webhook.
3. Faults with real processes (reliability-anchors (b) C23-C25): SIGKILL of the pool
   child, SIGKILL of the whole worker node and a restart, and a poison pill that
   kills the worker on every try. Each must reach exactly one terminal state.

Every wait is bounded and every process is killed in teardown, so nothing can hang.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from referencing import Registry, Resource

from service import webhooks
from service.contracts import Status, StoredFile, SubmissionRecord, submission_prefix
from service.settings import Settings
from service.state import RedisState, SqliteState, StateUnavailable
from service.storage import LocalStorage, MinioStorage
from tests.conftest import corpus_file
from validators import api
from validators.profile import all_profiles
from worker import celery_app, tasks

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parent.parent
PROFILE, METHOD = "st0505-accelerate-people", "AM1"
META = {"months_on_programme": "14", "off_the_job_pct": "22"}
TENANT = "acme"
SECRET = "whsec_test_only"
# (the user's file name, corpus file): the names drive role detection, as in the CLI
FILES = [
    ("project report.docx", "docx/poi_IllustrativeCases_outlook.docx"),
    ("presentation.pptx", "pptx/poi_HowWeRefactor_28slides_27notes.pptx"),
    ("ksb mapping.md", "epa/benfielding74_DevOps_work-mapping-table_KSB.md"),
]
_SCHEMAS = [json.loads((ROOT / "gatecheck" / "schemas" / f"{n}.schema.json").read_text())
            for n in ("report", "extract")]
REPORT_VALIDATOR = jsonschema.Draft202012Validator(
    _SCHEMAS[0], registry=Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in _SCHEMAS]))
POLL_S = 0.1


# -- helpers ------------------------------------------------------------------------------------------------


def make_record(state: Any, storage: Any, *, files: list[tuple[str, str]] = FILES, profile: str = PROFILE,
                callback_url: str | None = None, created_at: float = 0.0) -> str:
    """Store the originals the way the API does (generated keys, user names as metadata) and a queued record."""
    sid = hashlib.sha256(f"{time.time_ns()}{os.getpid()}".encode()).hexdigest()[:32]
    prefix = submission_prefix(TENANT, sid)
    stored = []
    for n, (name, rel) in enumerate(files):
        path = corpus_file(rel)
        key = f"{prefix}originals/{n:03d}"
        with path.open("rb") as fh:
            storage.put(key, fh, path.stat().st_size)
        stored.append(StoredFile(key, name, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()))
    state.create(SubmissionRecord(id=sid, tenant=TENANT, profile=profile, method=METHOD, files=stored,
                                  meta=dict(META), callback_url=callback_url, created_at=created_at))
    return sid


def cli_report(tmp: Path, monkeypatch: pytest.MonkeyPatch, files: list[tuple[str, str]] = FILES) -> dict[str, Any]:
    """What ``gatecheck check`` reports for the same files saved under the user's names."""
    named = tmp / "named"
    named.mkdir(exist_ok=True)
    for name, rel in files:
        shutil.copy(corpus_file(rel), named / name)
    monkeypatch.chdir(named)
    report = api.check_paths([name for name, _ in files], all_profiles()[PROFILE], METHOD, meta=dict(META))
    return report.to_dict()


def read_json(storage: Any, key: str) -> Any:
    with contextlib.closing(storage.get(key)) as fh:
        return json.loads(fh.read())


def task_counts(state: Any) -> dict[tuple[str, str], int]:
    """What the workers recorded for /metrics: finished tasks by (status, outcome)."""
    return dict(state.task_stats()["tasks"])


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
             alive: Callable[[], str | None] | None = None) -> Any:
    """Poll until ``predicate()`` is truthy; fail (never hang) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        problem = alive() if alive else None
        if problem:
            pytest.fail(f"while waiting for {what}: {problem}")
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


# -- 1. embedded path, in process ---------------------------------------------------------------------------


@dataclass
class Embedded:
    settings: Settings
    state: SqliteState
    storage: LocalStorage
    notified: list[str] = field(default_factory=list)


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    settings = Settings(data_dir=tmp_path / "data", broker_url="", max_attempts=3, webhook_allow_private=True)
    env = Embedded(settings, SqliteState(tmp_path / "data" / "state.sqlite3"), LocalStorage(tmp_path / "objects"))
    previous = celery_app.current_settings()
    tasks.bind(settings, env.state, env.storage)
    monkeypatch.setattr(tasks.deliver_webhook, "delay", env.notified.append)  # no broker in these tests
    yield env
    env.state.close()
    tasks._services = None
    celery_app.configure(previous)


def test_embedded_report_matches_check_paths(embedded: Embedded, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sid = make_record(embedded.state, embedded.storage)
    assert tasks.process_submission(sid) == "done"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.DONE and rec.attempts == 1
    assert rec.report_key == submission_prefix(TENANT, sid) + "report.json"
    assert rec.started_at and rec.finished_at and rec.finished_at >= rec.started_at
    report = read_json(embedded.storage, rec.report_key)
    REPORT_VALIDATOR.validate(report)
    expected = cli_report(tmp_path, monkeypatch)
    assert report == expected  # nothing volatile in a report: equal as a whole
    assert rec.outcome == expected["outcome"]
    # the user's names, not the generated temp names, and roles detected from them
    docs = {d["file"]: d["role"] for d in report["documents"]}
    assert docs == {"project report.docx": "report", "presentation.pptx": "presentation",
                    "ksb mapping.md": "mapping"}
    extracted = read_json(embedded.storage, rec.extracted_key)
    assert extracted["schema"] == "gatecheck.extract/1"
    assert [d["file"] for d in extracted["documents"]] == [name for name, _ in FILES]
    assert embedded.notified == []  # no callback URL, no webhook
    assert list(tasks.work_dir(embedded.settings).iterdir()) == []  # downloads removed after the check


@pytest.mark.catalogue(23)
def test_duplicate_delivery_is_a_no_op(embedded: Embedded) -> None:
    sid = make_record(embedded.state, embedded.storage, callback_url="http://127.0.0.1:9/hook")
    assert tasks.process_submission(sid) == "done"
    first = embedded.state.get(sid)
    assert tasks.process_submission(sid) == "duplicate"
    again = embedded.state.get(sid)
    assert first is not None and again is not None
    assert again.to_dict() == first.to_dict()  # not touched: same attempts, same updated_at
    assert embedded.notified == [sid]  # one webhook for one terminal state
    # counted once, by the delivery that won the DONE transition, with its duration
    assert task_counts(embedded.state) == {("done", first.outcome): 1}
    duration = embedded.state.task_stats()["duration"]
    assert first.started_at and first.finished_at
    assert duration["count"] == 1 and duration["sum"] == pytest.approx(first.finished_at - first.started_at)
    # a late hard-time-limit report for the same message loses the transition: nothing more counted
    tasks.process_submission.on_failure(TimeLimitExceeded(900), "task-id", (sid,), {}, None)
    assert task_counts(embedded.state) == {("done", first.outcome): 1}
    assert embedded.state.task_stats()["duration"]["count"] == 1


def test_metrics_failure_never_fails_the_task(embedded: Embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_: Any) -> None:
        raise StateUnavailable("metrics store down")

    monkeypatch.setattr(embedded.state, "record_task", down)
    sid = make_record(embedded.state, embedded.storage, callback_url="http://127.0.0.1:9/hook")
    assert tasks.process_submission(sid) == "done"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.DONE and rec.attempts == 1
    assert embedded.notified == [sid]  # the webhook still goes out
    failing = make_record(embedded.state, embedded.storage, profile="st9999-withdrawn")
    assert tasks.process_submission(failing) == "profile_unavailable"
    monkeypatch.undo()
    assert task_counts(embedded.state) == {}


@pytest.mark.catalogue(25)
def test_attempts_past_max_fail_worker_crashed(embedded: Embedded) -> None:
    """A file that killed the worker max_attempts times must end failed, not loop (anchor C25)."""
    sid = make_record(embedded.state, embedded.storage)
    for _ in range(embedded.settings.max_attempts):  # the crashed deliveries counted their attempts
        embedded.state.add_attempt(sid)
    embedded.state.transition(sid, frozenset({Status.QUEUED}), Status.PROCESSING)
    assert tasks.process_submission(sid) == "worker_crashed"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "worker_crashed"
    assert rec.remedy and rec.error_message and rec.finished_at
    assert not embedded.storage.exists(submission_prefix(TENANT, sid) + "report.json")
    assert task_counts(embedded.state) == {("failed", ""): 1}


@pytest.mark.catalogue(31)
def test_missing_object_fails_file_missing(embedded: Embedded) -> None:
    sid = make_record(embedded.state, embedded.storage, callback_url="http://127.0.0.1:9/hook")
    embedded.storage.delete_prefix(submission_prefix(TENANT, sid) + "originals/001")
    assert tasks.process_submission(sid) == "file_missing"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "file_missing"
    assert "presentation.pptx" in (rec.error_message or "") and rec.remedy
    assert embedded.notified == [sid]  # failures are announced too
    assert task_counts(embedded.state) == {("failed", ""): 1}
    assert tasks.process_submission(sid) == "duplicate"
    assert task_counts(embedded.state) == {("failed", ""): 1}


@pytest.mark.catalogue(32)
def test_changed_object_fails_file_corrupt(embedded: Embedded) -> None:
    sid = make_record(embedded.state, embedded.storage)
    key = submission_prefix(TENANT, sid) + "originals/002"
    with corpus_file(FILES[0][1]).open("rb") as fh:
        embedded.storage.put(key, fh)
    assert tasks.process_submission(sid) == "file_corrupt"


def test_profile_gone_fails_profile_unavailable(embedded: Embedded) -> None:
    sid = make_record(embedded.state, embedded.storage, profile="st9999-withdrawn")
    assert tasks.process_submission(sid) == "profile_unavailable"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.remedy


def test_unexpected_error_retries_then_internal_error(embedded: Embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(*_: Any, **__: Any) -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    monkeypatch.setattr(tasks, "check_paths", broken)
    sid = make_record(embedded.state, embedded.storage)
    tasks.process_submission.apply(args=(sid,))  # eager: Celery runs each retry at once
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "internal_error"
    assert len(calls) == rec.attempts == embedded.settings.max_attempts
    assert task_counts(embedded.state) == {("failed", ""): 1}  # one submission, however many attempts


def test_soft_time_limit_fails_timeout(embedded: Embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_: Any, **__: Any) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "check_paths", slow)
    sid = make_record(embedded.state, embedded.storage)
    assert tasks.process_submission(sid) == "timeout"
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "timeout"


def test_hard_time_limit_is_recorded_by_on_failure(embedded: Embedded) -> None:
    """The hard limit kills the child; the worker's main process calls on_failure, which must record it."""
    sid = make_record(embedded.state, embedded.storage)
    embedded.state.transition(sid, frozenset({Status.QUEUED}), Status.PROCESSING)
    tasks.process_submission.on_failure(TimeLimitExceeded(900), "task-id", (sid,), {}, None)
    rec = embedded.state.get(sid)
    assert rec is not None and rec.status is Status.FAILED and rec.error_code == "timeout"
    tasks.process_submission.on_failure(TimeLimitExceeded(900), "task-id", (sid,), {}, None)  # reported twice
    assert task_counts(embedded.state) == {("failed", ""): 1}


@pytest.mark.catalogue(40)
def test_purge_expired_deletes_records_and_objects(embedded: Embedded) -> None:
    files = FILES[2:]
    old = make_record(embedded.state, embedded.storage, files=files,
                      created_at=time.time() - (embedded.settings.retention_days + 1) * 86400)
    new = make_record(embedded.state, embedded.storage, files=files)
    stale_job = tasks.work_dir(embedded.settings) / "job-killed"
    stale_job.mkdir()
    os.utime(stale_job, (0, 0))
    assert tasks.purge_expired() == 1
    assert not stale_job.exists()
    assert embedded.state.get(old) is None
    assert not embedded.storage.exists(submission_prefix(TENANT, old) + "originals/000")
    assert embedded.state.get(new) is not None
    assert embedded.storage.exists(submission_prefix(TENANT, new) + "originals/000")


@pytest.mark.parametrize(("name", "suffix"), [
    ("report.docx", ".docx"), ("Deck.PPTX", ".pptx"), ("notes.md", ".md"), ("archive.tar.gz", ".gz"),
    ("no-extension", ""), ("evil.d/cx", ""), ("x.docx;rm -rf", ""), ("long.abcdef", ""), ("dots.", ""),
    ("..\\..\\win.exe", ".exe"), ("unicode.dóc", ""),
])
def test_temp_names_take_only_a_safe_extension(name: str, suffix: str) -> None:
    assert tasks.safe_suffix(name) == suffix


@pytest.mark.catalogue(26)
def test_config_delivery_semantics() -> None:
    """Late ack + requeue on worker loss, prefetch 1, limits strictly below the visibility timeout."""
    s = Settings(broker_url="redis://127.0.0.1:6379/0", task_time_limit_s=900, visibility_timeout_s=3600)
    conf = celery_app.config(s)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["worker_max_tasks_per_child"] == s.max_tasks_per_child >= 1
    assert conf["task_soft_time_limit"] < conf["task_time_limit"] == 900 < 3600
    for where in (conf["broker_transport_options"], conf["result_backend_transport_options"], conf):
        assert where["visibility_timeout"] == 3600
    assert conf["result_backend"] is None and conf["task_ignore_result"]
    with pytest.raises(ValueError, match="below"):
        celery_app.config(replace(s, task_time_limit_s=3600))
    with pytest.raises(ValueError, match="MAX_TASKS_PER_CHILD"):
        celery_app.config(replace(s, max_tasks_per_child=0))


def test_config_embedded_broker_is_filesystem(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, broker_url="")
    conf = celery_app.config(s)
    opts = conf["broker_transport_options"]
    assert conf["broker_url"] == "filesystem://"
    assert opts["data_folder_in"] == opts["data_folder_out"] == str(tmp_path / "broker" / "queue")
    # consumed messages are renamed into processed/ on the same file system: atomic, one consumer wins
    assert opts["store_processed"] and Path(opts["processed_folder"]).parent == tmp_path / "broker"
    assert not (tmp_path / "broker").exists()  # configuring has no side effects; workers create it
    celery_app.ensure_broker_dirs(s)
    assert (tmp_path / "broker" / "control").is_dir()


# -- 4. webhooks, in process --------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    hits: list[tuple[dict[str, str], bytes]]
    status: list[int]  # status codes to answer, in order; 204 once exhausted


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP endpoint recording every POST it gets."""
    hits: list[tuple[dict[str, str], bytes]] = []
    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(statuses.pop(0) if statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/gatecheck?x=1", hits, statuses)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def assert_signed_delivery(rcv: Receiver, sid: str, public_url: str) -> dict[str, Any]:
    headers, body = rcv.hits[0]
    assert webhooks.verify(SECRET, headers, body)
    assert not webhooks.verify("another-secret", headers, body)
    payload = json.loads(body)
    assert payload == {"id": sid, "status": "done", "outcome": payload["outcome"],
                       "report_url": f"{public_url}/v1/submissions/{sid}/report"}
    assert payload["outcome"] in {"pass", "attention", "fail"}
    return payload


@pytest.mark.catalogue(37)
def test_webhook_is_signed_and_verifies(embedded: Embedded, receiver: Receiver) -> None:
    embedded.state.create_tenant(TENANT, SECRET)
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:], callback_url=receiver.url)
    assert tasks.process_submission(sid) == "done" and embedded.notified == [sid]
    assert tasks.deliver_webhook(sid) == "204"
    assert len(receiver.hits) == 1
    assert_signed_delivery(receiver, sid, embedded.settings.public_url)


@pytest.mark.catalogue(37)
def test_webhook_5xx_is_retried(embedded: Embedded, receiver: Receiver) -> None:
    embedded.state.create_tenant(TENANT, SECRET)
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:], callback_url=receiver.url)
    tasks.process_submission(sid)
    receiver.status.extend([503, 502])
    result = tasks.deliver_webhook.apply(args=(sid,))  # eager: backoff countdowns are not slept
    assert result.get() == "204" and len(receiver.hits) == 3


@pytest.mark.catalogue(37)
def test_webhook_to_private_address_is_refused(embedded: Embedded, receiver: Receiver) -> None:
    embedded.state.create_tenant(TENANT, SECRET)
    tasks.bind(replace(embedded.settings, webhook_allow_private=False), embedded.state, embedded.storage)
    sid = make_record(embedded.state, embedded.storage, files=FILES[2:], callback_url=receiver.url)
    tasks.process_submission(sid)
    assert tasks.deliver_webhook(sid) == "refused" and receiver.hits == []


# -- 2 and 3. a real worker process over real Redis and real S3 ----------------------------------------------


@dataclass
class Cluster:
    """Everything a scale-out worker needs, and the same backends seen from the test process."""

    env: dict[str, str]
    state: RedisState
    storage: MinioStorage
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, pool: str = "prefork", **extra: str) -> subprocess.Popen[bytes]:
        """``python -m celery -A worker.celery_app worker`` as its own process group, logging to a file."""
        n = len(self.workers)
        log = (self.tmp / f"worker{n}.log").open("wb")
        cmd = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", f"--pool={pool}",
               "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
               "--without-heartbeat", f"--hostname=test{n}@%h"]
        proc = subprocess.Popen(cmd, env=self.env | extra, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.workers.append(proc)
        return proc

    def problem(self, proc: subprocess.Popen[bytes]) -> Callable[[], str | None]:
        """For ``wait_for``: fail at once, with its log, if the worker died on its own."""
        def check() -> str | None:
            if proc.poll() is None:
                return None
            log = (self.tmp / f"worker{self.workers.index(proc)}.log").read_text(errors="replace")
            return f"worker exited with {proc.returncode}:\n{log[-3000:]}"
        return check

    def enqueue(self, sid: str) -> None:
        app = celery_app.make_celery(Settings(broker_url=self.env["GATECHECK_BROKER_URL"]))
        try:
            app.send_task("worker.tasks.process_submission", args=[sid])
        finally:
            app.close()

    def status(self, sid: str) -> SubmissionRecord:
        rec = self.state.get(sid)
        assert rec is not None
        return rec

    def stop_all(self) -> None:
        for proc in self.workers:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its pool children (a node dying); idempotent."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the prefork pool processes), from /proc."""
    out = []
    for proc_stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = proc_stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(proc_stat.parent.name))
    return out


@pytest.fixture
def cluster(redis_url: str, moto_url: str, tmp_path: Path) -> Iterator[Cluster]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no message or record from an earlier test
    bucket = f"gc-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")} | {
        "PYTHONPATH": str(ROOT),
        "GATECHECK_DATA_DIR": str(tmp_path / "data"),
        "GATECHECK_BROKER_URL": redis_url,
        "GATECHECK_STATE": "redis",
        "GATECHECK_REDIS_URL": redis_url,
        "GATECHECK_STORAGE": "minio",
        "GATECHECK_S3_ENDPOINT": moto_url,
        "GATECHECK_S3_ACCESS_KEY": "test-access",
        "GATECHECK_S3_SECRET_KEY": "test-secret",
        "GATECHECK_S3_BUCKET": bucket,
        "GATECHECK_S3_REGION": "us-east-1",
        "GATECHECK_MAX_ATTEMPTS": "3",
        "GATECHECK_TASK_TIME_LIMIT_S": "30",
        "GATECHECK_VISIBILITY_TIMEOUT_S": "60",
        "GATECHECK_WEBHOOK_ALLOW_PRIVATE": "1",
        "GATECHECK_PUBLIC_URL": "http://gatecheck.test",
    }
    state = RedisState(redis_url)
    storage = MinioStorage(moto_url, "test-access", "test-secret", bucket, region="us-east-1")
    state.create_tenant(TENANT, SECRET)
    c = Cluster(env, state, storage, tmp_path)
    yield c
    c.stop_all()
    state.close()


def test_real_worker_redis_s3_end_to_end(cluster: Cluster, receiver: Receiver, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    worker = cluster.start_worker()
    sid = make_record(cluster.state, cluster.storage, callback_url=receiver.url)
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.DONE, 60, "DONE", cluster.problem(worker))
    rec = cluster.status(sid)
    assert rec.attempts == 1 and rec.report_key
    report = read_json(cluster.storage, rec.report_key)
    assert report == cli_report(tmp_path, monkeypatch)
    wait_for(lambda: receiver.hits, 20, "the webhook", cluster.problem(worker))
    assert assert_signed_delivery(receiver, sid, "http://gatecheck.test")["outcome"] == rec.outcome
    assert task_counts(cluster.state) == {("done", rec.outcome): 1}  # recorded by the worker, read here


@pytest.mark.catalogue(23)
def test_sigkill_of_pool_child_requeues_and_finishes_once(cluster: Cluster) -> None:
    """Anchor C23: acks_late + reject_on_worker_lost put the message back; one terminal state."""
    worker = cluster.start_worker(GATECHECK_TEST_SLEEP_S="2")
    sid = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.PROCESSING, 40, "PROCESSING", cluster.problem(worker))
    pool = wait_for(lambda: children(worker.pid), 10, "the pool child")
    for pid in pool:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.status(sid).status in {Status.DONE, Status.FAILED}, 40, "terminal",
             cluster.problem(worker))
    rec = cluster.status(sid)
    assert rec.status is Status.DONE and rec.attempts == 2, rec
    time.sleep(1.0)  # a second delivery, if there were one, would show up as a third attempt
    assert cluster.status(sid).attempts == 2
    assert task_counts(cluster.state) == {("done", rec.outcome or ""): 1}


@pytest.mark.catalogue(24)
def test_sigkill_of_worker_node_then_restart_finishes_once(cluster: Cluster) -> None:
    """Anchor C24: the unacked message comes back after the visibility timeout to a restarted worker."""
    env = {"GATECHECK_TASK_TIME_LIMIT_S": "6", "GATECHECK_VISIBILITY_TIMEOUT_S": "8"}
    cluster.env |= env
    first = cluster.start_worker(pool="solo", GATECHECK_TEST_SLEEP_S="30")
    sid = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.PROCESSING, 40, "PROCESSING", cluster.problem(first))
    killed_at = time.monotonic()
    kill_group(first)
    second = cluster.start_worker(pool="solo")
    wait_for(lambda: cluster.status(sid).status in {Status.DONE, Status.FAILED}, 40, "terminal",
             cluster.problem(second))
    rec = cluster.status(sid)
    assert rec.status is Status.DONE and rec.attempts == 2, rec
    assert time.monotonic() - killed_at < 8 + 2 * 1 + 15  # timeout + restore sweep + startup and work


@pytest.mark.catalogue(25)
@pytest.mark.catalogue(20)
def test_poison_pill_ends_failed_without_looping(cluster: Cluster) -> None:
    """Anchor C25: a file that kills the worker every time stops after max_attempts as worker_crashed."""
    worker = cluster.start_worker(GATECHECK_TEST_CRASH="1", GATECHECK_MAX_ATTEMPTS="2")
    sid = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.FAILED, 40, "FAILED", cluster.problem(worker))
    rec = cluster.status(sid)
    assert rec.error_code == "worker_crashed" and rec.attempts == 3
    assert worker.poll() is None  # the worker survived its children and keeps draining the queue


# -- gatecheck serve: the embedded stack, same code paths ---------------------------------------------------


def test_serve_bootstrap_creates_tenant_and_key_once(tmp_path: Path) -> None:
    from gatecheck import serve
    from service.auth import hash_key
    from service.contracts import ApiRole

    state = SqliteState(tmp_path / "state.sqlite3")
    key = serve.bootstrap(state, tmp_path)
    assert key is not None
    key_file = tmp_path / serve.KEY_FILE
    assert key_file.read_text().strip() == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert state.find_api_key(hash_key(key)) == (serve.DEFAULT_TENANT, ApiRole.ADMIN)
    secret = state.webhook_secret(serve.DEFAULT_TENANT)
    assert secret
    assert serve.bootstrap(state, tmp_path) is None  # second start: no new key, same webhook secret
    assert state.webhook_secret(serve.DEFAULT_TENANT) == secret
    state.close()


@pytest.mark.catalogue(24)
def test_serve_requeues_unfinished_submissions(tmp_path: Path) -> None:
    """The filesystem broker loses a message its worker held when killed outright; the state store has it."""
    from gatecheck import serve

    state = SqliteState(tmp_path / "state.sqlite3")
    ids = {}
    for status in (Status.QUEUED, Status.PROCESSING, Status.DONE, Status.FAILED):
        rec = SubmissionRecord(id=f"{len(ids):032x}", tenant=serve.DEFAULT_TENANT, profile=PROFILE, method=METHOD)
        state.create(rec)
        if status is not Status.QUEUED:
            state.transition(rec.id, frozenset({Status.QUEUED}), status)
        ids[status] = rec.id
    queued: list[str] = []
    assert serve.reconcile(state, queued.append) == 2
    assert sorted(queued) == sorted([ids[Status.QUEUED], ids[Status.PROCESSING]])
    state.close()


def test_serve_restarts_a_dead_worker_and_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatecheck import serve

    marker = str(tmp_path / "starts")  # the first stand-in worker dies after 0.3 s, the next one lives
    script = (f"import time; open({marker!r}, 'a').write('x'); "
              f"time.sleep(0.3 if len(open({marker!r}).read()) < 2 else 60)")
    monkeypatch.setattr(serve, "worker_command", lambda _d: [sys.executable, "-c", script])
    monkeypatch.setattr(serve, "WATCH_INTERVAL_S", 0.05)
    restarted: list[int] = []
    worker = serve.WorkerProcess(tmp_path, on_restart=lambda: restarted.append(1))
    worker.start()
    try:
        wait_for(lambda: restarted, 10, "a restart")
        assert worker.restarts == 1 and worker.proc is not None and worker.proc.poll() is None
    finally:
        code = worker.stop()  # SIGTERM ends the second child's sleep
    assert code == -signal.SIGTERM and worker.restarts == 1


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_gatecheck_serve_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``gatecheck serve``: API + one worker child over SQLite, local disk and the filesystem broker."""
    import httpx

    from tests.servers import free_port

    port, data = free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    env |= {"GATECHECK_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gatecheck", "serve", "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    spawned: list[int] = []

    def died() -> str | None:
        return None if proc.poll() is None else f"serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"

    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _http_ok(f"{base}/healthz"), 30, "the API", died)
        spawned += children(proc.pid)
        key_file = data / "api-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            files = [("files", (name, corpus_file(rel).read_bytes())) for name, rel in FILES]
            form = {"standard": PROFILE, "method": METHOD, "meta": json.dumps(META)}
            accepted = client.post("/v1/submissions", data=form, files=files)
            assert accepted.status_code == 202, accepted.text
            sid = accepted.json()["id"]
            assert accepted.json()["report_url"] == f"{base}/v1/submissions/{sid}/report"

            def finished() -> dict[str, Any] | None:
                view: dict[str, Any] = client.get(f"/v1/submissions/{sid}").json()
                return view if view["status"] in ("done", "failed") else None

            view = wait_for(finished, 60, "the check", died)
            assert view["status"] == "done" and view["attempts"] == 1, view
            assert client.get(f"/v1/submissions/{sid}/report").json() == cli_report(tmp_path, monkeypatch)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "worker stopped (exit 0)" in log_path.read_text()
        assert spawned and not [pid for pid in spawned if Path(f"/proc/{pid}").exists()]
    finally:
        for pid in [proc.pid, *spawned]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@pytest.mark.catalogue(26)
def test_soft_time_limit_in_a_real_worker_fails_timeout(cluster: Cluster) -> None:
    cluster.env |= {"GATECHECK_TASK_TIME_LIMIT_S": "3"}  # soft limit 2 s
    worker = cluster.start_worker(GATECHECK_TEST_SLEEP_S="30")
    sid = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.FAILED, 30, "FAILED", cluster.problem(worker))
    rec = cluster.status(sid)
    assert rec.error_code == "timeout" and rec.attempts == 1


@pytest.mark.catalogue(26)
def test_hard_time_limit_in_a_real_worker_fails_timeout_once(cluster: Cluster) -> None:
    """A check deaf to the soft limit is killed by the hard one; the main process records it (celery#10226)."""
    cluster.env |= {"GATECHECK_TASK_TIME_LIMIT_S": "3"}
    worker = cluster.start_worker(GATECHECK_TEST_SLEEP_S="30", GATECHECK_TEST_DEAF="1")
    sid = make_record(cluster.state, cluster.storage, files=FILES[2:])
    cluster.enqueue(sid)
    wait_for(lambda: cluster.status(sid).status is Status.FAILED, 30, "FAILED", cluster.problem(worker))
    rec = cluster.status(sid)
    assert rec.error_code == "timeout" and rec.attempts == 1
    time.sleep(1.5)  # acked, not requeued: no second attempt
    assert cluster.status(sid).attempts == 1


def test_portal_flow_through_the_api_in_scale_out(cluster: Cluster, receiver: Receiver, tmp_path: Path) -> None:
    """A portal's whole journey on the scale-out backends: the API (uvicorn process) streams real corpus
    files to S3, a real Celery worker checks them from Redis, the signed webhook arrives at the
    portal's receiver, and the fetched report equals `gatecheck check --format json` on the same files."""
    import httpx

    from service.auth import new_api_key
    from service.contracts import ApiRole
    from tests.servers import free_port

    plaintext, key_hash = new_api_key()
    cluster.state.add_api_key(TENANT, key_hash, ApiRole.ADMIN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cluster.env | {"GATECHECK_PUBLIC_URL": base}
    log = (tmp_path / "api.log").open("wb")
    api_proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app_from_env", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    worker = cluster.start_worker(GATECHECK_PUBLIC_URL=base)  # webhooks point at the API the portal uses
    try:
        def api_died() -> str | None:
            return None if api_proc.poll() is None else (tmp_path / "api.log").read_text(errors="replace")[-3000:]

        wait_for(lambda: _http_ok(f"{base}/readyz"), 30, "the API", api_died)
        auth = {"Authorization": f"Bearer {plaintext}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            files = [("files", (name, corpus_file(rel).read_bytes())) for name, rel in FILES]
            form = {"standard": PROFILE, "method": METHOD, "meta": json.dumps(META), "callback_url": receiver.url}
            accepted = client.post("/v1/submissions", data=form, files=files)
            assert accepted.status_code == 202, accepted.text
            sid = accepted.json()["id"]
            wait_for(lambda: receiver.hits, 60, "the webhook", cluster.problem(worker))
            payload = assert_signed_delivery(receiver, sid, base)
            report = client.get(f"/v1/submissions/{sid}/report").json()
        REPORT_VALIDATOR.validate(report)
        assert payload["outcome"] == report["outcome"]
        named = tmp_path / "named"
        named.mkdir()
        for name, rel in FILES:
            shutil.copy(corpus_file(rel), named / name)
        meta_args = [a for k, v in META.items() for a in ("--meta", f"{k}={v}")]
        cli = subprocess.run(
            [sys.executable, "-m", "gatecheck", "check", "--standard", PROFILE, "--method", METHOD, "--format", "json",
             *meta_args, *[name for name, _ in FILES]],
            cwd=named, env=env, capture_output=True, timeout=120, check=False)
        assert cli.returncode in (0, 1), cli.stderr.decode()[-2000:]
        assert report == json.loads(cli.stdout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(api_proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            api_proc.wait(timeout=10)
