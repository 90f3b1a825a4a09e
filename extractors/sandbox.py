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

Each job's wall time and the child's peak RSS are kept (``SandboxPool.last_stats``,
``history``) so hostile inputs can be shown to stay bounded (benchmarks/bench_hostile.py).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import posixpath
import queue
import re
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from .errors import ErrorCode, ExtractionError
from .limits import DEFAULT_LIMITS, Limits, MiB
from .portfolio import Budget, Expansion, Result, extract_any, extract_or_expand, folder_files, set_group
from .wordcount import CountMode

#: A child that ran out of memory while sending its answer exits with this status.
_EXIT_NO_MEMORY = 86
#: A child still parsing this long after its deadline kills itself (SIGALRM's default action), even in a C loop:
#: the parent normally kills it first, but a parent killed by a hard time limit cannot.
_ALARM_GRACE_S = 5
#: Where ``extractors`` (and, in a checkout, ``tests``) can be imported from.
_IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)
#: The only names a child may report for expanded members (portfolio._expand generates them).
_MEMBER_FILE = re.compile(r"m\d{5,6}")
_Answer = Result | Expansion


@dataclass(frozen=True, slots=True)
class Job:
    """One input for a child. With ``expand_into`` a zip portfolio is expanded there, not read."""

    path: Path
    display: str
    mode: CountMode
    limits: Limits
    depth: int = 0
    expand_into: Path | None = None
    budget: int = 0  # bytes nested archives of this input may still expand to


@dataclass(frozen=True, slots=True)
class JobStats:
    """What one job cost, for benchmarks/bench_hostile.py and for tests that memory stayed flat.

    ``peak_rss_bytes`` is the child's high-water mark over its whole life: ``VmHWM`` from /proc, sent
    by the child with its answer or read by the parent just before it kills a child that overran
    its deadline. It is exactly this job's peak when the child ran only this job (``jobs_served ==
    1``, e.g. a pool with ``recycle_after=1``). A child that died on its own (signal, OOM) can only
    be measured by ``wait4``'s ``ru_maxrss``, which Linux carries over ``exec`` from the process that
    spawned it: then it is an upper bound, max(the child's peak, the parent's RSS at spawn).
    """

    display: str
    outcome: str  # "ok", "expanded" or the first error code
    wall_s: float
    peak_rss_bytes: int
    jobs_served: int


# -- the child --------------------------------------------------------------------------------------------------


def _child_main(jobs: Connection, answers: Connection, memory_bytes: int, setup: str | None) -> None:
    """Serve parse jobs until the parent closes the pipe (or kills us)."""
    _cap_memory(memory_bytes)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # as the CLI: repairs are warnings in the result, not noise
    if setup:  # TEST-ONLY: e.g. tests.sandbox_faults registers extractors that hang or crash
        importlib.import_module(setup)
    while True:
        try:
            job: Job = jobs.recv()
        except EOFError:
            return
        signal.alarm(job.limits.max_parse_seconds + _ALARM_GRACE_S)  # backstop if the parent died mid-job
        answer = _parse(job, memory_bytes)
        signal.alarm(0)
        try:
            answers.send((answer, peak_rss()))
        except MemoryError:
            os._exit(_EXIT_NO_MEMORY)


