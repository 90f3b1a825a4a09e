"""PDF extraction: located text blocks, headings, scanned pages, links, attachments.

Stack (measured in benchmarks/bench_pdf_text.py): pypdfium2 reads page text, line
positions and font sizes; over the 24-file corpus it takes 0.06x the time of
pypdf's ``extract_text`` and 0.4x that of a ``pdftotext`` subprocess, with word
counts within a few percent of pdftotext's. pypdf reads structure only (page
tree, outline, annotations, embedded files, image dictionaries): it never
decodes a content stream or an image here, which keeps its known CPU/RAM bombs
out of reach.

Order of work, cheapest and most defensive first:

1. a raw byte preflight (empty file, ``%PDF-`` header, a ``startxref`` at the
   end that points at a cross-reference section, no loop in the ``/Prev`` chain);
2. pypdf under explicit limits: encryption, dynamic XFA, page count, page size,
   declared image sizes (so a decompression bomb is refused before anything
   renders or decodes it), links, attachments, outline;
3. pdfium: text per page, object statistics for scanned/OCR detection;
4. layout: running headers/footers, heading placement, paragraphs, blocks.

Every library exception is translated here, by class, into an
``ExtractionError``; nothing matches on library messages.
"""

from __future__ import annotations

import ctypes
import math
import mimetypes
import mmap
import re
import statistics
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from pypdf.errors import (
    DependencyError,
    EmptyFileError,
    FileNotDecryptedError,
    LimitReachedError,
    PyPdfError,
)
from pypdf.generic import ArrayObject, BooleanObject, DictionaryObject, IndirectObject, NullObject, StreamObject

from .base import Context
from .errors import ErrorCode, ExtractionError
from .limits import Limits, MiB
from .model import Attachment, Block, BlockKind, Document, Link, Location
from .wordcount import count_words

# --- limits -----------------------------------------------------------------

# PDF 1.7 (ISO 32000-1) Annex C.2: page dimensions are at most 14 400 default
# user-space units (200 in) once /UserUnit is applied.
MAX_PAGE_UNITS = 14_400
# Pillow refuses images above 2 x 89 478 485 pixels as decompression bombs; we
# refuse the same declared size without decoding. A 600-dpi A3 scan is 70 Mpx;
# the corpus's 30-inch 300-dpi page (ocrmypdf multipage p.2) is 81 Mpx.
MAX_IMAGE_PIXELS = 178_956_970
MAX_IMAGE_DECODED_BYTES = 1024 * MiB  # 16-bit CMYK and the like, below the pixel cap
MAX_XREF_SECTIONS = 1_000  # /Prev hops followed by the preflight
MAX_ANNOTS_PER_PAGE = 5_000
MAX_XOBJECT_DEPTH = 8
MAX_XOBJECTS_CHECKED = 50_000
MAX_NAME_TREE_NODES = 10_000
MAX_OUTLINE_NODES = 10_000  # as pypdf's outline_maximum_entries below
MAX_DECODED_ATTACHMENTS = 16  # attachments whose size is found by decoding (75 MB cap each)
MAX_PAGE_OBJECTS = 200_000  # pdfium page objects inspected per page
HEADER_SEARCH_BYTES = 1_024  # Acrobat accepts junk before %PDF- within the first KiB
TAIL_SEARCH_BYTES = 64 * 1024
TRAILER_WINDOW_BYTES = 64 * 1024

# pypdf's resource limits, set explicitly (not left to library defaults) so an
# upgrade cannot silently loosen them. Names are pypdf 7.1 Configuration fields.
PYPDF_CONFIGURATION: dict[str, Any] = {
    "jbig2dec_binary": None,  # never shell out to jbig2dec
    "maximum_declared_stream_length": 75_000_000,
    "array_based_stream_maximum_output_length": 75_000_000,
    "zlib_maximum_output_length": 75_000_000,
    "zlib_maximum_recovery_input_length": 5_000_000,
    "lzw_maximum_output_length": 75_000_000,
    "run_length_maximum_output_length": 75_000_000,
    "jbig2_maximum_output_length": 75_000_000,
    "brotli_maximum_output_length": 75_000_000,
    "image_maximum_buffer_size": 75_000_000,
    "xmp_maximum_input_length": 5_000_000,
    "stream_parsing_work_maximum_count": 2_000_000,
    "outline_maximum_entries": 10_000,
    "outline_maximum_depth": 32,
    "page_tree_maximum_depth": 100,
    "page_tree_maximum_entries": 100_000,
    "named_destinations_maximum_entries": 100_000,
    "named_destinations_maximum_depth": 100,
    "disable_legacy_handling": True,
}
ROOT_OBJECT_RECOVERY_LIMIT = 10_000
# pypdf scans the whole file for each object missing from the xref (see _BoundedReader): allow
# 512 MiB of such scanning per file, and at least 4 scans (the corpus needs at most 1).
OBJECT_SEARCH_BUDGET_BYTES = 512 * MiB
MIN_OBJECT_SEARCHES = 4
XREF_STREAM_MAXIMUM_ENTRIES = 2_000_000

# --- layout heuristics ------------------------------------------------------

SCAN_IMAGE_COVER = 0.5  # share of the page area covered by images
SCAN_MAX_WORDS = 5  # "almost no text"
OCR_INVISIBLE_SHARE = 0.8  # share of text objects drawn invisibly (render mode 3)
HEADING_SIZE_RATIO = 1.15  # font size vs the body's median
HEADING_MAX_WORDS = 12
HEADING_MAX_LINES = 3
TITLE_MAX_LINES = 8  # a long bookmark may quote a whole paragraph opening
HEADING_MAX_LEVELS = 3
PARA_GAP_RATIO = 1.3  # line advance vs the page's median advance
SIZE_CHANGE_RATIO = 1.15
HF_BAND = 0.12  # top/bottom share of the page searched for running headers/footers
HF_LINES_PER_BAND = 3
HF_MIN_SHARE = 0.5
HF_RUN_PAGES = 5

