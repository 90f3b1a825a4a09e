"""``gatecheck serve``: the whole service on one machine, with no server to install.

Why the same code paths as scale-out: the API is ``service.app.create_app`` and the
worker is a real Celery worker running ``worker.tasks``; only the backends differ
(SQLite state, local-disk objects and kombu's filesystem broker, all under
``$GATECHECK_DATA_DIR``). So what a user tries locally is what production runs.

Why one worker child process (prefork, concurrency 1) rather than threads in the
API process: a hostile file can hang, balloon or crash a parser; in a child it takes
down only the child, which Celery replaces and whose message it requeues.

On first start a ``default`` tenant and an admin API key are created. The key is
printed once and kept in ``$GATECHECK_DATA_DIR/api-key`` (mode 600); only its hash
is in the state store.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TENANT = "default"
KEY_FILE = "api-key"
STOP_GRACE_S = 30.0  # warm shutdown: let the running check finish
COLD_GRACE_S = 10.0  # cold shutdown: kombu puts the unacked message back on the queue
WATCH_INTERVAL_S = 2.0
MAX_RESTARTS = 5


def data_dir_from_env() -> Path:
    """``$GATECHECK_DATA_DIR`` or ``~/.gatecheck``, exported so the worker child and every Settings() agree."""
    path = Path(os.environ.get("GATECHECK_DATA_DIR") or Path.home() / ".gatecheck").expanduser().resolve()
    os.environ["GATECHECK_DATA_DIR"] = str(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def bootstrap(state: Any, data_dir: Path) -> str | None:
    """First start: the ``default`` tenant and an admin key. Returns the new key, or None if one exists.

    The key is registered before its file is written: a crash in between leaves no
    file, so the next start makes a fresh key instead of trusting an unregistered one.
    """
    from service.auth import new_api_key
    from service.contracts import ApiRole

    key_file = data_dir / KEY_FILE
    if key_file.exists():
        return None
    if state.webhook_secret(DEFAULT_TENANT) is None:
        state.create_tenant(DEFAULT_TENANT, secrets.token_urlsafe(32))
    plaintext, digest = new_api_key()
    state.add_api_key(DEFAULT_TENANT, digest, ApiRole.ADMIN)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plaintext + "\n")
    return plaintext


def reconcile(state: Any, enqueue: Callable[[str], None], tenant: str = DEFAULT_TENANT) -> int:
    """Re-enqueue unfinished submissions at start-up; returns how many.

    The filesystem broker holds a message being worked on in the worker's memory
    only, so a worker killed outright (power loss, SIGKILL) loses it. The state
    store still says queued/processing; a duplicate message is harmless because
    the task is idempotent.
    """
    from service.contracts import Status

    count = 0
    for status in (Status.QUEUED, Status.PROCESSING):
        cursor: str | None = None
        while True:
            recs, cursor = state.list(tenant, status=status, limit=200, cursor=cursor)
            for rec in recs:
                enqueue(rec.id)
                count += 1
            if not cursor:
                break
    return count


def worker_command(data_dir: Path) -> list[str]:
    """One prefork worker with one child, plus the periodic retention purge (beat)."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--pool=prefork", "--concurrency=1", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--beat", f"--schedule={data_dir / 'celerybeat-schedule'}",
        "--hostname=gatecheck-embedded@%h",
    ]


def worker_env(data_dir: Path) -> dict[str, str]:
    """Our environment, the data dir, and the source tree on the path (for a checkout run in place)."""
    env = dict(os.environ)
    env["GATECHECK_DATA_DIR"] = str(data_dir)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM if ``gatecheck serve`` itself is killed, so it is never orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class WorkerProcess:
    """The Celery worker child: started, watched (restarted if it dies), and stopped cleanly."""

    def __init__(self, data_dir: Path, on_restart: Callable[[], object] | None = None) -> None:
        self.data_dir = data_dir
        self.on_restart = on_restart
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a restart and stop() never interleave: no orphaned worker
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            worker_command(self.data_dir), env=worker_env(self.data_dir),
            start_new_session=True,  # Ctrl-C reaches serve only; serve then stops the worker in order
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="worker-watch", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """Restart a worker that died (OOM killer, crash), a few times, then leave it to the operator."""
        while not self._stopping.wait(WATCH_INTERVAL_S):
            proc = self.proc
            if proc is None or proc.poll() is None or self._stopping.is_set():
                continue
            if self.restarts >= MAX_RESTARTS:
                print(f"gatecheck: worker exited ({proc.returncode}) {self.restarts} times; not restarting",
                      file=sys.stderr)
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                print(f"gatecheck: worker exited ({proc.returncode}); restarting", file=sys.stderr)
                self.start()
            if self.on_restart is not None:
                self.on_restart()

    def stop(self) -> int | None:
        """Warm shutdown (finish the running check), then cold (requeue it), then kill."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None:
            return None
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGQUIT, COLD_GRACE_S)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=COLD_GRACE_S)
        return proc.returncode


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


class _Stop(Exception):
    """SIGINT/SIGTERM, turned into an exception so the worker is stopped in order."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signum)


def _serve_api(app: Any, host: str, port: int) -> None:
    """uvicorn until a signal. uvicorn shuts down gracefully, restores the handlers it found, then
    re-raises the signal: with ours installed that arrives here as ``_Stop`` instead of killing the
    process before the worker is stopped."""
    import uvicorn

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.run(app, host=host, port=port, log_config=None)
    except _Stop:
        pass
    finally:
        for sig in previous:  # a second Ctrl-C must not interrupt the orderly stop below
            signal.signal(sig, signal.SIG_IGN)


def main(args: argparse.Namespace) -> int:
    """Run the API in this process and one worker as a child, until SIGINT/SIGTERM."""
    from service import logs
    from service.app import create_app
    from service.settings import Settings
    from service.state import state_from_env
    from service.storage import storage_from_env
    from worker.celery_app import queue_depth
    from worker.tasks import bind, enqueue

    data_dir = data_dir_from_env()
    os.environ.setdefault("GATECHECK_PUBLIC_URL", _url(args.host, args.port))  # for the worker's webhooks too
    settings = Settings()
    settings.validate()
    logs.configure()
    state, storage = state_from_env(), storage_from_env()
    bind(settings, state, storage)
    key = bootstrap(state, data_dir)
    if key is not None:
        print(f"gatecheck: admin API key for tenant '{DEFAULT_TENANT}' (shown once; saved to "
              f"{data_dir / KEY_FILE}, mode 600):\n\n    {key}\n", flush=True)
    requeue = (lambda: reconcile(state, enqueue)) if settings.embedded else (lambda: 0)
    pending = requeue()
    worker = WorkerProcess(data_dir, on_restart=requeue)
    worker.start()
    try:
        app = create_app(settings, state, storage, enqueue, queue_depth=queue_depth)
        print(f"gatecheck: serving {_url(args.host, args.port)} (API docs at /docs; data in {data_dir}; "
              f"{pending} unfinished submission(s) re-queued)", flush=True)
        _serve_api(app, args.host, args.port)
    finally:
        print(f"gatecheck: stopping the worker (up to {STOP_GRACE_S + COLD_GRACE_S:.0f} s)", file=sys.stderr)
        code = worker.stop()
        print(f"gatecheck: worker stopped (exit {code})", file=sys.stderr)
    return 0
