"""Parse untrusted files in disposable child processes.

Why: some failures cannot be caught in Python. A native crash in PyAV/FFmpeg or
pdfium kills the interpreter (PyAV #2344: SIGSEGV on a truncated MP4), a loop in
C code ignores signals, and a memory blow-up takes the whole worker with it. So
each input is parsed by a child process from a small pool, under an address-space
cap (RLIMIT_AS) and a wall-clock deadline. Whatever the child does, the caller
gets a ``Result``: a hang becomes ``timeout``, a memory blow-up ``too_large``, a
death on a signal ``parser_crashed``, and the next input gets a fresh child (the
Tika ``-spawnChild`` / Gotenberg restart model, reliability-anchors.md §3).

Why a fresh interpreter (``python -m extractors.sandbox``, i.e. spawn semantics)
and not multiprocessing: plain fork from a threaded parent (uvicorn, Celery) can
inherit held locks; multiprocessing's forkserver is cheaper per new child (about
15 ms against 90 ms here) but refuses to start inside a Celery prefork child
(a daemonic billiard process whose authkey it cannot pickle). A child is reused
for many documents, so the start cost is paid only when one is retired:

- after ``Limits.sandbox_recycle_after`` inputs (slow leaks in lxml/pdfium/FFmpeg);
- after any input that ended in an error (a parser that failed may have left the
  process in a bad state).

A retired child's replacement is started at once, so it boots while the caller
moves on. benchmarks/bench_sandbox.py measures the overhead.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from .errors import ErrorCode, ExtractionError
from .limits import DEFAULT_LIMITS, Limits, MiB
from .portfolio import Result, extract_any, folder_files, set_group
from .wordcount import CountMode

#: A child that ran out of memory while sending its answer exits with this status.
_EXIT_NO_MEMORY = 86
#: A child still parsing this long after its deadline kills itself (SIGALRM's default action), even in a C loop:
#: the parent normally kills it first, but a parent killed by a hard time limit cannot.
_ALARM_GRACE_S = 5
#: Where ``extractors`` (and, in a checkout, ``tests``) can be imported from.
_IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)
_Job = tuple[Path, str, CountMode, Limits]


# -- the child --------------------------------------------------------------------------------------------------


def _child_main(jobs: Connection, answers: Connection, memory_bytes: int, setup: str | None) -> None:
    """Serve parse jobs until the parent closes the pipe (or kills us)."""
    _cap_memory(memory_bytes)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # as the CLI: repairs are warnings in the result, not noise
    if setup:  # TEST-ONLY: e.g. tests.sandbox_faults registers extractors that hang or crash
        importlib.import_module(setup)
    while True:
        try:
            job: _Job = jobs.recv()
        except EOFError:
            return
        signal.alarm(job[3].max_parse_seconds + _ALARM_GRACE_S)  # backstop if the parent died mid-job
        answer = _parse(*job, memory_bytes)
        signal.alarm(0)
        try:
            answers.send(answer)
        except MemoryError:
            os._exit(_EXIT_NO_MEMORY)


def _cap_memory(memory_bytes: int) -> None:
    """Soft and hard RLIMIT_AS, so nothing in the child can raise it again."""
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _parse(path: Path, display: str, mode: CountMode, limits: Limits, memory_bytes: int) -> Result:
    """``extract_any`` with the two failures it lets through (outside an extractor) made typed."""
    try:
        return extract_any(path, display, mode, limits)
    except MemoryError:
        return _failed(display, ErrorCode.TOO_LARGE, _memory_message(memory_bytes))
    except Exception as exc:
        return _failed(display, ErrorCode.INTERNAL, f"unexpected {type(exc).__name__} while reading")


# -- the parent -------------------------------------------------------------------------------------------------


def _failed(display: str, code: ErrorCode, message: str) -> Result:
    return Result(errors=[ExtractionError(code, message).to_dict(display)])


def _memory_message(memory_bytes: int) -> str:
    return f"needs more than the {memory_bytes // MiB} MiB of memory allowed"


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable from wherever the child starts."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


class _Child:
    """One pooled child process and the parent's ends of its two pipes (jobs in, answers out)."""

    def __init__(self, memory_bytes: int, setup: str | None) -> None:
        job_r, job_w = os.pipe()
        answer_r, answer_w = os.pipe()
        cmd = [sys.executable, "-m", "extractors.sandbox", str(job_r), str(answer_w), str(memory_bytes), setup or ""]
        try:  # stdout to /dev/null: a chatty native library must never corrupt the CLI's JSON
            self.process = subprocess.Popen(cmd, pass_fds=(job_r, answer_w), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, env=_child_env())
        except BaseException:
            os.close(job_w)
            os.close(answer_r)
            raise
        finally:
            os.close(job_r)
            os.close(answer_w)
        self.jobs = Connection(job_w, readable=False)
        self.answers = Connection(answer_r, writable=False)
        self.memory_bytes = memory_bytes
        self.used = 0

    def parse(self, job: _Job) -> Result:
        """Send one job and wait for its answer, at most ``max_parse_seconds``; never raises for the child's sake."""
        _, display, _, limits = job
        self.used += 1
        try:
            self.jobs.send(job)
            if self.answers.poll(limits.max_parse_seconds):
                answer: Result = self.answers.recv()
                return answer
        except (EOFError, OSError):
            return self._died(display)
        self.stop()
        return _failed(display, ErrorCode.TIMEOUT, f"took longer than {limits.max_parse_seconds} s to read")

    def _died(self, display: str) -> Result:
        """The child closed its pipe without answering: say why, from how it ended."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        status = self.process.returncode
        self.stop()
        if status in (-signal.SIGKILL, _EXIT_NO_MEMORY):  # a SIGKILL we did not send: the OOM killer
            return _failed(display, ErrorCode.TOO_LARGE, _memory_message(self.memory_bytes))
        if status == -signal.SIGALRM:
            return _failed(display, ErrorCode.TIMEOUT, "took longer than its deadline to read")
        if status is not None and status < 0:
            name = signal.Signals(-status).name
            return _failed(display, ErrorCode.PARSER_CRASHED, f"the parser crashed ({name}) while reading the file")
        return _failed(display, ErrorCode.PARSER_CRASHED, f"the parser stopped unexpectedly (exit status {status})")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill at once: a child holds nothing worth flushing, and a stuck one ignores anything gentler."""
        for conn in (self.jobs, self.answers):
            with contextlib.suppress(OSError):
                conn.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class SandboxPool:
    """A few children; each parse borrows one, so concurrent callers (threads) never share a child.

    ``setup`` names a module each child imports at start: TEST-ONLY, for fault-injecting extractors.
    """

    def __init__(self, *, size: int = 1, memory_bytes: int = DEFAULT_LIMITS.max_parse_memory_bytes,
                 recycle_after: int = DEFAULT_LIMITS.sandbox_recycle_after, setup: str | None = None) -> None:
        self._memory_bytes = memory_bytes
        self._recycle_after = max(1, recycle_after)
        self._setup = setup
        self._idle: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        for _ in range(size):
            self._idle.put(None)  # started on first use, so an unused pool costs nothing

    def extract(self, path: Path, display: str, mode: CountMode = CountMode.WORD,
                limits: Limits = DEFAULT_LIMITS) -> Result:
        """Parse one file or zip portfolio in a child; the outcome is always a ``Result``."""
        child = self._idle.get()
        try:
            if child is None or not child.alive:
                child = self._replace(child)
            result = child.parse((Path(path), display, mode, limits))
            if result.errors or child.used >= self._recycle_after:
                child = self._replace(child)  # the replacement boots while the caller moves on
            return result
        finally:
            self._idle.put(child)

    def _replace(self, old: _Child | None) -> _Child:
        child = _Child(self._memory_bytes, self._setup)
        with self._lock:
            if old is not None:
                old.stop()
                self._children.remove(old)
            self._children.append(child)
        return child

    def pids(self) -> list[int]:
        """Live children (for tests and the benchmark)."""
        with self._lock:
            return [c.process.pid for c in self._children if c.alive]

    def close(self) -> None:
        with self._lock:
            for child in self._children:
                child.stop()
            self._children.clear()


