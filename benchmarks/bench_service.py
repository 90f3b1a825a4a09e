"""Load benchmark of the service: submissions/minute and time-to-report for 1 and 2 workers, and the
API's memory while it streams a 1 GiB upload.

Everything runs on this machine and talks to 127.0.0.1 only. For each run the script starts, in a
fresh temporary data directory: a real ``redis-server`` (broker and state store), the API under
uvicorn (``service.app:create_app_from_env``) as a subprocess, and N Celery workers
(``--pool=prefork --concurrency=1``), with objects on local disk. A tenant and an admin API key are
created directly in the state store, as ``gatecheck serve`` bootstraps them.

Load: M typical ST0505 AM1 submissions (a 2,000-word report written from a real apprentice's prose
with a KSB mapping, and a real 28-slide deck with speaker notes) from 4 client threads, each posting
one submission and polling its status every 100 ms until done or failed. Time-to-report is from just
before the POST is sent to the poll that sees ``done``. Submissions/minute is completed submissions
over the wall time from the first POST to the last terminal status.

Upload: a 1 GiB file (an mp4 ``ftyp`` header, then zeros) streamed in 1 MiB chunks to an API with no
workers, while ``/proc/<pid>/status`` of the API process is sampled every 50 ms; then the submission
is deleted. Skipped when the data directory's file system has under 5 GiB free.

Every wait and loop is bounded in count and time (``--max-seconds`` caps each load run); every child
is stopped on exit, Ctrl-C or SIGTERM. The per-key rate limit is lifted for the run: 4 clients polling
at 10 Hz are ~2,400 requests a minute. Results and their reading: benchmarks/README.md.

Usage: python benchmarks/bench_service.py [--submissions 40] [--max-seconds 150] [--workers 1,2]
                                          [--upload-mib 1024] [--no-upload] [--json PATH] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CORPUS  # noqa: E402
from tests.reports import report  # noqa: E402
from tests.servers import free_port, start_redis  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
TENANT = "bench"
PROFILE, METHOD = "st0505-accelerate-people", "AM1"
META = {"months_on_programme": "14", "off_the_job_pct": "22"}
DECK = "pptx/poi_HowWeRefactor_28slides_27notes.pptx"
# the AM1 KSBs, as in bench_check.py (not imported: that module loads spaCy at import)
AM1_KSBS = "K3 S2 S3 B3 K4 K5 S5 S6 B1 K6 S7 K15 K16 S9 K17 S10 K22 S14 B2".split()
CLIENTS = 4
POLL_S = 0.1
RSS_SAMPLE_S = 0.05
SUBMISSION_CAP_S = 120.0  # one submission's poll gives up after this, whatever the run's cap
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
MIN_FREE_BYTES = 5 * GiB
UPLOAD_CHUNK = MiB
UPLOAD_CAP_S = 120.0
WARMUP_CAP_S = 60.0
REQUEST_TIMEOUT_S = 30.0
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"  # sniffed as media (mp4)
TERMINAL = ("done", "failed")

STOP = threading.Event()  # set on Ctrl-C / SIGTERM: every loop checks it


# -- child processes ------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if this script is killed outright, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group (session), output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace_s``; idempotent."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
            if sig == signal.SIGTERM:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # pool children still in the group
                return


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    """Poll ``ready`` every 100 ms; raise if a process died or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not STOP.is_set():
        if ready():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"while waiting for {what}: {' '.join(map(str, dead[0].args[:6]))} exited "
                               f"({dead[0].returncode})")
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout_s:.0f} s")