_INVISIBLE_MODES = frozenset({3, 7})  # fill-nothing and clip-only text render modes
# "12", "- 12 -", "Page 3 of 10", "3/10", "iv" (lower-case roman only: "C" or "X" alone is more
# likely a figure label than a page number).
_PAGE_NUMBER = re.compile(
    r"^[\s\-–—(\[]*(?:(?i:page|p\.|seite|pág\.?|pagina)\s*)?(?:\d{1,4}|[ivxlc]{1,7})"
    r"(?:\s*(?i:/|of|von|de|sur)\s*\d{1,4})?[\s\-–—)\]]*$"
)
_DIGITS = re.compile(r"\d+")
_EDGE_NUMBER = re.compile(r"^(?:page\s+)?#(?:\s|$)|(?:^|\s)(?:page\s+)?#$")
_WS = re.compile(r"\s+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # category Cc except tab/newlines
_STARTXREF = re.compile(rb"startxref\s*(\d{1,20})")
_PREV = re.compile(rb"/Prev\s+(\d{1,20})")
_XREF_START = re.compile(rb"\s*(?:xref|\d{1,10}\s+\d{1,5}\s+obj)")

# pdfium is not thread-safe; one lock serialises it within a process.
_PDFIUM_LOCK = threading.Lock()

# Exceptions that mean "this file is broken", whatever library raised them.
_BROKEN = (
    PyPdfError,
    pdfium.PdfiumError,
    RecursionError,
    ValueError,  # includes UnicodeDecodeError
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    ArithmeticError,  # ZeroDivisionError, OverflowError
    EOFError,
    struct.error,
    zlib.error,
)


# --- data -------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
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
class _Page:
    number: int  # 1-based
    box: tuple[float, float, float, float]  # left, bottom, right, top
    lines: list[_Line] = field(default_factory=list)
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
class _OutlineEntry:
    title: str
    level: int
    page: int | None  # 0-based
    top: float | None


@dataclass(slots=True)
class _Structure:
    """What pypdf found before any text is read."""

    pages: int
    links: dict[int, list[tuple[str, tuple[float, float, float, float]]]] = field(default_factory=dict)
    outline: list[_OutlineEntry] = field(default_factory=list)
    owner_password_only: bool = False


@dataclass(slots=True)
class _ObjStats:
    box: tuple[float, float, float, float]  # the page's visible box; image areas are clipped to it
    image_area: float = 0.0
    text_handles: list[Any] = field(default_factory=list)  # FPDF_PAGEOBJECTs, valid while the page is open
    invisible_text_objects: int = 0
    visible_glyph_objects: int = 0
    seen: int = 0


# --- public -----------------------------------------------------------------


class PdfExtractor:
    """Fills a Document from a PDF; raises ExtractionError for anything it cannot read."""

    name: ClassVar[str] = "pdf"
    formats: ClassVar[frozenset[str]] = frozenset({"pdf"})

    def extract(self, ctx: Context, doc: Document) -> None:
        with _translate_errors(), pypdf.apply_configuration(**PYPDF_CONFIGURATION):
            _preflight(ctx.path, ctx.limits)
            structure = _read_structure(ctx, doc)
            pages = _read_text(ctx.path, structure)
        _build_document(ctx.display_name, doc, structure, pages)


@contextmanager
def _translate_errors() -> Iterator[None]:
    """The one place library exceptions become typed errors (by class, never by message)."""
    try:
        yield
    except ExtractionError:
        raise
    except FileNotFoundError as exc:
        raise ExtractionError(ErrorCode.NOT_FOUND, f"file not found: {exc.filename}") from exc
    except EmptyFileError as exc:
        raise ExtractionError(ErrorCode.EMPTY, "the PDF file is empty") from exc
    except FileNotDecryptedError as exc:
        raise ExtractionError(ErrorCode.ENCRYPTED, "the PDF needs a password to open") from exc
    except LimitReachedError as exc:
        raise ExtractionError(ErrorCode.TOO_LARGE, "the PDF exceeds a safety limit while being read") from exc
    except MemoryError as exc:
        raise ExtractionError(ErrorCode.TOO_LARGE, "the PDF needs more memory than allowed") from exc
    except NotImplementedError as exc:  # pypdf: a filter or encryption variant it does not implement
        raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "the PDF uses a feature that cannot be read") from exc
    except _BROKEN as exc:
        raise ExtractionError(
            ErrorCode.CORRUPT, f"the PDF is damaged and cannot be read ({type(exc).__name__})"
        ) from exc
    except OSError as exc:
        raise ExtractionError(
            ErrorCode.INTERNAL, f"the PDF could not be read from disk ({type(exc).__name__})"
        ) from exc


# --- 1. raw preflight -------------------------------------------------------


def _preflight(path: Path, limits: Limits) -> None:
    """Reject what needs no parser to reject: emptiness, size, no header, truncation, xref loops.

    pypdf and pdfium both "repair" truncated files and /Prev loops silently;
    a truncated upload may be missing pages, so it is refused here with a
    remedy (re-save and upload again) rather than half-read.
    """
    size = path.stat().st_size
    if size == 0:
        raise ExtractionError(ErrorCode.EMPTY, "the PDF file is empty (0 bytes)")
    if size > limits.max_document_bytes:
        raise ExtractionError(
            ErrorCode.TOO_LARGE, f"the PDF is {size / MiB:.0f} MiB; the limit is {limits.max_document_bytes // MiB} MiB"
        )
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header = data.find(b"%PDF-", 0, HEADER_SEARCH_BYTES)
        if header < 0:
            raise ExtractionError(ErrorCode.CORRUPT, "not a PDF: there is no %PDF- header")
        startxref = _last_startxref(data)
        if startxref is None:
            raise ExtractionError(
                ErrorCode.CORRUPT, "the PDF is truncated or damaged: it has no cross-reference pointer at its end"
            )
        startxref = _xref_section_at(data, startxref, header)
        if startxref is None:
            raise ExtractionError(
                ErrorCode.CORRUPT, "the PDF is damaged: its cross-reference pointer does not point at a cross-reference"
            )
        if _xref_chain_loops(data, startxref):
            raise ExtractionError(ErrorCode.CORRUPT, "the PDF is damaged: its cross-reference sections form a loop")


