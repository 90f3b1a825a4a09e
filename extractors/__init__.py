"""gatecheck extractors: one located document model for every submitted format.

Public entry points:
- ``extract_file(path)``: one document (raises ``ExtractionError``);
- ``extract_paths(paths)``: files, folders and zip portfolios; errors are collected, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import ErrorCode, ExtractionError
from .limits import DEFAULT_LIMITS, Limits
from .model import Document
from .pipeline import extract_file
from .portfolio import Result, extract_any
from .wordcount import CountMode, count_words

__all__ = [
    "CountMode",
    "Document",
    "ErrorCode",
    "ExtractionError",
    "Limits",
    "Result",
    "count_words",
    "extract_file",
    "extract_paths",
    "iter_extract",
]


def iter_extract(
    paths: Iterable[str | Path],
    *,
    mode: CountMode = CountMode.WORD,
    limits: Limits = DEFAULT_LIMITS,
    sandbox: bool = False,
) -> Iterator[tuple[str, Result]]:
    """Yield (input, result) per input path, so callers can show progress.

    ``sandbox=True`` parses each file in a child process under ``limits``' time and
    memory caps (extractors.sandbox): what a service needs for untrusted uploads.
    In-process (the default) is for the CLI on the user's own files.
    """
    if sandbox:
        from .sandbox import extract_any_sandboxed  # multiprocessing only when asked for

        for raw in paths:
            display = str(raw)
            yield display, extract_any_sandboxed(Path(raw), display, mode, limits)
        return
    for raw in paths:
        display = str(raw)
        yield display, extract_any(Path(raw), display, mode, limits)


def extract_paths(
    paths: Iterable[str | Path],
    *,
    mode: CountMode = CountMode.WORD,
    limits: Limits = DEFAULT_LIMITS,
    sandbox: bool = False,
) -> Result:
    out = Result()
    for _, result in iter_extract(paths, mode=mode, limits=limits, sandbox=sandbox):
        out.extend(result)
    return out