def child_env(data_dir: Path, redis_url: str, base_url: str, extra: dict[str, str]) -> dict[str, str]:
    """Our environment without any GATECHECK_* of the caller's, plus the scale-out settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    return env | {
        "PYTHONPATH": str(ROOT),
        "GATECHECK_DATA_DIR": str(data_dir),
        "GATECHECK_STATE": "redis",
        "GATECHECK_REDIS_URL": redis_url,
        "GATECHECK_BROKER_URL": redis_url,
        "GATECHECK_STORAGE": "local",
        "GATECHECK_PUBLIC_URL": base_url,
        # 4 clients polling at 10 Hz are ~2,400 requests/min on one key: lift the per-key limit
        "GATECHECK_RATE_LIMIT_PER_MINUTE": "1000000",
    } | extra


def bootstrap_key(redis_url: str) -> str:
    """A tenant and an admin key, straight into the state store (as ``gatecheck serve`` does)."""
    from service.auth import new_api_key
    from service.contracts import ApiRole
    from service.state import RedisState

    state = RedisState(redis_url)
    try:
        state.create_tenant(TENANT, secrets.token_urlsafe(32))
        plaintext, digest = new_api_key()
        state.add_api_key(TENANT, digest, ApiRole.ADMIN)
    finally:
        state.close()
    return plaintext


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_ready(log_path: Path) -> bool:
    return " ready." in log_path.read_text(errors="replace")


@dataclass
class Stack:
    """The running servers of one benchmark run."""

    base_url: str
    key: str
    data_dir: Path
    redis_url: str
    api: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, timeout: httpx.Timeout | float = REQUEST_TIMEOUT_S) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=timeout, trust_env=False)


def start_api(data_dir: Path, redis_url: str, extra_env: dict[str, str],
              attempts: int = 3) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """uvicorn on a free port, healthy; retried on a new port if it exits (a lost port race).

    Returns (process, base URL, the environment the workers should share)."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = child_env(data_dir / "data", redis_url, base_url, extra_env)
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app_from_env", "--host",
               "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
        proc = spawn(cmd, env, data_dir / "api.log")
        try:
            wait_until(lambda url=base_url: _healthy(url), START_TIMEOUT_S, "the API", [proc])
            return proc, base_url, env
        except BaseException:
            stop_group(proc)
            if proc.returncode is None or attempt == attempts or STOP.is_set():
                raise
            log(f"the API exited on start ({proc.returncode}); retrying on another port")
    raise AssertionError("unreachable")


def start_worker(env: dict[str, str], n: int, log_dir: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool=prefork",
           "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
           f"--hostname=bench{n}@%h"]
    return spawn(cmd, env, log_dir / f"worker{n}.log")