def _last_startxref(data: mmap.mmap) -> int | None:
    """Offset named by the last ``startxref`` in the file's tail, or None when missing."""
    tail_start = max(0, len(data) - TAIL_SEARCH_BYTES)
    pos = data.rfind(b"startxref", tail_start)
    if pos < 0:
        return None
    m = _STARTXREF.match(data[pos : pos + 64])
    return int(m.group(1)) if m else None


def _xref_section_at(data: mmap.mmap, offset: int, header: int) -> int | None:
    """``offset`` (or, with junk before the header, ``offset + header``) if an xref table or stream starts there.

    Readers silently rebuild a file whose pointer misses; such a file has been
    damaged after it was written (a bad edit or concatenation), so it is
    refused with the "save it again" remedy rather than half-trusted.
    """
    for candidate in dict.fromkeys((offset, offset + header)):
        if 0 <= candidate < len(data) and _XREF_START.match(data, candidate):
            return candidate
    return None


def _xref_chain_loops(data: mmap.mmap, offset: int) -> bool:
    """Follow /Prev from the last xref section; True if a section is reached twice.

    Offsets that point nowhere are left to the libraries' reconstruction; only
    a definite cycle (CVE-2026-27628 shape) is reported.
    """
    seen: set[int] = set()
    current: int | None = offset
    while current is not None and len(seen) < MAX_XREF_SECTIONS:
        if current in seen:
            return True
        if not 0 <= current < len(data):
            return False
        seen.add(current)
        current = _prev_offset(data, current)
    return False


def _prev_offset(data: mmap.mmap, offset: int) -> int | None:
    """The /Prev of the xref table (its trailer) or xref stream (its dictionary) at ``offset``."""
    window_end = min(len(data), offset + TRAILER_WINDOW_BYTES)
    head = data[offset : offset + 16].lstrip()
    if head.startswith(b"xref"):
        start = data.find(b"trailer", offset, len(data))
        if start < 0:
            return None
        end = data.find(b"startxref", start, min(len(data), start + TRAILER_WINDOW_BYTES))
        region = data[start : end if end > 0 else min(len(data), start + TRAILER_WINDOW_BYTES)]
    else:
        end = data.find(b"stream", offset, window_end)
        region = data[offset : end if end > 0 else window_end]
    m = _PREV.search(region)
    return int(m.group(1)) if m else None


# --- 2. structure via pypdf -------------------------------------------------


def _read_structure(ctx: Context, doc: Document) -> _Structure:
    """Everything pypdf is needed for; refuses encrypted, XFA, oversized and bomb files."""
    reader, owner_only = _open_reader(ctx.path)
    _refuse_if_exhausted(reader)
    catalog = _catalog(reader)
    _refuse_dynamic_xfa(catalog)
    n_pages = _count_pages(reader, catalog, ctx.limits)
    _refuse_if_exhausted(reader)
    structure = _Structure(pages=n_pages, owner_password_only=owner_only)
    checked: set[int] = set()
    for index in range(n_pages):
        page = reader.pages[index]
        _check_page_size(page, index + 1)
        _check_images(page.get("/Resources"), checked, depth=0)
        with _optional(doc, f"links and attachments on page {index + 1}"):
            _read_annotations(page, index + 1, ctx.display_name, structure, doc)
    with _optional(doc, "the PDF's embedded files"):
        _read_embedded_files(catalog, ctx.display_name, doc)
    with _optional(doc, "the PDF's bookmarks (outline)"):
        structure.outline = _read_outline(reader, catalog, doc)
    _refuse_if_exhausted(reader)
    return structure


@contextmanager
def _optional(doc: Document, what: str) -> Iterator[None]:
    """Links, attachments and bookmarks are extras: damage there is a warning, never a refusal."""
    try:
        yield
    except _BROKEN:
        doc.warn(f"{what} could not be read and were skipped")


class _BoundedReader(pypdf.PdfReader):
    """A PdfReader that stops searching the whole file for objects its cross-reference table lacks.

    pypdf finds each such object with a regex over a copy of the entire file.
    A file whose offsets were shifted (bytes inserted, line endings converted)
    lacks most of them: a fuzzed 1.8 MB corpus file cost 1 709 scans and 20 s,
    and the cost grows with references x size. After ``search_limit`` scans
    the rest resolve to null and ``exhausted`` is set; the caller then refuses
    the file as damaged. (pypdf catches broad exceptions while parsing, so a
    flag, not an exception, carries the verdict out.)
    """

    def __init__(self, path: Path, search_limit: int, **kwargs: Any) -> None:
        self._searches_left = search_limit
        self.exhausted = False
        super().__init__(path, **kwargs)

    def get_object(self, indirect_reference: int | IndirectObject) -> Any:
        ref = (
            indirect_reference
            if isinstance(indirect_reference, IndirectObject)
            else IndirectObject(indirect_reference, 0, self)
        )
        if self._needs_file_search(ref):
            if self._searches_left <= 0:
                self.exhausted = True
                return None
            self._searches_left -= 1
        return super().get_object(indirect_reference)

    def _needs_file_search(self, ref: IndirectObject) -> bool:
        if (ref.generation, ref.idnum) in self.resolved_objects:
            return False
        if ref.generation == 0 and ref.idnum in self.xref_objStm:
            return False
        return ref.idnum not in self.xref.get(ref.generation, {})


def _refuse_if_exhausted(reader: pypdf.PdfReader) -> None:
    if isinstance(reader, _BoundedReader) and reader.exhausted:
        raise ExtractionError(
            ErrorCode.CORRUPT, "the PDF is damaged: many objects are missing from its cross-reference table"
        )