_pools: dict[tuple[int, int, int], SandboxPool] = {}
_pools_lock = threading.Lock()


def default_pool(limits: Limits = DEFAULT_LIMITS) -> SandboxPool:
    """This process's pool for these limits' memory cap and recycle count, created on first use.

    Keyed by process id too, so a forked Celery pool child never borrows its parent's children.
    """
    key = (os.getpid(), limits.max_parse_memory_bytes, limits.sandbox_recycle_after)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = SandboxPool(memory_bytes=limits.max_parse_memory_bytes, recycle_after=limits.sandbox_recycle_after)
            _pools[key] = pool
        return pool


@atexit.register
def _close_default_pools() -> None:
    """Children would exit on their own (EOF on the job pipe); this just reaps them."""
    for (pid, *_), pool in list(_pools.items()):
        if pid == os.getpid():
            pool.close()


def extract_any_sandboxed(path: Path, display: str, mode: CountMode = CountMode.WORD,
                          limits: Limits = DEFAULT_LIMITS, pool: SandboxPool | None = None) -> Result:
    """``extract_any`` with every file parsed in a sandboxed child.

    Folders are walked here, in the parent (listing files parses nothing), so each
    file gets its own deadline and a crash costs only that file. A zip portfolio is
    one job: opening it is parsing untrusted bytes.
    """
    pool = pool or default_pool(limits)
    if not path.is_dir():
        return pool.extract(path, display, mode, limits)
    out = Result()
    for file, name, group in folder_files(path, display):
        sub = pool.extract(file, name, mode, limits)
        set_group(sub, group)
        out.extend(sub)
    return out


def _serve(argv: list[str]) -> None:
    """Child entry point: ``python -m extractors.sandbox JOB_FD ANSWER_FD MEMORY_BYTES [SETUP]``."""
    job_fd, answer_fd, memory_bytes, setup = [*argv, ""][:4]
    jobs = Connection(int(job_fd), writable=False)
    answers = Connection(int(answer_fd), readable=False)
    _child_main(jobs, answers, int(memory_bytes), setup or None)


if __name__ == "__main__":
    _serve(sys.argv[1:])