@contextlib.contextmanager
def stack(tmp_parent: Path, workers: int, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Redis, the API and ``workers`` Celery workers in a fresh data dir; all stopped and removed after."""
    data_dir = Path(tempfile.mkdtemp(prefix="gc-bench-", dir=tmp_parent))
    redis_url, stop_redis = start_redis()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        key = bootstrap_key(redis_url)
        api, base_url, env = start_api(data_dir, redis_url, extra_env or {})
        procs.append(api)
        procs += [start_worker(env, n, data_dir) for n in range(workers)]
        for n in range(workers):
            wait_until(lambda n=n: _worker_ready(data_dir / f"worker{n}.log"), START_TIMEOUT_S, f"worker {n}", procs)
        yield Stack(base_url, key, data_dir, redis_url, api, procs[1:])
    except KeyboardInterrupt:
        STOP.set()  # client threads stop polling before the servers go away
        raise
    except Exception:
        STOP.set()
        for log_path in sorted(data_dir.glob("*.log")):
            tail = log_path.read_text(errors="replace")[-1500:]
            log(f"{log_path.name} (last lines):\n{tail}")
        raise
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        stop_redis()
        shutil.rmtree(data_dir, ignore_errors=True)


# -- load: submissions/minute and time-to-report --------------------------------------------------------


FileParts = list[tuple[str, tuple[str, bytes]]]


def build_files(tmp: Path) -> FileParts:
    """The typical AM1 submission: a 2,000-word report with a KSB mapping and a real deck with notes."""
    rows = [["KSB", "Where evidenced"], *[[k, "Plan"] for k in AM1_KSBS]]
    doc = report(tmp / "project_report.docx", 2000, mapping=rows, source="apprentice")
    deck = CORPUS / DECK
    if not deck.exists():
        raise SystemExit(f"corpus file {deck} not found (set GATECHECK_CORPUS)")
    return [("files", ("project_report.docx", doc.read_bytes())), ("files", ("presentation.pptx", deck.read_bytes()))]


@dataclass
class Sample:
    """One submission as the client saw it (seconds, monotonic clock)."""

    sent: float
    status: str = "unsent"  # done | failed | rejected | timeout | unsent
    ended: float | None = None
    post_s: float | None = None
    queue_s: float | None = None  # server: started_at - created_at
    check_s: float | None = None  # server: finished_at - started_at
    outcome: str = ""  # the report's outcome when done: pass | attention | fail
    error: str = ""

    @property
    def ttr(self) -> float | None:
        return self.ended - self.sent if self.ended is not None else None


def submit_one(client: httpx.Client, files: FileParts, deadline: float) -> Sample:
    """POST one submission and poll it (every 100 ms) until a terminal status or the deadline."""
    form = {"standard": PROFILE, "method": METHOD, "meta": json.dumps(META)}
    sample = Sample(sent=time.monotonic())
    try:
        resp = client.post("/v1/submissions", data=form, files=files)
    except httpx.HTTPError as exc:
        sample.status, sample.error = "rejected", type(exc).__name__
        return sample
    sample.post_s = time.monotonic() - sample.sent
    if resp.status_code != 202:
        sample.status, sample.error = "rejected", f"{resp.status_code} {resp.text[:200]}"
        return sample
    return poll(client, resp.json()["id"], sample, min(deadline, sample.sent + SUBMISSION_CAP_S))


def poll(client: httpx.Client, sid: str, sample: Sample, deadline: float) -> Sample:
    while time.monotonic() < deadline and not STOP.is_set():
        try:
            view = client.get(f"/v1/submissions/{sid}").json()
        except (httpx.HTTPError, ValueError) as exc:
            sample.error = type(exc).__name__  # transient: keep polling until the deadline
            view = {}
        if view.get("status") in TERMINAL:
            sample.ended, sample.status = time.monotonic(), view["status"]
            _server_times(sample, view)
            return sample
        time.sleep(POLL_S)
    sample.status = "timeout"
    return sample


def _server_times(sample: Sample, view: dict[str, Any]) -> None:
    created, started, finished = view.get("created_at"), view.get("started_at"), view.get("finished_at")
    if created and started:
        sample.queue_s = started - created
    if started and finished:
        sample.check_s = finished - started
    sample.outcome = str(view.get("outcome") or "")
    if view.get("error"):
        sample.error = str(view["error"].get("code"))


def client_loop(st: Stack, files: FileParts, todo: Iterator[int], lock: threading.Lock, deadline: float,
                out: list[Sample]) -> None:
    """One client thread: take the next submission number, run it, until none are left or time is up."""
    with st.client() as client:
        while time.monotonic() < deadline and not STOP.is_set():
            with lock:
                if next(todo, None) is None:
                    return
            sample = submit_one(client, files, deadline)
            with lock:
                out.append(sample)


def run_clients(st: Stack, files: FileParts, count: int, max_seconds: float) -> tuple[list[Sample], float]:
    """``count`` submissions from ``CLIENTS`` threads, capped at ``max_seconds``; (samples, elapsed)."""
    todo, lock, out = iter(range(count)), threading.Lock(), []
    start = time.monotonic()
    deadline = start + max_seconds
    threads = [threading.Thread(target=client_loop, args=(st, files, todo, lock, deadline, out), daemon=True)
               for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:  # each thread ends by the deadline; the slack covers one in-flight request
        t.join(timeout=max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S + 5)
    return list(out), time.monotonic() - start


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarise(workers: int, requested: int, samples: list[Sample], warmup: int) -> dict[str, Any]:
    done = [s for s in samples if s.status == "done"]
    ttr = [s.ttr for s in done if s.ttr is not None]
    ends = [s.ended for s in samples if s.ended is not None]
    wall = (max(ends) - min(s.sent for s in samples)) if ends else None
    counts = {k: sum(s.status == k for s in samples) for k in ("done", "failed", "rejected", "timeout")}
    errors = sorted({s.error for s in samples if s.error and s.status != "done"})
    return {
        "workers": workers, "requested": requested, "warmup": warmup, "sent": len(samples), **counts,
        "not_sent": requested - len(samples), "wall_s": wall,
        "per_minute": len(done) / wall * 60 if wall else None,
        "ttr_p50_s": percentile(ttr, 50), "ttr_p95_s": percentile(ttr, 95), "ttr_max_s": max(ttr, default=None),
        "post_p50_s": percentile([s.post_s for s in done if s.post_s is not None], 50),
        "queue_p50_s": percentile([s.queue_s for s in done if s.queue_s is not None], 50),
        "check_p50_s": percentile([s.check_s for s in done if s.check_s is not None], 50),
        "check_p95_s": percentile([s.check_s for s in done if s.check_s is not None], 95),
        "outcomes": sorted({s.outcome for s in done}),
        "errors": errors,
    }


def run_load(tmp: Path, files: FileParts, workers: int, count: int, max_seconds: float) -> dict[str, Any]:
    """One load run on a fresh stack: a warm-up of one submission per worker (not counted), then ``count``."""
    with stack(tmp, workers) as st:
        log(f"{workers} worker(s): warm-up ({workers} submission(s))")
        warm, _ = run_clients(st, files, workers, min(max_seconds, WARMUP_CAP_S))
        log(f"{workers} worker(s): {count} submissions, {CLIENTS} clients, cap {max_seconds:.0f} s")
        before = cpu_snapshot(st)
        samples, elapsed = run_clients(st, files, count, max_seconds)
        cpu = {k: v - before[k] for k, v in cpu_snapshot(st).items()}
        result = summarise(workers, count, samples, len(warm))
        result["warmup_ok"] = sum(s.status == "done" for s in warm)
        result["cpu_s"] = cpu
        result["cpu_busy_pct"] = sum(cpu.values()) / (elapsed * (os.cpu_count() or 1)) * 100
        result["samples"] = [sample_row(s, min(x.sent for x in samples)) for s in samples] if samples else []
        log(f"{workers} worker(s): {result['done']}/{count} done in {elapsed:.1f} s")
        return result


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of a process group: live members, plus children its leader reaped."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = stat.read_text().rsplit(")", 1)[1].split()  # f[2] pgrp, f[11..14] utime stime cutime cstime
            if int(f[2]) == pgid:
                ticks += int(f[11]) + int(f[12])
                if int(stat.parent.name) == pgid:
                    ticks += int(f[13]) + int(f[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def cpu_snapshot(st: Stack) -> dict[str, float]:
    """CPU seconds so far of each part: API, workers (with pool children), Redis, this process (the clients)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"api": group_cpu_s(st.api.pid), "workers": sum(group_cpu_s(w.pid) for w in st.workers),
            "redis": redis_cpu_s(st.redis_url), "clients": usage.ru_utime + usage.ru_stime}


