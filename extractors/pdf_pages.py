"""Stage 3 of PDF extraction: what pdfium sees on each page, and the scanned/OCR verdicts drawn from it.

It exists because pdfium is the only library that reads page content here:
text and its line breaks, each line's position and rendered font size, the
words under each link rectangle, and page-object statistics (image area,
invisible and unmappable text objects), all under one process-wide lock since
pdfium is not thread-safe. The statistics are only good for one thing, telling
scanned, OCR'd and non-extractable pages apart, so that classification lives
here beside them.
"""

from __future__ import annotations

import ctypes
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from .errors import ErrorCode, ExtractionError
from .model import Document
from .pdf_model import Line, Page, Structure, clean_text
from .pdf_preflight import MAX_PAGE_OBJECTS, MAX_XOBJECT_DEPTH
from .wordcount import count_words

# --- constants --------------------------------------------------------------

SCAN_IMAGE_COVER = 0.5  # share of the page area covered by images
SCAN_MAX_WORDS = 5  # "almost no text"
OCR_INVISIBLE_SHARE = 0.8  # share of text objects drawn invisibly (render mode 3)

_INVISIBLE_MODES = frozenset({3, 7})  # fill-nothing and clip-only text render modes

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# pdfium is not thread-safe; one lock serialises it within a process.
_PDFIUM_LOCK = threading.Lock()


# --- 3. text via pdfium -----------------------------------------------------


@dataclass(slots=True)
class _ObjStats:
    box: tuple[float, float, float, float]  # the page's visible box; image areas are clipped to it
    image_area: float = 0.0
    text_handles: list[Any] = field(default_factory=list)  # FPDF_PAGEOBJECTs, valid while the page is open
    invisible_text_objects: int = 0
    visible_glyph_objects: int = 0
    seen: int = 0


def read_text(path: Path, structure: Structure) -> list[Page]:
    """Page text and object statistics from pdfium, plus link texts from annotation rectangles."""
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            if exc.err_code in (pdfium_raw.FPDF_ERR_PASSWORD, pdfium_raw.FPDF_ERR_SECURITY):
                raise ExtractionError(ErrorCode.ENCRYPTED, "the PDF is protected with a password to open it") from exc
            raise
        try:
            if len(pdf) != structure.pages:
                raise ExtractionError(
                    ErrorCode.CORRUPT, f"the PDF page tree is inconsistent ({len(pdf)} vs {structure.pages} pages)"
                )
            return [_read_page(pdf, i, structure) for i in range(structure.pages)]
        finally:
            pdf.close()


def _read_page(pdf: pdfium.PdfDocument, index: int, structure: Structure) -> Page:
    page = pdf[index]
    try:
        info = Page(number=index + 1, box=tuple(page.get_bbox()))  # type: ignore[arg-type]
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
            info.lines = _lines(textpage, text)
            info.words = count_words(clean_text(text))
            info.has_alnum = any(ch.isalnum() for ch in text)
            info.links = [(url, _link_text(textpage, rect)) for url, rect in structure.links.get(info.number, [])]
        finally:
            textpage.close()
        stats = _object_stats(page, info.box)
        _apply_object_stats(info, stats)
        if info.image_cover >= SCAN_IMAGE_COVER or not info.has_alnum:  # only then do render modes matter
            _inspect_text_objects(stats)
            info.invisible_text_objects = stats.invisible_text_objects
            info.visible_glyph_objects = stats.visible_glyph_objects
        return info
    finally:
        page.close()


def _link_text(textpage: pdfium.PdfTextPage, rect: tuple[float, float, float, float]) -> str:
    """The words an assessor sees inside a link's rectangle."""
    left, bottom, right, top = rect
    return clean_text(textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top))


def _lines(textpage: pdfium.PdfTextPage, text: str) -> list[Line]:
    """Split pdfium's text at its line breaks; sample position and size on each line's first glyph."""
    lines: list[Line] = []
    n_chars = textpage.count_chars()
    wide = _utf16_offsets(text)
    pos = 0
    for m in _LINE_BREAK.finditer(text + "\n"):
        raw_line = text[pos : m.start()]
        first = len(raw_line) - len(raw_line.lstrip())
        cleaned = clean_text(raw_line)
        if cleaned:
            char = _char_index(textpage, pos + first + wide(pos + first), n_chars)
            _left, bottom, _right, top = textpage.get_charbox(char, loose=True)
            size = _font_size(textpage, char)
            lines.append(Line(text=cleaned, bottom=bottom, top=top, size=size if size > 0 else top - bottom))
        pos = m.end()
    return lines


def _font_size(textpage: pdfium.PdfTextPage, char: int) -> float:
    """Rendered size in points: the Tf size times the vertical scale of the text and page matrices.

    FPDFText_GetFontSize alone is the Tf operand, which is 1.0 in producers
    that scale glyphs through the text matrix (Acrobat PDFMaker, many others).
    """
    size = float(pdfium_raw.FPDFText_GetFontSize(textpage.raw, char))
    matrix = pdfium_raw.FS_MATRIX()
    if pdfium_raw.FPDFText_GetMatrix(textpage.raw, char, ctypes.byref(matrix)):
        size *= math.hypot(matrix.c, matrix.d)
    return size


def _utf16_offsets(text: str) -> Any:
    """pdfium counts UTF-16 units; returns f(i) = extra units before code point i (astral characters)."""
    astral = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF] if not text.isascii() else []
    if not astral:
        return lambda _i: 0
    return lambda i: sum(1 for a in astral if a < i)


def _char_index(textpage: pdfium.PdfTextPage, text_index: int, n_chars: int) -> int:
    char = pdfium_raw.FPDFText_GetCharIndexFromTextIndex(textpage.raw, text_index)
    if char < 0:
        char = text_index
    return min(max(char, 0), max(n_chars - 1, 0))


