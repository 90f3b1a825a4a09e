"""Human-readable summary for ``gatecheck extract --format text``."""

from __future__ import annotations

from typing import TextIO

from extractors import Result
from extractors.model import Document

_BAR = 30


def progress(err: TextIO, done: int, total: int) -> None:
    filled = _BAR * done // total
    err.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{total}")
    err.flush()


def render(result: Result, out: TextIO) -> None:
    for doc in result.documents:
        _document(doc, out)
    for e in result.errors:
        out.write(f"\n✗ {e['file']}\n  error [{e['code']}]: {e['message']}\n  remedy: {e['remedy']}\n")
    ok, bad = len(result.documents), len(result.errors)
    out.write(f"\n{ok} extracted, {bad} with errors\n")


def _document(doc: Document, out: TextIO) -> None:
    d = doc.to_dict()
    where = f", {doc.pages} pages" if doc.pages else (f", {doc.slides} slides" if doc.slides is not None else "")
    group = f"  [group: {doc.group}]" if doc.group else ""
    out.write(f"\n✓ {doc.file} ({doc.format}{where}){group}\n")
    words = d["words"]
    out.write(f"  words ({words['mode']} rules): {words['total']}\n")
    parts = ", ".join(f"{k} {v}" for k, v in words["by_part"].items() if v)
    if parts:
        out.write(f"  by part: {parts}\n")
    kinds = ", ".join(f"{k} {v}" for k, v in words["by_section_kind"].items() if v)
    if kinds:
        out.write(f"  by section kind: {kinds}\n")
    for s in doc.sections:
        indent = "  " * s.level
        out.write(f"  {indent}§ {s.title[:70]} [{s.kind}] {s.words} words\n")
    for m in doc.media:
        dur = "unknown" if m.duration_s is None else f"{m.duration_s:.1f}s"
        out.write(f"  media: {m.name} ({m.kind}, {dur})\n")
    if doc.links:
        out.write(f"  links: {len(doc.links)}\n")
    if doc.scanned_pages:
        out.write(f"  scanned pages: {', '.join(map(str, doc.scanned_pages))}\n")
    for w in doc.warnings:
        out.write(f"  ! {w}\n")