def sample_row(s: Sample, origin: float) -> dict[str, Any]:
    return {"sent_at_s": round(s.sent - origin, 3), "status": s.status, "ttr_s": s.ttr, "post_s": s.post_s,
            "queue_s": s.queue_s, "check_s": s.check_s, "outcome": s.outcome, "error": s.error}


# -- upload: API memory while streaming 1 GiB -----------------------------------------------------------


def proc_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB, from /proc/<pid>/status; (0, 0) once it is gone."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in values:
                values[parts[0]] = int(parts[1])
    return values["VmRSS:"], values["VmHWM:"]


class RssSampler:
    """Samples a process's RSS every 50 ms in a thread, for at most ``cap_s`` seconds."""

    def __init__(self, pid: int, cap_s: float) -> None:
        self.pid, self.cap_s = pid, cap_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.cap_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.samples.append(proc_kib(self.pid)[0])
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Body:
    """A multipart body: text fields, one file part of ``size`` bytes generated on the fly."""

    size: int
    boundary: str = field(default_factory=lambda: "bench" + secrets.token_hex(12))
    sent_at: float | None = None  # when the last byte was handed to the socket

    def head(self) -> bytes:
        fields = {"standard": PROFILE, "method": METHOD}
        out = b"".join(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                       for k, v in fields.items())
        return out + (f'--{self.boundary}\r\nContent-Disposition: form-data; name="files"; '
                      f'filename="recording.mp4"\r\nContent-Type: video/mp4\r\n\r\n').encode()

    def tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    def length(self) -> int:
        return len(self.head()) + self.size + len(self.tail())

    def chunks(self, deadline: float) -> Iterator[bytes]:
        yield self.head()
        zeros = bytes(UPLOAD_CHUNK)
        left = self.size
        first = MP4_HEAD + zeros[len(MP4_HEAD):]
        while left > 0:
            if STOP.is_set() or time.monotonic() > deadline:
                raise TimeoutError("upload cap reached")
            n = min(left, UPLOAD_CHUNK)
            buf = first if left == self.size else zeros
            yield buf if n == UPLOAD_CHUNK else buf[:n]
            left -= n
        yield self.tail()
        self.sent_at = time.monotonic()


