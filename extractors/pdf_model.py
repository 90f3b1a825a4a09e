"""The records the PDF stages hand each other, and the text normaliser they share.

It exists so that no stage imports another stage just for its data:
``pdf_structure`` fills a ``Structure`` (page count, link rectangles, outline
entries), ``pdf_pages`` turns each page into a ``Page`` of ``Line`` objects, and
``pdf_layout`` marks roles on those lines; all of them clean text the same way
with ``clean_text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # category Cc except tab/newlines


# --- data -------------------------------------------------------------------


@dataclass(slots=True)
class Line:
    """One text line as pdfium orders it, with the geometry of its first glyph."""

    text: str
    bottom: float
    top: float
    size: float
    role: str = "body"  # body | hf | heading | heading_cont
    level: int | None = None
    span: int = 1  # heading: number of lines it covers

    @property
    def height(self) -> float:
        return max(self.top - self.bottom, 0.1)


@dataclass(slots=True)
class Page:
    number: int  # 1-based
    box: tuple[float, float, float, float]  # left, bottom, right, top
    lines: list[Line] = field(default_factory=list)
    words: int = 0
    image_cover: float = 0.0
    text_objects: int = 0
    invisible_text_objects: int = 0
    visible_glyph_objects: int = 0
    has_alnum: bool = False
    inserts: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # before line i: (level, title)
    links: list[tuple[str, str]] = field(default_factory=list)  # (url, text under the annotation)
    ocr: bool = False

    @property
    def height(self) -> float:
        return max(self.box[3] - self.box[1], 1.0)


@dataclass(frozen=True, slots=True)
class OutlineEntry:
    title: str
    level: int
    page: int | None  # 0-based
    top: float | None


@dataclass(slots=True)
class Structure:
    """What pypdf found before any text is read."""

    pages: int
    links: dict[int, list[tuple[str, tuple[float, float, float, float]]]] = field(default_factory=dict)
    outline: list[OutlineEntry] = field(default_factory=list)
    owner_password_only: bool = False


# --- text -------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Drop control characters and pdfium's soft-hyphen marker (U+FFFE), collapse whitespace.

    Deleting (not spacing) unmapped control codes keeps words whole: TeX fonts
    without ToUnicode give e.g. U+000C for the "fi" ligature inside a word.
    """
    if not text:
        return ""
    text = _CONTROL.sub("", text.replace("\ufffe", ""))
    return WS.sub(" ", text).strip()
