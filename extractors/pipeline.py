"""Extraction pipeline: size check -> hash -> sniff -> extract -> sections.

This is the one place where anything an extractor failed to translate is
turned into a typed error, so no caller ever sees a traceback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import base, sections
from .errors import ErrorCode, ExtractionError
from .limits import DEFAULT_LIMITS, Limits
from .model import Document
from .sniff import Sniffed, sniff
from .wordcount import CountMode

_DOCUMENT_FORMATS = {"docx", "pptx", "pdf"}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract_file(
    path: Path,
    display_name: str | None = None,
    *,
    mode: CountMode = CountMode.WORD,
    limits: Limits = DEFAULT_LIMITS,
    sniffed: Sniffed | None = None,
    depth: int = 0,
) -> Document:
    """Extract one non-archive file; raises ``ExtractionError`` only."""
    name = display_name or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ExtractionError(ErrorCode.NOT_FOUND, f"cannot read {name}: {exc.strerror or type(exc).__name__}") from exc
    if size > limits.max_file_bytes:
        raise ExtractionError(ErrorCode.TOO_LARGE, f"file is {size} bytes (limit {limits.max_file_bytes})")
    found = sniffed or sniff(path, limits, name)
    if found.format in _DOCUMENT_FORMATS and size > limits.max_document_bytes:
        raise ExtractionError(ErrorCode.TOO_LARGE, f"document is {size} bytes (limit {limits.max_document_bytes})")
    extractor = base.for_format(found.format)
    if extractor is None:
        raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, f"no extractor for {found.format} content")
    doc = Document(file=name, format=found.format, sha256=sha256_of(path), size=size)
    ctx = base.Context(path=path, display_name=name, limits=limits, detail=found.detail, depth=depth)
    _run(extractor, ctx, doc)
    sections.build(doc, mode)
    return doc


def _run(extractor: base.Extractor, ctx: base.Context, doc: Document) -> None:
    try:
        extractor.extract(ctx, doc)
    except ExtractionError:
        raise
    except RecursionError as exc:
        raise ExtractionError(ErrorCode.CORRUPT, "structure is nested too deeply to read") from exc
    except MemoryError as exc:
        raise ExtractionError(ErrorCode.TOO_LARGE, "document needs more memory than allowed") from exc
    except Exception as exc:  # the safety net: a bug or an untranslated library error
        raise ExtractionError(
            ErrorCode.INTERNAL, f"unexpected {type(exc).__name__} while reading {ctx.detail or extractor.name}"
        ) from exc