def upload(st: Stack, size: int) -> dict[str, Any]:
    """Stream one ``size``-byte file while sampling the API's RSS; delete the submission after."""
    body = Body(size)
    timeout = httpx.Timeout(UPLOAD_CAP_S, connect=5.0)
    headers = {"Content-Type": f"multipart/form-data; boundary={body.boundary}", "Content-Length": str(body.length())}
    baseline = _baseline_kib(st.api.pid)
    hwm_before = proc_kib(st.api.pid)[1]
    with st.client(timeout) as client, RssSampler(st.api.pid, UPLOAD_CAP_S + 30) as sampler:
        start = time.monotonic()
        resp = client.post("/v1/submissions", content=body.chunks(start + UPLOAD_CAP_S), headers=headers)
        total = time.monotonic() - start
        time.sleep(0.5)  # a few samples after the response
    rss_after, hwm_after = proc_kib(st.api.pid)
    deleted = None
    with st.client() as client:
        if resp.status_code == 202:
            deleted = client.delete(f"/v1/submissions/{resp.json()['id']}").status_code
    sent_s = (body.sent_at - start) if body.sent_at else None
    return {
        "size_bytes": size, "status": resp.status_code, "response": resp.text[:300] if resp.status_code != 202 else "",
        "delete_status": deleted, "baseline_rss_mib": baseline / 1024, "peak_rss_mib": max(sampler.samples) / 1024,
        "rss_after_mib": rss_after / 1024, "hwm_before_mib": hwm_before / 1024, "hwm_after_mib": hwm_after / 1024,
        "samples": len(sampler.samples), "send_s": sent_s, "total_s": total,
        "send_mb_s": size / 1e6 / sent_s if sent_s else None, "total_mb_s": size / 1e6 / total,
    }


def _baseline_kib(pid: int) -> int:
    """Median RSS over one second of idling (20 samples)."""
    samples = []
    for _ in range(20):
        samples.append(proc_kib(pid)[0])
        time.sleep(RSS_SAMPLE_S)
    return int(statistics.median(samples))


