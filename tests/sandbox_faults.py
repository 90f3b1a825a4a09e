"""TEST-ONLY: extractors that misbehave on purpose, imported inside sandbox children.

``SandboxPool(setup="tests.sandbox_faults")`` makes each child import this module,
which replaces the plain-text extractor with one that obeys the first line of
the file (``FAULT hang`` ...). Other text is read as usual. Nothing imports this
module outside tests, and it only ever runs in a sandbox child.
"""

from __future__ import annotations

import os
import signal
import time
from typing import ClassVar

from extractors import base
from extractors.base import Context
from extractors.model import Document
from extractors.textfile import TextExtractor

MAGIC = "FAULT "


def _hang() -> None:
    time.sleep(3600)  # a parser stuck in a loop


def _allocate() -> None:
    hoard = []
    while True:  # a decompression or layout blow-up: ends in MemoryError under RLIMIT_AS
        hoard.append(bytearray(32 * 1024 * 1024))


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)  # what PyAV #2344 does to the interpreter
    time.sleep(10)


def _oom_killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's (or a cgroup's) OOM killer does
    time.sleep(10)


FAULTS = {"hang": _hang, "allocate": _allocate, "segfault": _segfault, "oom_killed": _oom_killed}


class FaultyTextExtractor:
    name: ClassVar[str] = "faulty-text"
    formats: ClassVar[frozenset[str]] = frozenset({"text"})

    def extract(self, ctx: Context, doc: Document) -> None:
        first = ctx.path.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        if first.startswith(MAGIC):
            FAULTS[first.removeprefix(MAGIC).strip()]()
        TextExtractor().extract(ctx, doc)


base.register(FaultyTextExtractor())