def _open_reader(path: Path) -> tuple[pypdf.PdfReader, bool]:
    """Open with explicit limits; an owner-password-only file is read with the empty user password."""
    search_limit = max(MIN_OBJECT_SEARCHES, OBJECT_SEARCH_BUDGET_BYTES // max(path.stat().st_size, 1))
    try:
        reader = _BoundedReader(
            path,
            search_limit,
            strict=False,
            root_object_recovery_limit=ROOT_OBJECT_RECOVERY_LIMIT,
            xref_stream_maximum_entries=XREF_STREAM_MAXIMUM_ENTRIES,
        )
    except LimitReachedError as exc:  # at open time a limit means hostile structure, not a big file
        raise ExtractionError(ErrorCode.CORRUPT, "the PDF structure is malformed (nesting or loops)") from exc
    except (DependencyError, NotImplementedError) as exc:
        # pypdf tries the empty password while opening: AES needs the 'cryptography' package, and
        # NotImplementedError here only ever means an unknown security handler (DRM) or /V.
        raise ExtractionError(ErrorCode.ENCRYPTED, "the PDF is protected in a way that cannot be opened here") from exc
    if not reader.is_encrypted:
        return reader, False
    try:
        result = reader.decrypt("")
    except (DependencyError, NotImplementedError) as exc:  # AES without 'cryptography'; an unknown crypt filter
        raise ExtractionError(ErrorCode.ENCRYPTED, "the PDF is protected in a way that cannot be opened here") from exc
    if result == pypdf.PasswordType.NOT_DECRYPTED:
        raise ExtractionError(ErrorCode.ENCRYPTED, "the PDF is protected with a password to open it")
    return reader, True


def _catalog(reader: pypdf.PdfReader) -> DictionaryObject:
    root = _resolve(reader.trailer.get("/Root"))
    if not isinstance(root, DictionaryObject):
        raise ExtractionError(ErrorCode.CORRUPT, "the PDF has no document catalog")
    return root


def _refuse_dynamic_xfa(catalog: DictionaryObject) -> None:
    """Dynamic XFA (LiveCycle) forms carry their content as XML; the PDF pages are placeholders."""
    if _is_true(catalog.get("/NeedsRendering")):
        raise ExtractionError(
            ErrorCode.UNSUPPORTED_FORMAT,
            "dynamic XFA form: print it to PDF",
            remedy="Open it in Adobe Acrobat or Reader, print it to a new PDF, and upload that.",
        )


def _count_pages(reader: pypdf.PdfReader, catalog: DictionaryObject, limits: Limits) -> int:
    """Page count, refusing early on the declared /Count so a huge tree is never flattened."""
    declared = _resolve(_resolve(catalog.get("/Pages"), {}).get("/Count"))
    if isinstance(declared, int) and declared > limits.max_pdf_pages:
        raise ExtractionError(
            ErrorCode.TOO_LARGE, f"the PDF declares {declared} pages; the limit is {limits.max_pdf_pages}"
        )
    try:
        n = len(reader.pages)
    except (PyPdfError, RecursionError) as exc:  # includes pypdf's depth/size limits on the tree
        raise ExtractionError(ErrorCode.CORRUPT, "the PDF page tree is malformed (too deep or looping)") from exc
    if n > limits.max_pdf_pages:
        raise ExtractionError(ErrorCode.TOO_LARGE, f"the PDF has {n} pages; the limit is {limits.max_pdf_pages}")
    if n == 0:
        raise ExtractionError(ErrorCode.EMPTY, "the PDF has no pages")
    return n


def _check_page_size(page: pypdf.PageObject, number: int) -> None:
    """Refuse pages beyond the spec's 14 400-unit limit (a render-memory bomb)."""
    box = _number_list(page.get("/MediaBox"))
    if len(box) != 4:
        return
    unit = _resolve(page.get("/UserUnit"))
    scale = float(unit) if isinstance(unit, int | float) and 0 < unit < 1e6 else 1.0
    width, height = abs(box[2] - box[0]) * scale, abs(box[3] - box[1]) * scale
    if max(width, height) > MAX_PAGE_UNITS:
        raise ExtractionError(
            ErrorCode.TOO_LARGE,
            f"page {number} is {width:.0f} x {height:.0f} units; PDF allows at most {MAX_PAGE_UNITS}",
        )


def _check_images(resources: Any, checked: set[int], depth: int) -> None:
    """Refuse images whose declared size would be a decompression bomb, without decoding them."""
    resources = _resolve(resources)
    if not isinstance(resources, DictionaryObject) or depth > MAX_XOBJECT_DEPTH:
        return
    xobjects = _resolve(resources.get("/XObject"))
    if not isinstance(xobjects, DictionaryObject):
        return
    for ref in list(xobjects.values())[:MAX_XOBJECTS_CHECKED]:
        key = ref.idnum if isinstance(ref, IndirectObject) else id(ref)
        if key in checked or len(checked) >= MAX_XOBJECTS_CHECKED:
            continue
        checked.add(key)
        try:
            xobj = _resolve(ref)
        except _BROKEN:  # unresolvable: nothing can decode it either
            continue
        if not isinstance(xobj, DictionaryObject):
            continue
        subtype = xobj.get("/Subtype")
        if subtype == "/Image":
            _check_image_dict(xobj)
            smask = _resolve(xobj.get("/SMask"))
            if isinstance(smask, DictionaryObject):
                _check_image_dict(smask)
        elif subtype == "/Form":
            _check_images(xobj.get("/Resources"), checked, depth + 1)


def _check_image_dict(image: DictionaryObject) -> None:
    width, height = _int(image.get("/Width")), _int(image.get("/Height"))
    pixels = width * height
    decoded = pixels * _image_components(image) * _image_bits(image) / 8
    if pixels > MAX_IMAGE_PIXELS or decoded > MAX_IMAGE_DECODED_BYTES:
        raise ExtractionError(
            ErrorCode.TOO_LARGE,
            f"the PDF holds a {width} x {height} image ({decoded / MiB:.0f} MiB decoded): a decompression bomb",
        )


_COMPONENTS = {
    "/DeviceGray": 1,
    "/CalGray": 1,
    "/G": 1,
    "/Indexed": 1,
    "/I": 1,
    "/Separation": 1,
    "/Pattern": 1,
    "/DeviceRGB": 3,
    "/CalRGB": 3,
    "/RGB": 3,
    "/Lab": 3,
    "/DeviceCMYK": 4,
    "/CMYK": 4,
}


def _image_components(image: DictionaryObject) -> int:
    """Colour components per pixel; unknown spaces count as 4 so the check errs on the safe side."""
    if _is_true(image.get("/ImageMask")):
        return 1
    space = _resolve(image.get("/ColorSpace"))
    if isinstance(space, ArrayObject) and space:
        family = _resolve(space[0])
        if family == "/ICCBased" and len(space) > 1:
            n = _int(_resolve(space[1]).get("/N")) if isinstance(_resolve(space[1]), DictionaryObject) else 0
            return n if 0 < n <= 32 else 4
        if family == "/DeviceN" and len(space) > 1:
            names = _resolve(space[1])
            return max(1, min(len(names), 32)) if isinstance(names, ArrayObject) else 4
        return _COMPONENTS.get(str(family), 4)
    return _COMPONENTS.get(str(space), 4)


def _image_bits(image: DictionaryObject) -> int:
    if _is_true(image.get("/ImageMask")):
        return 1
    bits = _int(image.get("/BitsPerComponent"))
    return bits if 0 < bits <= 32 else 8


def _read_annotations(page: pypdf.PageObject, number: int, display: str, structure: _Structure, doc: Document) -> None:
    """URI links (resolved to text later, with pdfium) and file-attachment annotations."""
    annots = _resolve(page.get("/Annots"))
    if not isinstance(annots, ArrayObject):
        return
    for ref in list(annots)[:MAX_ANNOTS_PER_PAGE]:
        annot = _resolve(ref)
        if not isinstance(annot, DictionaryObject):
            continue
        subtype = annot.get("/Subtype")
        if subtype == "/Link":
            link = _uri_link(annot)
            if link is not None:
                structure.links.setdefault(number, []).append(link)
        elif subtype == "/FileAttachment":
            location = Location(file=display, page=number)
            attachment = _attachment(_resolve(annot.get("/FS")), None, location, _may_decode(doc))
            if attachment is not None:
                doc.attachments.append(attachment)


def _uri_link(annot: DictionaryObject) -> tuple[str, tuple[float, float, float, float]] | None:
    action = _resolve(annot.get("/A"))
    if not isinstance(action, DictionaryObject) or action.get("/S") != "/URI":
        return None
    uri = _text(action.get("/URI"))
    rect = _number_list(annot.get("/Rect"))
    if not uri or len(rect) != 4:
        return None
    left, right = sorted((rect[0], rect[2]))
    bottom, top = sorted((rect[1], rect[3]))
    return uri, (left, bottom, right, top)


def _read_embedded_files(catalog: DictionaryObject, display: str, doc: Document) -> None:
    """Walk the /EmbeddedFiles name tree (bounded, cycle-safe); attachments are listed, never counted."""
    names = _resolve(catalog.get("/Names"))
    tree = _resolve(names.get("/EmbeddedFiles")) if isinstance(names, DictionaryObject) else None
    if not isinstance(tree, DictionaryObject):
        return
    stack: list[Any] = [tree]
    seen: set[int] = set()
    while stack and len(seen) < MAX_NAME_TREE_NODES:
        node = stack.pop()
        if isinstance(node, IndirectObject):
            if node.idnum in seen:
                continue
            seen.add(node.idnum)
        node = _resolve(node)
        if not isinstance(node, DictionaryObject):
            continue
        seen.add(id(node))
        pairs = _resolve(node.get("/Names"))
        if isinstance(pairs, ArrayObject):
            for key, spec in zip(pairs[0::2], pairs[1::2], strict=False):
                attachment = _attachment(_resolve(spec), _text(key), Location(file=display), _may_decode(doc))
                if attachment is not None:
                    doc.attachments.append(attachment)
        kids = _resolve(node.get("/Kids"))
        if isinstance(kids, ArrayObject):
            stack.extend(reversed(list(kids)))


def _attachment(spec: Any, fallback_name: str | None, location: Location, decode: bool) -> Attachment | None:
    """An Attachment from a file specification: name, MIME type (declared, else from the name), size.

    The size comes from /Params /Size or /DL when declared, from the stream
    itself when it is stored unfiltered, and otherwise by decoding it under
    pypdf's output cap, only while ``decode`` allows (a bounded number per file).
    """
    if not isinstance(spec, DictionaryObject):
        return None
    name = _clean_text(_text(spec.get("/UF")) or _text(spec.get("/F")) or fallback_name or "") or "attachment"
    files = _resolve(spec.get("/EF"))
    stream = _resolve(files.get("/F") or files.get("/UF")) if isinstance(files, DictionaryObject) else None
    content_type = mimetypes.guess_type(name)[0]
    size: int | None = None
    if isinstance(stream, StreamObject):
        subtype = _resolve(stream.get("/Subtype"))
        if isinstance(subtype, str) and len(subtype) > 1:
            content_type = subtype[1:]
        size = _embedded_size(stream, decode)
    return Attachment(name=name[:255], content_type=content_type, size=size, location=location)


def _embedded_size(stream: StreamObject, decode: bool) -> int | None:
    params = _resolve(stream.get("/Params"))
    for declared in (params.get("/Size") if isinstance(params, DictionaryObject) else None, stream.get("/DL")):
        value = _resolve(declared)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    if "/Filter" not in stream or decode:
        try:
            return len(stream.get_data())
        except (LimitReachedError, *_BROKEN):
            return None
    return None


def _may_decode(doc: Document) -> bool:
    return len(doc.attachments) < MAX_DECODED_ATTACHMENTS


def _read_outline(reader: pypdf.PdfReader, catalog: DictionaryObject, doc: Document) -> list[_OutlineEntry]:
    """Bookmarks as (title, level, page, top); a broken outline is a warning, never a failure."""
    entries = _flatten_outline(reader, reader.outline, level=1)
    entries = _inherit_child_pages(entries)
    usable = [e for e in entries if e.page is not None]
    if len(usable) < len(entries):
        doc.warn(f"{len(entries) - len(usable)} bookmark(s) point to no page and were ignored")
    if not entries and _has_outline_root(catalog):
        doc.warn("the PDF's bookmarks (outline) could not be read")
    elif _outline_has_cycle(catalog):
        doc.warn("the PDF's bookmarks (outline) loop back on themselves; bookmarks after the loop were ignored")
    return usable


def _flatten_outline(reader: pypdf.PdfReader, items: list[Any], level: int) -> list[_OutlineEntry]:
    out: list[_OutlineEntry] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten_outline(reader, item, level + 1))
            continue
        title = _clean_text(_text(getattr(item, "title", "")) or "")
        if not title:
            continue
        try:
            page = reader.get_destination_page_number(item)
        except _BROKEN:
            page = None
        top = getattr(item, "top", None)
        top_f = float(top) if isinstance(top, int | float) and not isinstance(top, bool) else None
        out.append(_OutlineEntry(title=title[:300], level=level, page=page, top=top_f))
    return out


