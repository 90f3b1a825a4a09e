"""Plain-text/markdown evidence and image-only evidence.

E-portfolio exports are often markdown (the corpus's real DevOps portfolio
is); headings, tables, lists, links and images are kept with their line
numbers (reported as ``paragraph``). Images carry no text: they are listed so
a check can say "image-only evidence".
"""

from __future__ import annotations

import re
from typing import ClassVar

from .base import Context
from .errors import ErrorCode, ExtractionError
from .model import Block, BlockKind, Document, Image, Link, Location

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)([^*_]{1,100})\1:?\s*$")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_BARE_URL = re.compile(r"(?<![(\"'=])\bhttps?://[^\s<>\")\]]+")
_HTML_HREF = re.compile(r"<a\s[^>]*href=\"([^\"]+)\"[^>]*>(.*?)</a>", re.IGNORECASE)
_HTML_IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"", re.IGNORECASE)
_SHORTCODE = re.compile(r"\{\{[<%].*?[%>]\}\}")
_TAG = re.compile(r"<[^>]+>")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)")
_MAX_TEXT_BYTES = 50 * 1024 * 1024


class TextExtractor:
    name: ClassVar[str] = "text"
    formats: ClassVar[frozenset[str]] = frozenset({"text"})

    def extract(self, ctx: Context, doc: Document) -> None:
        if ctx.path.stat().st_size > _MAX_TEXT_BYTES:
            raise ExtractionError(ErrorCode.TOO_LARGE, "text file larger than 50 MiB")
        raw = ctx.path.read_bytes().decode("utf-8-sig", errors="replace")
        lines = raw.splitlines()
        start = _skip_front_matter(lines, doc)
        table = row = 0
        in_table = False
        in_code = False
        for n, line in enumerate(lines[start:], start=start + 1):
            if line.strip().startswith("```"):
                in_code = not in_code
                continue
            loc = Location(file=ctx.display_name, paragraph=n)
            self._links_and_images(line, loc, doc)
            if in_code:
                _add(doc, line, BlockKind.PARAGRAPH, loc)
                continue
            is_row = line.strip().startswith("|") or "<td" in line.lower()
            if is_row and not in_table:
                table, row = table + 1, 0
            in_table = is_row
            if is_row and not _TABLE_RULE.match(line):
                row += 1
            self._line(line, loc, (table, row) if is_row else None, doc)

    def _line(self, line: str, loc: Location, cell: tuple[int, int] | None, doc: Document) -> None:
        if cell is not None:
            if _TABLE_RULE.match(line):
                return
            table, row = cell
            cells = [c for c in re.split(r"(?<!\\)\||</td>", line) if _plain(c).strip()]
            for col, text in enumerate(cells, start=1):
                cell_loc = Location(file=loc.file, paragraph=loc.paragraph, table=table, row=row, col=col)
                _add(doc, _plain(text), BlockKind.TABLE_CELL, cell_loc)
            return
        m = _HEADING.match(line)
        if m:
            _add(doc, _plain(m.group(2)), BlockKind.HEADING, loc, level=len(m.group(1)), how="markdown")
            return
        m = _BOLD_LINE.match(line)
        if m:
            _add(doc, m.group(2).strip(), BlockKind.HEADING, loc, level=None, how="bold")
            return
        if _LIST.match(line):
            _add(doc, _plain(_LIST.sub("", line, count=1)), BlockKind.LIST_ITEM, loc)
            return
        _add(doc, _plain(line), BlockKind.PARAGRAPH, loc)

    def _links_and_images(self, line: str, loc: Location, doc: Document) -> None:
        for m in _MD_IMAGE.finditer(line):
            doc.images.append(Image("picture", m.group(2), 0, loc))
        for m in _HTML_IMG.finditer(line):
            doc.images.append(Image("picture", m.group(1), 0, loc))
        for m in _MD_LINK.finditer(line):
            doc.links.append(Link(m.group(2), _plain(m.group(1)), loc))
        for m in _HTML_HREF.finditer(line):
            doc.links.append(Link(m.group(1), _plain(m.group(2)), loc))
        stripped = _MD_LINK.sub("", _MD_IMAGE.sub("", _HTML_HREF.sub("", line)))
        for m in _BARE_URL.finditer(stripped):
            doc.links.append(Link(m.group(0).rstrip(".,;"), "", loc))


def _skip_front_matter(lines: list[str], doc: Document) -> int:
    """YAML front matter (Hugo/Jekyll) is metadata, not evidence text."""
    if not lines or lines[0].strip() != "---":
        return 0
    for i, line in enumerate(lines[1:40], start=1):
        if line.strip() == "---":
            for meta in lines[1:i]:
                key, _, value = meta.partition(":")
                if key.strip().lower() == "title":
                    doc.metadata["title"] = value.strip().strip("\"'")
            return i + 1
    return 0


def _plain(text: str) -> str:
    text = _SHORTCODE.sub(" ", text)
    text = _MD_IMAGE.sub(" ", text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _TAG.sub(" ", text)
    text = text.replace("&nbsp;", " ").replace("&amp;", "&")
    return _EMPHASIS.sub("", text).strip()


def _add(
    doc: Document, text: str, kind: BlockKind, loc: Location, level: int | None = None, how: str | None = None
) -> None:
    if text.strip():
        doc.blocks.append(Block(text=text, kind=kind, location=loc, level=level, detected_by=how))


class ImageExtractor:
    """Screenshots and photos: no text, but they are evidence and must be listed."""

    name: ClassVar[str] = "image"
    formats: ClassVar[frozenset[str]] = frozenset({"image"})

    def extract(self, ctx: Context, doc: Document) -> None:
        doc.images.append(Image("picture", ctx.display_name, 0, Location(file=ctx.display_name)))
        doc.metadata["image_format"] = ctx.detail
        doc.warn("image-only evidence: no text to read")