def _object_stats(page: pdfium.PdfPage, box: tuple[float, float, float, float]) -> _ObjStats:
    """Walk page objects (into form XObjects) for image area and text objects; nothing is decoded."""
    stats = _ObjStats(box=box)
    identity = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    count = pdfium_raw.FPDFPage_CountObjects(page.raw)
    objs = [pdfium_raw.FPDFPage_GetObject(page.raw, i) for i in range(min(count, MAX_PAGE_OBJECTS))]
    _walk_objects(objs, identity, stats, depth=0)
    return stats


def _walk_objects(objs: list[Any], matrix: tuple[float, ...], stats: _ObjStats, depth: int) -> None:
    for obj in objs:
        stats.seen += 1
        if stats.seen > MAX_PAGE_OBJECTS:
            return
        kind = pdfium_raw.FPDFPageObj_GetType(obj)
        if kind == pdfium_raw.FPDF_PAGEOBJ_IMAGE:
            stats.image_area += _area(_clip(_transform_rect(_bounds(obj), matrix), stats.box))
        elif kind == pdfium_raw.FPDF_PAGEOBJ_TEXT:
            stats.text_handles.append(obj)
        elif kind == pdfium_raw.FPDF_PAGEOBJ_FORM and depth < MAX_XOBJECT_DEPTH:
            inner = _compose(matrix, _matrix(obj))
            n = pdfium_raw.FPDFFormObj_CountObjects(obj)
            children = [pdfium_raw.FPDFFormObj_GetObject(obj, i) for i in range(min(max(n, 0), MAX_PAGE_OBJECTS))]
            _walk_objects(children, inner, stats, depth + 1)


def _inspect_text_objects(stats: _ObjStats) -> None:
    """Render modes (invisible OCR layers) and glyph extents (visible but unmappable text)."""
    for obj in stats.text_handles:
        if pdfium_raw.FPDFTextObj_GetTextRenderMode(obj) in _INVISIBLE_MODES:
            stats.invisible_text_objects += 1
            continue
        left, bottom, right, top = _bounds(obj)
        if right - left > 0.5 and top - bottom > 0.5:
            stats.visible_glyph_objects += 1


def _bounds(obj: Any) -> tuple[float, float, float, float]:
    vals = [ctypes.c_float() for _ in range(4)]
    ok = pdfium_raw.FPDFPageObj_GetBounds(obj, *(ctypes.byref(v) for v in vals))
    return (vals[0].value, vals[1].value, vals[2].value, vals[3].value) if ok else (0.0, 0.0, 0.0, 0.0)


def _matrix(obj: Any) -> tuple[float, ...]:
    m = pdfium_raw.FS_MATRIX()
    if not pdfium_raw.FPDFPageObj_GetMatrix(obj, ctypes.byref(m)):
        return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def _compose(outer: tuple[float, ...], inner: tuple[float, ...]) -> tuple[float, ...]:
    """Matrix taking form-space points to page space: first ``inner``, then ``outer``."""
    a1, b1, c1, d1, e1, f1 = inner
    a2, b2, c2, d2, e2, f2 = outer
    return (
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    )


def _transform_rect(rect: tuple[float, float, float, float], m: tuple[float, ...]) -> tuple[float, float, float, float]:
    left, bottom, right, top = rect
    a, b, c, d, e, f = m
    xs, ys = [], []
    for x, y in ((left, bottom), (left, top), (right, bottom), (right, top)):
        xs.append(a * x + c * y + e)
        ys.append(b * x + d * y + f)
    return min(xs), min(ys), max(xs), max(ys)


def _clip(rect: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> tuple[float, ...]:
    return max(rect[0], box[0]), max(rect[1], box[1]), min(rect[2], box[2]), min(rect[3], box[3])


def _area(rect: tuple[float, ...]) -> float:
    return max(rect[2] - rect[0], 0.0) * max(rect[3] - rect[1], 0.0)


def _apply_object_stats(info: Page, stats: _ObjStats) -> None:
    left, bottom, right, top = info.box
    page_area = max((right - left) * (top - bottom), 1.0)
    info.image_cover = min(stats.image_area / page_area, 1.0)
    info.text_objects = len(stats.text_handles)


# --- scanned, OCR'd and non-extractable pages -------------------------------


def classify_pages(pages: list[Page], doc: Document) -> None:
    """Scanned pages (image, almost no text), OCR'd scans (invisible text over an image), unmappable text."""
    ocr: list[int] = []
    unmappable: list[int] = []
    for page in pages:
        covered = page.image_cover >= SCAN_IMAGE_COVER
        invisible = page.text_objects > 0 and page.invisible_text_objects >= OCR_INVISIBLE_SHARE * page.text_objects
        if covered and page.words <= SCAN_MAX_WORDS:
            doc.scanned_pages.append(page.number)
        elif covered and invisible:
            doc.scanned_pages.append(page.number)
            page.ocr = True
            ocr.append(page.number)
        if page.visible_glyph_objects > 0 and not page.has_alnum:
            unmappable.append(page.number)
    if ocr:
        doc.metadata["ocr_pages"] = ocr
        what = "is a scanned image" if len(ocr) == 1 else "are scanned images"
        doc.warn(f"{_pages_label(ocr)} {what} with an OCR text layer; the text may contain OCR errors")
    if unmappable:
        doc.metadata["non_extractable_pages"] = unmappable
        doc.warn(
            f"text on {_pages_label(unmappable)} is visible but not extractable (fonts without a Unicode mapping); "
            "its words are not counted"
        )


def _pages_label(numbers: list[int]) -> str:
    """'page 3' / 'pages 1-4, 7' for messages an assessor reads."""
    ranges: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(ranges)