def _inherit_child_pages(entries: list[_OutlineEntry]) -> list[_OutlineEntry]:
    """A container bookmark without a destination takes its first descendant's page (chapter folders)."""
    fixed = list(entries)
    for i, entry in enumerate(fixed):
        if entry.page is not None:
            continue
        for child in fixed[i + 1 :]:
            if child.level <= entry.level:
                break
            if child.page is not None:
                fixed[i] = _OutlineEntry(entry.title, entry.level, child.page, None)
                break
    return fixed


def _outline_has_cycle(catalog: DictionaryObject) -> bool:
    """True when /First or /Next links reach an outline item twice (pypdf stops there, silently)."""
    outlines = _resolve(catalog.get("/Outlines"))
    stack = [outlines.get("/First")] if isinstance(outlines, DictionaryObject) else []
    seen: set[int] = set()
    while stack and len(seen) < MAX_OUTLINE_NODES:
        ref = stack.pop()
        if not isinstance(ref, IndirectObject):
            continue
        if ref.idnum in seen:
            return True
        seen.add(ref.idnum)
        node = _resolve(ref)
        if isinstance(node, DictionaryObject):
            stack.extend(node.get(key) for key in ("/Next", "/First") if key in node)
    return False


def _has_outline_root(catalog: DictionaryObject) -> bool:
    outlines = _resolve(catalog.get("/Outlines"))
    return isinstance(outlines, DictionaryObject) and "/First" in outlines


