"""Stage 1 of PDF extraction: the safety limits, the raw byte checks, and the one exception translator.

It exists so that everything that guards the parsers sits in one place and
needs no parser itself: every limit the PDF stages run under (set explicitly,
so a library upgrade or a later edit cannot loosen one unseen); the byte-level
refusals made before pypdf or pdfium touch the file (no ``%PDF-`` header, no
``startxref`` at the end or one that misses its cross-reference section, a loop
in the ``/Prev`` chain), which matter because both libraries "repair" such files
silently; the pypdf reader that caps whole-file object searches; and the
translation of library exceptions, by class, into ``ExtractionError``.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2 as pdfium
from pypdf.errors import (
    DependencyError,
    DeprecationError,
    EmptyFileError,
    FileNotDecryptedError,
    LimitReachedError,
    PyPdfError,
)
from pypdf.generic import IndirectObject

from .errors import ErrorCode, ExtractionError
from .limits import Limits, MiB

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
# pdfium inflates a page's content and the fonts, forms, profiles and inline images it uses whole (a 1 GiB
# stream aborts it under a 512 MiB cap): pdf_streams decodes each first, under the cap pypdf uses.
MAX_STREAM_DECODED_BYTES = 75_000_000  # one page's content streams together, or one other stream
MAX_DECODED_BYTES = 1_000_000_000  # all decoding for one file (5 000 pages x 200 KB of content)
MAX_RESOURCE_OBJECTS = 100_000  # indirect objects walked from pages' resources
MAX_INLINE_IMAGES_CHECKED = 10_000
INLINE_INPUT_BYTES = 16 * MiB  # input given to an inline image's non-Flate decoder (Flate finds its own end)
HEADER_SEARCH_BYTES = 1_024  # Acrobat accepts junk before %PDF- within the first KiB
TAIL_SEARCH_BYTES = 64 * 1024
TRAILER_WINDOW_BYTES = 64 * 1024

# pypdf's resource limits, set explicitly (not left to library defaults) so an
# upgrade cannot silently loosen them. Names are pypdf 7.1 Configuration fields;
# tests/test_hostile_pdf.py fails if a limit field exists that is not set here.
PYPDF_CONFIGURATION: dict[str, Any] = {
    "jbig2dec_binary": None,  # never shell out to jbig2dec (JBIG2 streams then fail with DependencyError)
    "maximum_declared_stream_length": 75_000_000,
    "array_based_stream_maximum_output_length": 75_000_000,
    "array_maximum_element_count": 100_000,
    "dictionary_maximum_element_count": 100_000,
    "zlib_maximum_output_length": MAX_STREAM_DECODED_BYTES,
    "zlib_maximum_recovery_input_length": 5_000_000,
    "lzw_maximum_output_length": MAX_STREAM_DECODED_BYTES,
    "run_length_maximum_output_length": MAX_STREAM_DECODED_BYTES,
    "jbig2_maximum_output_length": 75_000_000,
    "brotli_maximum_output_length": 75_000_000,
    "flate_maximum_columns": 250_000,
    "flate_maximum_row_length": 4_000_000,
    "image_maximum_buffer_size": 75_000_000,
    "stream_filters_maximum_length": 16,
    "stream_decoding_work_maximum_length": 300_000_000,
    "stream_parsing_work_maximum_count": 2_000_000,
    "xmp_maximum_input_length": 5_000_000,
    "xmp_maximum_element_count": 100_000,
    "outline_maximum_entries": 10_000,
    "outline_maximum_depth": 32,
    "page_tree_maximum_depth": 100,
    "page_tree_maximum_entries": 100_000,
    "page_tree_maximum_page_entries": 500_000,  # 5 000 pages (our cap) x 100 entries each; default 2 000 000
    "form_fields_maximum_entries": 100_000,
    "form_fields_maximum_depth": 100,
    "named_destinations_maximum_entries": 100_000,
    "named_destinations_maximum_depth": 100,
    "xform_maximum_invocations_per_extraction": 5_000,
    "xfa_decoding_work_maximum_length": 300_000_000,
    "disable_legacy_handling": True,
}
ROOT_OBJECT_RECOVERY_LIMIT = 10_000
# pypdf scans the whole file for each object missing from the xref (see _BoundedReader): allow
# 512 MiB of such scanning per file, and at least 4 scans (the corpus needs at most 1).
OBJECT_SEARCH_BUDGET_BYTES = 512 * MiB
MIN_OBJECT_SEARCHES = 4
XREF_STREAM_MAXIMUM_ENTRIES = 2_000_000


# --- errors -----------------------------------------------------------------

# Exceptions that mean "this file is broken", whatever library raised them.
BROKEN = (
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
    DeprecationError,  # pypdf: a filter abbreviation outside an inline image (removed in pypdf 7)
)


@contextmanager
def translate_errors() -> Iterator[None]:
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
    except (NotImplementedError, DependencyError) as exc:  # pypdf: a filter or encryption variant it does not
        # implement, or one it needs an external decoder for (JBIG2 without jbig2dec, which we never allow)
        raise ExtractionError(ErrorCode.UNSUPPORTED_FORMAT, "the PDF uses a feature that cannot be read") from exc
    except BROKEN as exc:
        raise ExtractionError(
            ErrorCode.CORRUPT, f"the PDF is damaged and cannot be read ({type(exc).__name__})"
        ) from exc
    except OSError as exc:
        raise ExtractionError(
            ErrorCode.INTERNAL, f"the PDF could not be read from disk ({type(exc).__name__})"
        ) from exc


# --- 1. raw preflight -------------------------------------------------------

_STARTXREF = re.compile(rb"startxref\s*(\d{1,20})")
_PREV = re.compile(rb"/Prev\s+(\d{1,20})")
_XREF_START = re.compile(rb"\s*(?:xref|\d{1,10}\s+\d{1,5}\s+obj)")


def preflight(path: Path, limits: Limits) -> None:
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


# --- opening with pypdf, under limits ---------------------------------------


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


def refuse_if_exhausted(reader: pypdf.PdfReader) -> None:
    if isinstance(reader, _BoundedReader) and reader.exhausted:
        raise ExtractionError(
            ErrorCode.CORRUPT, "the PDF is damaged: many objects are missing from its cross-reference table"
        )


def open_reader(path: Path) -> tuple[pypdf.PdfReader, bool]:
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