def peak_rss(pid: int | str = "self") -> int:
    """A process's peak RSS in bytes: /proc's VmHWM (this process image only), else 0 (gone or not Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if pid == "self":  # ru_maxrss may include the spawning parent's RSS (see JobStats); better than nothing
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return 0


def _cap_memory(memory_bytes: int) -> None:
    """Soft and hard RLIMIT_AS, so nothing in the child can raise it again."""
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _parse(job: Job, memory_bytes: int) -> _Answer:
    """``extract_any`` (or ``extract_or_expand``) with the two failures it lets through made typed."""
    try:
        if job.expand_into is None:
            return extract_any(job.path, job.display, job.mode, job.limits, job.depth)
        return extract_or_expand(job.path, job.display, job.mode, job.limits, job.depth, job.expand_into, job.budget)
    except MemoryError:
        return _failed(job.display, ErrorCode.TOO_LARGE, _memory_message(memory_bytes))
    except Exception as exc:
        return _failed(job.display, ErrorCode.INTERNAL, f"unexpected {type(exc).__name__} while reading")


# -- the parent -------------------------------------------------------------------------------------------------


def _failed(display: str, code: ErrorCode, message: str) -> Result:
    return Result(errors=[ExtractionError(code, message).to_dict(display)])


def _outcome(answer: _Answer) -> str:
    if answer.errors:
        return answer.errors[0]["code"]
    return "expanded" if isinstance(answer, Expansion) else "ok"


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
        self.peak_rss_bytes = 0  # see JobStats.peak_rss_bytes

    def parse(self, job: Job) -> _Answer:
        """Send one job and wait for its answer, at most ``max_parse_seconds``; never raises for the child's sake."""
        self.used += 1
        deadline = job.limits.max_parse_seconds
        try:
            self.jobs.send(job)
            if self.answers.poll(deadline):
                answer: _Answer
                answer, peak = self.answers.recv()
                self.peak_rss_bytes = max(self.peak_rss_bytes, int(peak))
                return answer
        except (EOFError, OSError):
            return self._died(job.display)
        self.peak_rss_bytes = max(self.peak_rss_bytes, peak_rss(self.process.pid))  # still alive: measure, then kill
        self.stop()
        return _failed(job.display, ErrorCode.TIMEOUT, f"took longer than {deadline} s to read")

    def _died(self, display: str) -> Result:
        """The child closed its pipe without answering: say why, from how it ended."""
        status = self._reap(5, rusage=True)
        self.stop()
        if status in (-signal.SIGKILL, _EXIT_NO_MEMORY):  # a SIGKILL we did not send: the OOM killer
            return _failed(display, ErrorCode.TOO_LARGE, _memory_message(self.memory_bytes))
        if status == -signal.SIGALRM:
            return _failed(display, ErrorCode.TIMEOUT, "took longer than its deadline to read")
        if status is not None and status < 0:
            name = signal.Signals(-status).name
            return _failed(display, ErrorCode.PARSER_CRASHED, f"the parser crashed ({name}) while reading the file")
        return _failed(display, ErrorCode.PARSER_CRASHED, f"the parser stopped unexpectedly (exit status {status})")

    def _reap(self, timeout: float | None, *, rusage: bool = False) -> int | None:
        """Wait up to ``timeout`` s (None: for ever) for the child to exit and keep its exit status.

        ``os.wait4`` rather than ``Popen.wait``: with ``rusage`` it also keeps the dead child's
        ``ru_maxrss``, the only measure left of a child that died on its own.
        """
        proc = self.process
        if proc.returncode is not None:
            return proc.returncode
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(proc.pid, 0 if until is None else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere; the status is lost
                proc.returncode = proc.returncode if proc.returncode is not None else -1
                return proc.returncode
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                if rusage:
                    self.peak_rss_bytes = max(self.peak_rss_bytes, usage.ru_maxrss * 1024)
                return proc.returncode
            if until is None or time.monotonic() >= until:
                return None
            time.sleep(0.01)

    @property
    def alive(self) -> bool:
        return self._reap(0) is None

    def stop(self) -> None:
        """Kill at once: a child holds nothing worth flushing, and a stuck one ignores anything gentler."""
        for conn in (self.jobs, self.answers):
            with contextlib.suppress(OSError):
                conn.close()
        if self._reap(0) is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self._reap(None)


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
        self.last_stats: JobStats | None = None
        self.history: deque[JobStats] = deque(maxlen=10_000)
        for _ in range(size):
            self._idle.put(None)  # started on first use, so an unused pool costs nothing

    def extract(self, path: Path, display: str, mode: CountMode = CountMode.WORD,
                limits: Limits = DEFAULT_LIMITS) -> Result:
        """Parse one file, or a whole zip portfolio as one job, in a child; the outcome is always a ``Result``."""
        answer = self.run(Job(Path(path), display, mode, limits))
        assert isinstance(answer, Result)  # only expansion jobs answer with an Expansion
        return answer

    def run(self, job: Job) -> _Answer:
        """Run one job in a borrowed child; its ``JobStats`` go to ``last_stats`` and ``history``."""
        child = self._idle.get()
        try:
            if child is None or not child.alive:
                child = self._replace(child)
            worker = child
            start = time.monotonic()
            answer = worker.parse(job)
            wall = time.monotonic() - start
            if answer.errors or worker.used >= self._recycle_after:
                child = self._replace(worker)  # reaps the old child (its peak RSS is final); the new one boots
            stats = JobStats(job.display, _outcome(answer), wall, worker.peak_rss_bytes, worker.used)
            self.last_stats = stats  # one caller's view: with concurrent callers read ``history`` instead
            self.history.append(stats)
            return answer
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
    """``extract_any`` with every file parsed in a sandboxed child, each under its own deadline.

    Folders are walked here, in the parent (listing files parses nothing). A zip portfolio is
    *expanded by a child* (opening it is parsing untrusted bytes) into a folder this process
    owns, and each member comes back here to be sent as a job of its own; nested zips the same
    way, down to ``Limits.max_zip_depth``. So one hanging or crashing member costs only itself.
    """
    pool = pool or default_pool(limits)
    if not path.is_dir():
        return _sandboxed(pool, path, display, mode, limits, 0, Budget(limits.max_zip_total_bytes))
    out = Result()
    for file, name, group in folder_files(path, display):
        sub = _sandboxed(pool, file, name, mode, limits, 0, Budget(limits.max_zip_total_bytes))
        set_group(sub, group)
        out.extend(sub)
    return out


def _sandboxed(pool: SandboxPool, path: Path, display: str, mode: CountMode, limits: Limits, depth: int,
               budget: Budget) -> Result:
    with tempfile.TemporaryDirectory(prefix="gc-zip-") as tmp:
        dest = Path(tmp)
        answer = pool.run(Job(path, display, mode, limits, depth, dest, budget.remaining))
        if isinstance(answer, Result):
            return answer
        out = Result()
        files = {m.file: _member_file(dest, m.file) for m in answer.members if m.file is not None}
        budget.spend(sum(f.stat().st_size for f in files.values() if f is not None))  # what is on disk, not a claim
        for member in answer.members:
            name = f"{display}/{member.name}"
            file = files.get(member.file) if member.file is not None else None
            if member.error is not None or file is None:
                out.errors.append(member.error or ExtractionError(
                    ErrorCode.INTERNAL, "the archive reader returned an invalid member").to_dict(name))
                continue
            sub = _sandboxed(pool, file, name, mode, limits, depth + 1, budget)
            set_group(sub, posixpath.dirname(member.name))
            out.extend(sub)
            file.unlink(missing_ok=True)
        return out


def _member_file(dest: Path, name: str) -> Path | None:
    """A member file the child says it wrote: a generated name, a regular file, directly in ``dest``."""
    if not _MEMBER_FILE.fullmatch(name):
        return None
    path = dest / name
    try:
        return path if stat.S_ISREG(path.lstat().st_mode) else None
    except OSError:
        return None


def _serve(argv: list[str]) -> None:
    """Child entry point: ``python -m extractors.sandbox JOB_FD ANSWER_FD MEMORY_BYTES [SETUP]``."""
    job_fd, answer_fd, memory_bytes, setup = [*argv, ""][:4]
    jobs = Connection(int(job_fd), writable=False)
    answers = Connection(int(answer_fd), readable=False)
    _child_main(jobs, answers, int(memory_bytes), setup or None)


if __name__ == "__main__":
    _serve(sys.argv[1:])