# --- 3. text via pdfium -----------------------------------------------------


def _read_text(path: Path, structure: _Structure) -> list[_Page]:
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


def _read_page(pdf: pdfium.PdfDocument, index: int, structure: _Structure) -> _Page:
    page = pdf[index]
    try:
        info = _Page(number=index + 1, box=tuple(page.get_bbox()))  # type: ignore[arg-type]
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
            info.lines = _lines(textpage, text)
            info.words = count_words(_clean_text(text))
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
    return _clean_text(textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top))


def _lines(textpage: pdfium.PdfTextPage, text: str) -> list[_Line]:
    """Split pdfium's text at its line breaks; sample position and size on each line's first glyph."""
    lines: list[_Line] = []
    n_chars = textpage.count_chars()
    wide = _utf16_offsets(text)
    pos = 0
    for m in _LINE_BREAK.finditer(text + "\n"):
        raw_line = text[pos : m.start()]
        first = len(raw_line) - len(raw_line.lstrip())
        cleaned = _clean_text(raw_line)
        if cleaned:
            char = _char_index(textpage, pos + first + wide(pos + first), n_chars)
            _left, bottom, _right, top = textpage.get_charbox(char, loose=True)
            size = _font_size(textpage, char)
            lines.append(_Line(text=cleaned, bottom=bottom, top=top, size=size if size > 0 else top - bottom))
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


def _apply_object_stats(info: _Page, stats: _ObjStats) -> None:
    left, bottom, right, top = info.box
    page_area = max((right - left) * (top - bottom), 1.0)
    info.image_cover = min(stats.image_area / page_area, 1.0)
    info.text_objects = len(stats.text_handles)


# --- 4. layout and blocks ---------------------------------------------------


def _build_document(display: str, doc: Document, structure: _Structure, pages: list[_Page]) -> None:
    """Turn per-page lines into located blocks and page-level findings."""
    doc.pages = len(pages)
    if structure.owner_password_only:
        doc.warn("the PDF is encrypted with an owner password only (editing restrictions); it was read without one")
    _classify_pages(pages, doc)
    _mark_headers_footers(pages)
    source: str | None = None
    if _place_outline_headings(pages, structure.outline):
        source = "pdf_outline"
    elif _font_size_headings(pages):
        source = "font_size"
    if source is not None:
        doc.metadata["heading_source"] = source
    for page in pages:
        doc.blocks.extend(_page_blocks(page, display, source))
    for page in pages:
        for url, text in page.links:
            doc.links.append(Link(url=url, text=text, location=Location(file=display, page=page.number)))


def _classify_pages(pages: list[_Page], doc: Document) -> None:
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


def _mark_headers_footers(pages: list[_Page]) -> None:
    """Running headers/footers and page numbers become HEADER_FOOTER lines.

    Only the outermost lines of each page's top and bottom band are looked
    at. A line there is furniture when, digits normalised and a leading or
    trailing page number dropped, it has two letters or more (so table rows of
    dates are not caught) and recurs on >= half the pages with text, or on a
    run of HF_RUN_PAGES pages (the running head of one part of a long document;
    every other page counts as a run, as in books). Bare page numbers are the
    first number-only line from the edge, kept when its value follows the page
    order (a figure label near the margin does not).
    """
    chains = {page.number: (_edge_chain(page, top=True), _edge_chain(page, top=False)) for page in pages}
    repeated = _repeated_keys(pages, chains)
    numbers = _page_number_lines(pages, chains)
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                if (page.number, i) in numbers or _hf_key(page.lines[i].text) in repeated:
                    page.lines[i].role = "hf"


def _edge_chain(page: _Page, top: bool) -> list[int]:
    """Up to HF_LINES_PER_BAND line indexes inside the top (or bottom) band, nearest the edge first."""
    band = HF_BAND * page.height
    if top:
        order = sorted(range(len(page.lines)), key=lambda i: -page.lines[i].top)
        inside = [i for i in order if page.lines[i].top >= page.box[3] - band]
    else:
        order = sorted(range(len(page.lines)), key=lambda i: page.lines[i].bottom)
        inside = [i for i in order if page.lines[i].bottom <= page.box[1] + band]
    return inside[:HF_LINES_PER_BAND]


def _repeated_keys(pages: list[_Page], chains: dict[int, tuple[list[int], list[int]]]) -> set[str]:
    seen_on: dict[str, set[int]] = {}
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                key = _hf_key(page.lines[i].text)
                if sum(ch.isalpha() for ch in key) >= 2:
                    seen_on.setdefault(key, set()).add(page.number)
    threshold = max(2, math.ceil(HF_MIN_SHARE * sum(1 for page in pages if page.lines)))
    return {key for key, nums in seen_on.items() if len(nums) >= threshold or _longest_run(nums) >= HF_RUN_PAGES}


