"""The extractor contract and its registry.

An extractor fills a ``Document`` with located blocks, links, media, images and
attachments for one sniffed format. It translates its libraries' exceptions
into ``ExtractionError`` itself; the registry's safety net only catches what
an extractor missed, so nothing reaches the caller as a traceback.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from .limits import Limits
from .model import Document


@dataclass(frozen=True, slots=True)
class Context:
    """What an extractor may need besides the file itself."""

    path: Path  # readable file on local disk (a temp copy for archive members)
    display_name: str  # what the user calls it: CLI path or archive member name
    limits: Limits
    detail: str = ""  # sniffer detail, e.g. container "mp4" or "slideshow"
    depth: int = 0  # archive nesting depth


@runtime_checkable
class Extractor(Protocol):
    name: ClassVar[str]
    formats: ClassVar[frozenset[str]]  # sniffed format ids handled

    def extract(self, ctx: Context, doc: Document) -> None: ...


_REGISTRY: dict[str, Extractor] = {}

# Built-ins, imported on first use so a docx-only run never loads PyAV or pdfium.
_BUILTIN: dict[str, tuple[str, str]] = {
    "docx": ("extractors.docx", "DocxExtractor"),
    "pptx": ("extractors.pptx", "PptxExtractor"),
    "pdf": ("extractors.pdf", "PdfExtractor"),
    "media": ("extractors.media", "MediaExtractor"),
    "text": ("extractors.textfile", "TextExtractor"),
    "image": ("extractors.textfile", "ImageExtractor"),
}


def register(extractor: Extractor) -> Extractor:
    for fmt in extractor.formats:
        _REGISTRY[fmt] = extractor
    return extractor


def for_format(fmt: str) -> Extractor | None:
    if fmt not in _REGISTRY and fmt in _BUILTIN:
        module, cls = _BUILTIN[fmt]
        register(getattr(importlib.import_module(module), cls)())
    return _REGISTRY.get(fmt)


def registered() -> dict[str, Extractor]:
    """Every format's extractor, built-ins included (imports them all)."""
    for fmt in _BUILTIN:
        for_format(fmt)
    return dict(_REGISTRY)


def reset() -> None:
    """Test hook: forget every registration (built-ins load again on demand)."""
    _REGISTRY.clear()