def run_upload(tmp: Path, files: FileParts, size: int) -> dict[str, Any] | None:
    """A stack with no workers (the 1 GiB file stays queued), warmed by two typical submissions."""
    free = shutil.disk_usage(tmp).free
    if free < MIN_FREE_BYTES:
        log(f"upload: skipped, {free / GiB:.1f} GiB free under {tmp} (needs {MIN_FREE_BYTES // GiB} GiB)")
        return None
    extra = {"GATECHECK_MAX_UPLOAD_FILE_BYTES": str(size + GiB), "GATECHECK_MAX_SUBMISSION_BYTES": str(size + 2 * GiB)}
    with stack(tmp, 0, extra) as st, st.client() as client:
        for _ in range(2):  # the first requests import the multipart parser, sniffers, ...
            client.post("/v1/submissions", data={"standard": PROFILE, "method": METHOD}, files=files)
        log(f"upload: streaming {size / GiB:.2f} GiB")
        result = upload(st, size)
    log(f"upload: {result['status']} in {result['total_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
    return result


# -- output ---------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def load_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workers | done / sent (of) | failed | rejected | timed out | wall s | submissions/min | "
             "time-to-report p50 s | p95 s | max s | POST p50 s | queue p50 s | check p50 / p95 s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['done']} / {r['sent']} ({r['requested']}) | {r['failed']} | "
                     f"{r['rejected']} | {r['timeout']} | {_f(r['wall_s'], 1)} | **{_f(r['per_minute'], 1)}** | "
                     f"**{_f(r['ttr_p50_s'])}** | **{_f(r['ttr_p95_s'])}** | {_f(r['ttr_max_s'])} | "
                     f"{_f(r['post_p50_s'])} | {_f(r['queue_p50_s'])} | "
                     f"{_f(r['check_p50_s'])} / {_f(r['check_p95_s'])} |")
    return "\n".join(lines)


def cpu_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workers | CPU ms per done submission: API | workers | Redis | clients (this script) | "
             "CPU busy, % of all cores |", "|---|---|---|---|---|---|"]
    for r in rows:
        per = {k: v / r["done"] * 1000 if r["done"] else None for k, v in r["cpu_s"].items()}
        lines.append(f"| {r['workers']} | {_f(per['api'], 0)} | {_f(per['workers'], 0)} | {_f(per['redis'], 0)} | "
                     f"{_f(per['clients'], 0)} | {r['cpu_busy_pct']:.0f} |")
    return "\n".join(lines)


def upload_table(u: dict[str, Any]) -> str:
    return "\n".join([
        "| upload | HTTP | API RSS before (median, idle) | API peak RSS (50 ms samples) | API VmHWM before → after | "
        "body sent in | MB/s (body) | 202 after | MB/s (to 202) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {u['size_bytes'] / GiB:.2f} GiB mp4 header + zeros | {u['status']} | {u['baseline_rss_mib']:.0f} MiB | "
        f"**{u['peak_rss_mib']:.0f} MiB** | {u['hwm_before_mib']:.0f} → {u['hwm_after_mib']:.0f} MiB | "
        f"{_f(u['send_s'], 1)} s | {_f(u['send_mb_s'], 0)} | {u['total_s']:.1f} s | **{u['total_mb_s']:.0f}** |",
    ])


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=40, help="submissions per run (default 40)")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="hard cap per load run (default 150)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--upload-mib", type=int, default=1024, help="size of the streamed upload (default 1024)")
    parser.add_argument("--no-upload", action="store_true", help="skip the upload/memory part")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()),
                        help="parent of the temporary data dirs (on disk, not tmpfs, for the upload)")
    return parser.parse_args(argv)


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                               "submissions": args.submissions, "max_seconds": args.max_seconds, "load": []}
    try:
        with tempfile.TemporaryDirectory(prefix="gc-bench-files-") as raw:
            files = build_files(Path(raw))
            for n in (int(w) for w in args.workers.split(",") if w.strip()):
                results["load"].append(run_load(args.tmp, files, n, args.submissions, args.max_seconds))
            if not args.no_upload:
                results["upload"] = run_upload(args.tmp, files, args.upload_mib * MiB)
    except KeyboardInterrupt:
        STOP.set()
        log("interrupted: servers stopped")
        return 130
    print(load_table(results["load"]))
    print()
    print(cpu_table(results["load"]))
    if results.get("upload"):
        print()
        print(upload_table(results["upload"]))
    for r in results["load"]:
        if r["errors"]:
            print(f"\n{r['workers']} worker(s) errors: {r['errors']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
