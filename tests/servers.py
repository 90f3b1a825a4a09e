"""Real servers for tests: ``redis-server`` and moto's S3-protocol server, on free local ports.

Usage from any test module (API, workers, storage)::

    @pytest.fixture(scope="session")
    def redis_url():
        url, stop = start_redis()   # or: require_redis_server() first, for the skip/fail policy
        yield url
        stop()

Why real servers rather than fakes: the atomicity we rely on (Lua scripts, SET NX,
multipart uploads, presigned URLs) is exactly what fakes get subtly wrong. Every wait is
bounded, ``stop`` is idempotent and also registered with ``atexit``, so a failed test run
never leaves a server behind or hangs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

Stop = Callable[[], None]


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the caller retries if another process grabs it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis_server() -> str:
    """Path of ``redis-server``; skip when missing locally, fail when missing under CI (env ``CI`` set)."""
    path = shutil.which("redis-server")
    if path:
        return path
    msg = "redis-server is not installed (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run the Redis tests")
    pytest.skip(msg)
    raise AssertionError("unreachable")


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (OSError, ValueError):
        return False


def _start(name: str, cmd: Callable[[int, Path], list[str]], ready: Callable[[int], bool],
           timeout_s: float, attempts: int = 3) -> tuple[int, Stop]:
    """Start a server on a free port, wait (bounded) until ``ready``; retry on a lost port race."""
    last_log = ""
    for _ in range(attempts):
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"gc-{name}-"))
        log_path = workdir / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd(port, workdir), cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        stop = _stopper(proc, workdir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if ready(port):
                atexit.register(stop)
                return port, stop
            time.sleep(0.05)
        last_log = log_path.read_text(errors="replace")[-2000:]
        stop()
    raise RuntimeError(f"{name} did not start within {timeout_s}s after {attempts} attempts:\n{last_log}")


def _stopper(proc: subprocess.Popen[bytes], workdir: Path) -> Stop:
    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)

    return stop


def start_redis(timeout_s: float = 10.0) -> tuple[str, Stop]:
    """A throwaway ``redis-server`` (no persistence) → (``redis://127.0.0.1:PORT/0``, stop)."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server is not installed")

    def cmd(port: int, workdir: Path) -> list[str]:
        return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir)]

    port, stop = _start("redis", cmd, _redis_ready, timeout_s)
    return f"redis://127.0.0.1:{port}/0", stop


def start_moto(timeout_s: float = 30.0) -> tuple[str, Stop]:
    """moto's S3-compatible server → (``http://127.0.0.1:PORT``, stop). Any access/secret key works."""

    def cmd(port: int, _workdir: Path) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]

    port, stop = _start("moto", cmd, lambda p: _http_ready(f"http://127.0.0.1:{p}/moto-api/"), timeout_s)
    return f"http://127.0.0.1:{port}", stop
