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
import contextlib
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
from typing import Any

import pytest

Stop = Callable[[], None]


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the caller retries if another process grabs it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_moto() -> None:
    """moto[server] importable, or fail in CI (which must run the S3 tests) and skip elsewhere."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("moto[server] is not installed; CI must run the S3 tests")
        pytest.skip("moto[server] is not installed")


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


#: TEST-ONLY signature set (EICAR): there is no network for freshclam here; production uses freshclam's databases.
CLAMAV_TEST_DB = Path(__file__).resolve().parent / "data" / "clamav" / "gatecheck-test.ndb"
#: Small scan limits, so a test can exceed them with a few MB: over StreamMaxLength clamd refuses the stream,
#: over MaxFileSize/MaxScanSize it answers Heuristics.Limits.Exceeded (AlertExceedsMax), never "OK".
CLAMD_TEST_LIMITS = {"StreamMaxLength": "4M", "MaxFileSize": "3M", "MaxScanSize": "64M"}


def require_clamd() -> str:
    """Path of ``clamd``; skip when missing locally, fail when missing under CI (env ``CI`` set)."""
    path = shutil.which("clamd") or next((p for p in ("/usr/sbin/clamd",) if os.access(p, os.X_OK)), None)
    if path:
        return path
    msg = "clamd is not installed (apt-get install clamav-daemon, or scripts/install.sh --dev)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run the malware-scan tests")
    pytest.skip(msg)
    raise AssertionError("unreachable")


def _clamd_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


def start_clamd(limits: dict[str, str] | None = None, timeout_s: float = 60.0) -> tuple[tuple[str, str], Stop]:
    """A ``clamd`` as the current user, in its own temp dir, loaded with the EICAR test signature only.

    Listens on a unix socket and on TCP loopback: ((``unix:///.../clamd.sock``, ``tcp://127.0.0.1:PORT``), stop).
    ``AlertExceedsMax yes`` as in production, and ``limits`` (default ``CLAMD_TEST_LIMITS``) as clamd.conf lines.
    """
    binary = require_clamd()
    sockets: dict[str, Path] = {}

    def cmd(port: int, workdir: Path) -> list[str]:
        db = workdir / "db"
        db.mkdir()
        shutil.copy(CLAMAV_TEST_DB, db)
        sockets["unix"] = workdir / "clamd.sock"
        settings = {"Foreground": "yes", "LocalSocket": str(sockets["unix"]), "TCPSocket": str(port),
                    "TCPAddr": "127.0.0.1", "DatabaseDirectory": str(db), "TemporaryDirectory": str(workdir),
                    "AlertExceedsMax": "yes", "SelfCheck": "3600"} | (CLAMD_TEST_LIMITS if limits is None else limits)
        conf = workdir / "clamd.conf"
        conf.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        return [binary, "--config-file", str(conf)]

    port, stop = _start("clamd", cmd, _clamd_ready, timeout_s)
    return (f"unix://{sockets['unix']}", f"tcp://127.0.0.1:{port}"), stop


# --------------------------------------------------------------------------- fault injection (tests/test_faults.py)


def fill_redis(client: Any, chunk: int = 4096, limit: int = 100_000) -> int:
    """Write junk until a ``noeviction`` Redis refuses with OOM, then pin ``maxmemory`` below what is used.

    The pin matters: a refused command's query buffer is freed afterwards, which can drop usage back
    under the limit and let the next small write through. Returns how many junk keys were written.
    """
    import redis

    written = 0
    try:
        while written < limit:
            client.set(f"junk:{written}", b"x" * chunk)
            written += 1
    except redis.exceptions.OutOfMemoryError:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(max(1024 * 1024, used - 256 * 1024)))
        return written
    raise AssertionError(f"Redis never refused a write after {limit} keys: is maxmemory set?")


class RedisProcess:
    """A ``redis-server`` on a fixed port and data directory that a test can stop, SIGKILL and start again.

    AOF on (``appendfsync`` as given), no RDB snapshots: what survives a restart is exactly what the
    append-only file holds, as in docker-compose.yml.
    """

    def __init__(self, workdir: Path, *, appendfsync: str = "always", maxmemory: str | None = None) -> None:
        self.binary = shutil.which("redis-server") or ""
        if not self.binary:
            raise RuntimeError("redis-server is not installed")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.maxmemory = maxmemory
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.kill)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> float:
        """Start (again) on the same port and directory; returns seconds until it answers PING."""
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
               "--appendonly", "yes", "--appendfsync", self.appendfsync, "--maxmemory-policy", "noeviction"]
        if self.maxmemory:
            cmd += ["--maxmemory", self.maxmemory]
        t0 = time.monotonic()
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            if _redis_ready(self.port):
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer within {timeout_s}s")

    def shutdown(self) -> None:
        """Graceful: SHUTDOWN (the AOF is flushed and fsynced), then wait for the process."""
        assert self.proc is not None
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"SHUTDOWN\r\n")
            s.recv(64)
        self.proc.wait(timeout=20)

    def kill(self) -> None:
        """SIGKILL: whatever the AOF had not written is lost, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class MotoProcess:
    """moto's S3 server on a fixed port that a test can stop and start again (its objects live in memory,
    so a restart empties it, unlike MinIO: use ``S3Switch`` where data must survive the outage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode} (port {self.port} taken?)")
            if _http_ready(f"{self.url}/moto-api/"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"moto did not start within {timeout_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


_SWITCH = r'''
import asyncio, sys
listen, target, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
XML = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{msg}</Message>'
       '<Resource>/</Resource><RequestId>quorum</RequestId><HostId>quorum</HostId></Error>')

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()

async def quorum_lost(r, w):
    """What MinIO answers past its erasure-set quorum: 503 XMinioReadQuorum / XMinioWriteQuorum."""
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            method = head.split(b" ", 1)[0]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await r.readexactly(length)
            code, msg = (("XMinioReadQuorum", "Multiple disk failures, unable to reconstruct data.")
                         if method in (b"GET", b"HEAD") else
                         ("XMinioWriteQuorum", "Multiple disk failures, unable to write data."))
            body = b"" if method == b"HEAD" else XML.format(code=code, msg=msg).encode()
            w.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()
    except Exception:
        w.close()

async def handle(r, w):
    if mode == "quorum":
        await quorum_lost(r, w)
        return
    try:
        tr, tw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, tw), pipe(tr, w))

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", listen, reuse_address=True)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
'''


class S3Switch:
    """A TCP front for an S3 server, on its own fixed port: ``up`` forwards, ``down`` closes the port
    (connection refused, as when MinIO is stopped), ``quorum_lost`` answers every request 503 with
    MinIO's quorum errors. The S3 server behind keeps its objects, as MinIO's drives would."""

    def __init__(self, target_url: str) -> None:
        self.target_port = int(target_url.rsplit(":", 1)[1])
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.down)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, mode: str) -> None:
        self.down()
        self.proc = subprocess.Popen([sys.executable, "-c", _SWITCH, str(self.port), str(self.target_port), mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":  # bounded: the process exits if it cannot bind
            raise RuntimeError(f"S3 switch did not start on port {self.port}")

    def up(self) -> None:
        self._run("forward")

    def quorum_lost(self) -> None:
        self._run("quorum")

    def down(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