def _page_number_lines(pages: list[_Page], chains: dict[int, tuple[list[int], list[int]]]) -> set[tuple[int, int]]:
    """(page, line) of page numbers: per band the first number-only line whose offset from the page index recurs."""
    found: list[tuple[int, int, int | None]] = []  # page, line, value (None for roman numerals)
    for page in pages:
        for chain in chains[page.number]:
            for i in chain:
                if _PAGE_NUMBER.match(page.lines[i].text):
                    digits = _DIGITS.search(page.lines[i].text)
                    found.append((page.number, i, int(digits.group()) if digits else None))
                    break
    offsets = Counter(value - number for number, _, value in found if value is not None)
    needed = min(3, sum(1 for page in pages if page.lines))
    return {(n, i) for n, i, value in found if value is None or offsets[value - n] >= needed}


def _longest_run(numbers: set[int]) -> int:
    """Longest chain of page numbers at most two apart (recto/verso running heads alternate)."""
    best = run = 0
    prev: int | None = None
    for n in sorted(numbers):
        run = run + 1 if prev is not None and n - prev <= 2 else 1
        best = max(best, run)
        prev = n
    return best


def _hf_key(text: str) -> str:
    """Digits normalised; a page number at either end dropped ("47700 Federal Register" = "Federal Register 47699")."""
    key = _WS.sub(" ", _DIGITS.sub("#", text.casefold())).strip()
    return _EDGE_NUMBER.sub("", key).strip()


def _place_outline_headings(pages: list[_Page], outline: list[_OutlineEntry]) -> bool:
    """Put each bookmark on its page: on the text that spells its title, else at its /XYZ top.

    A title found nowhere in the page's text is still inserted (sections need
    it) except on scans and OCR'd scans, where it would add words the page does
    not have.
    """
    cursors = [0] * len(pages)
    last_key: dict[int, str] = {}
    placed = False
    for entry in outline:
        if entry.page is None or not 0 <= entry.page < len(pages) or not pages[entry.page].lines:
            continue
        if last_key.get(entry.page) == _key(entry.title):
            continue  # the same bookmark twice in a row: one heading
        page = pages[entry.page]
        match = _find_title(page, entry, cursors[entry.page])
        if match is not None:
            start, span, cut = match
            if cut is not None:
                _split_line(page, start + span - 1, cut)
            _mark_heading(page, start, span, entry.level)
            cursors[entry.page] = start + span
        elif not page.ocr:  # an OCR layer does not carry the bookmark's words either
            at = _insert_position(page, entry.top, cursors[entry.page])
            page.inserts.setdefault(at, []).append((entry.level, entry.title))
            cursors[entry.page] = at
        else:
            continue
        last_key[entry.page] = _key(entry.title)
        placed = True
    return placed


def _find_title(page: _Page, entry: _OutlineEntry, start: int) -> tuple[int, int, int | None] | None:
    """Where the title's letters/digits are spelt by body text from ``start``: (line, lines, cut).

    ``cut`` is the character offset in the last line where the title ends, or
    None when it ends with the line. A leading section number on either side
    is ignored ("1 Foo" matches "Foo"). Whole-line matches beat matches that
    end inside a line (a run-in heading, or a long bookmark quoting the start
    of a paragraph); among equals the first at or below the /XYZ top wins.
    """
    want = _key(entry.title)
    if not want:
        return None
    truncated = entry.title.rstrip().endswith(("...", "…"))
    keys = [_key(line.text) if line.role == "body" else None for line in page.lines]
    whole: list[tuple[int, int, int | None]] = []
    inside: list[tuple[int, int, int | None]] = []
    for i in range(start, len(page.lines)):
        found = _match_at(page, keys, i, want, truncated)
        if found is not None:
            (whole if found[2] is None else inside).append(found)
    for matches in (whole, inside):
        if matches:
            return _nearest_top(page, matches, entry.top)
    return None


def _match_at(
    page: _Page, keys: list[str | None], i: int, want: str, truncated: bool
) -> tuple[int, int, int | None] | None:
    first = keys[i]
    if not first or (first[0] != want[0] and not first[0].isdigit()):
        return None  # cheap reject: the title cannot start here
    run: list[str] = []
    for key in keys[i : i + TITLE_MAX_LINES]:
        if key is None:
            break
        run.append(key)
    end = _title_end("".join(run), want)
    if end is None:
        return None
    for n, key in enumerate(run):
        if end <= len(key):
            if end == len(key):
                return i, n + 1, None
            cut = _char_offset(page.lines[i + n].text, end)
            boundary = not page.lines[i + n].text[cut : cut + 1].isalnum()
            return (i, n + 1, cut) if (boundary or truncated) and n < HEADING_MAX_LINES else None
        end -= len(key)
    return None


def _title_end(full: str, want: str) -> int | None:
    """Length of ``full``'s key prefix that spells ``want`` (leading section numbers ignored)."""
    if full.startswith(want):
        return len(want)
    digits = "0123456789"
    lead = len(full) - len(full.lstrip(digits))
    bare = want.lstrip(digits)
    if bare and full[lead:].startswith(bare):
        return lead + len(bare)
    return None


def _char_offset(text: str, key_length: int) -> int:
    """Index in ``text`` just after the character that completes ``key_length`` key characters."""
    n = 0
    for index, ch in enumerate(text):
        if ch.isalnum():
            n += len(ch.casefold())
            if n >= key_length:
                return index + 1
    return len(text)


def _nearest_top(
    page: _Page, matches: list[tuple[int, int, int | None]], top: float | None
) -> tuple[int, int, int | None]:
    if top is not None:
        for match in matches:
            if page.lines[match[0]].top <= top + 2:
                return match
    return matches[0]


def _split_line(page: _Page, index: int, cut: int) -> None:
    """Split a line where a heading ends; the rest stays body text on the same baseline."""
    line = page.lines[index]
    head, rest = line.text[:cut].strip(), line.text[cut:].strip()
    if not head or not rest:
        return
    line.text = head
    page.lines.insert(index + 1, _Line(text=rest, bottom=line.bottom, top=line.top, size=line.size))


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _mark_heading(page: _Page, start: int, span: int, level: int) -> None:
    page.lines[start].role = "heading"
    page.lines[start].level = level
    page.lines[start].span = span
    for j in range(start + 1, start + span):
        page.lines[j].role = "heading_cont"


def _insert_position(page: _Page, top: float | None, start: int) -> int:
    """Before the first body line at or below ``top`` (the bookmark's target), else at ``start``."""
    if top is None:
        return start
    for i in range(start, len(page.lines)):
        if page.lines[i].role == "body" and page.lines[i].top <= top + 2:
            return i
    return len(page.lines)


def _font_size_headings(pages: list[_Page]) -> bool:
    """Short paragraphs set >= 15% above the body's median size become headings, levels by size rank."""
    text_pages = [p for p in pages if not p.ocr]
    body = _body_size(text_pages)
    if body is None:
        return False
    found: list[tuple[_Page, list[int], float]] = []
    for page in text_pages:
        for group in _paragraph_groups(page):
            size = page.lines[group[0]].size
            if size >= HEADING_SIZE_RATIO * body and _is_heading_text(page, group):
                found.append((page, group, size))
    if not found:
        return False
    ranks = sorted({round(size * 2) / 2 for _, _, size in found}, reverse=True)
    for page, group, size in found:
        level = min(ranks.index(round(size * 2) / 2) + 1, HEADING_MAX_LEVELS)
        _mark_heading(page, group[0], len(group), level)
    return True


def _body_size(pages: list[_Page]) -> float | None:
    """Median font size weighted by characters, over body lines."""
    weights: Counter[float] = Counter()
    for page in pages:
        for line in page.lines:
            if line.role == "body" and line.size > 0:
                weights[round(line.size, 1)] += len(line.text)
    if not weights:
        return None
    half = sum(weights.values()) / 2
    running = 0
    for size in sorted(weights):
        running += weights[size]
        if running >= half:
            return size
    return None


def _is_heading_text(page: _Page, group: list[int]) -> bool:
    if len(group) > HEADING_MAX_LINES:
        return False
    text = " ".join(page.lines[i].text for i in group)
    letters = sum(1 for ch in text if ch.isalpha())
    return letters >= 2 and count_words(text) <= HEADING_MAX_WORDS


def _paragraph_groups(page: _Page) -> list[list[int]]:
    """Consecutive body lines split at large vertical gaps, upward jumps (columns) and size changes."""
    advance = _median_advance(page)
    groups: list[list[int]] = []
    current: list[int] = []
    for i, line in enumerate(page.lines):
        if line.role != "body" or i in page.inserts:
            if current:
                groups.append(current)
            current = []
            if line.role != "body":
                continue
        if current and _breaks(page.lines[current[-1]], line, advance):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def _median_advance(page: _Page) -> float:
    advances = []
    for prev, cur in zip(page.lines, page.lines[1:], strict=False):
        step = prev.bottom - cur.bottom
        if 0.3 * prev.size < step < 3 * prev.size:
            advances.append(step)
    if advances:
        return statistics.median(advances)
    sizes = [line.size for line in page.lines] or [10.0]
    return 1.2 * statistics.median(sizes)


def _breaks(prev: _Line, cur: _Line, advance: float) -> bool:
    step = prev.bottom - cur.bottom
    if step < -0.5 * prev.height or step > PARA_GAP_RATIO * advance:
        return True
    small, large = sorted((prev.size, cur.size))
    return small > 0 and large / small > SIZE_CHANGE_RATIO


def _page_blocks(page: _Page, display: str, heading_source: str | None) -> list[Block]:
    """Blocks in pdfium's reading order: headers/footers, headings, paragraphs."""
    groups = {group[0]: group for group in _paragraph_groups(page)}
    blocks: list[Block] = []

    def add(text: str, kind: BlockKind, level: int | None = None) -> None:
        source = heading_source if kind is BlockKind.HEADING else None
        location = Location(file=display, page=page.number)
        blocks.append(Block(text=text, kind=kind, location=location, level=level, detected_by=source))

    for i, line in enumerate(page.lines):
        for level, title in page.inserts.get(i, []):
            add(title, BlockKind.HEADING, level)
        if line.role == "hf":
            add(line.text, BlockKind.HEADER_FOOTER)
        elif line.role == "heading":
            add(" ".join(page.lines[j].text for j in range(i, i + line.span)), BlockKind.HEADING, line.level)
        elif i in groups:
            add(" ".join(page.lines[j].text for j in groups[i]), BlockKind.PARAGRAPH)
    for level, title in page.inserts.get(len(page.lines), []):
        add(title, BlockKind.HEADING, level)
    return blocks


# --- small helpers ----------------------------------------------------------


def _resolve(obj: Any, default: Any = None) -> Any:
    """Dereference an indirect object; broken references become ``default``."""
    if isinstance(obj, IndirectObject):
        obj = obj.get_object()
    if obj is None or isinstance(obj, NullObject):
        return default
    return obj


def _is_true(obj: Any) -> bool:
    """PDF booleans arrive as pypdf BooleanObject, which is not Python's True."""
    value = _resolve(obj)
    return isinstance(value, BooleanObject | bool) and bool(value)


def _int(obj: Any) -> int:
    value = _resolve(obj)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value) if math.isfinite(value) and value > 0 else 0


def _number_list(obj: Any) -> list[float]:
    arr = _resolve(obj)
    if not isinstance(arr, ArrayObject):
        return []
    out = []
    for item in arr:
        value = _resolve(item)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return []
        out.append(float(value))
    return out


def _text(obj: Any) -> str | None:
    value = _resolve(obj)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value) if isinstance(value, str) else None


def _clean_text(text: str) -> str:
    """Drop control characters and pdfium's soft-hyphen marker (U+FFFE), collapse whitespace.

    Deleting (not spacing) unmapped control codes keeps words whole: TeX fonts
    without ToUnicode give e.g. U+000C for the "fi" ligature inside a word.
    """
    if not text:
        return ""
    text = _CONTROL.sub("", text.replace("\ufffe", ""))
    return _WS.sub(" ", text).strip()


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
