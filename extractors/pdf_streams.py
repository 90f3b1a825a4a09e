"""Stage 2, continued: the decoded size of every stream pdfium will inflate, measured before it does.

Why: to read text, pdfium inflates whole into memory a page's content streams
and the streams it loads while parsing them (form XObjects, fonts and CMaps, ICC
profiles, function samples, Type 3 glyph procedures, the inline images in any
of these, and the object streams holding any object it needs). A ~1 KB
nested-Flate stream (the pypdf #3429 shape) that inflates to gigabytes makes
it abort on allocation failure under the sandbox's memory cap: a crash, where
the file deserves a "too large" refusal with a remedy (tests/hostile_pdf.py has
one case per route). So each such stream is decoded here first, with pypdf's
objects, under pypdf's 75 MB per-stream cap (a page's content streams count as
one, as pdfium concatenates them) and a per-file budget; at most one stream's
output is held at a time. A pypdf limit reached while resolving one of these
objects (an object-stream bomb, a forged /Length) refuses the file too.

Image XObjects are not decoded: text extraction never decodes them, and their
declared size is checked without decoding (``pdf_structure._check_images``).
A stream that is merely damaged is left for pdfium to read what it can.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pypdf
from pypdf.errors import LimitReachedError
from pypdf.filters import ASCII85Decode, ASCIIHexDecode, LZWDecode, RunLengthDecode
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NullObject, StreamObject

from .errors import ErrorCode, ExtractionError
from .pdf_preflight import (
    BROKEN,
    INLINE_INPUT_BYTES,
    MAX_DECODED_BYTES,
    MAX_INLINE_IMAGES_CHECKED,
    MAX_RESOURCE_OBJECTS,
    MAX_STREAM_DECODED_BYTES,
)

# Filters named in full or, in inline images, abbreviated (PDF 1.7 Table 94).
_ABBREVIATIONS = {
    "/Fl": "/FlateDecode",
    "/LZW": "/LZWDecode",
    "/RL": "/RunLengthDecode",
    "/AHx": "/ASCIIHexDecode",
    "/A85": "/ASCII85Decode",
}
# Keys that lead out of a page's resources (back up the page tree, into other pages), or to data pdfium does not
# decode to read text: XMP, application private data, associated and embedded files (a large attachment is fine).
_SKIP_KEYS = frozenset(
    {"/Parent", "/P", "/Annots", "/B", "/Dest", "/A", "/Next", "/Prev", "/First", "/Last"}
    | {"/Metadata", "/PieceInfo", "/AF", "/EF", "/Thumb"}
)
# An inline image: BI, its dictionary, then ID after whitespace or a delimiter (ISO 32000-1 8.9.7).
_INLINE = re.compile(rb"(?<![^\s\[\]()<>{}])BI[\s/](?P<dict>.{0,4096}?)(?<=[\s\])>])ID(?:\r\n|\s)?", re.S)
_INLINE_FILTER = re.compile(rb"/F(?:ilter)?(?=[\s/\[])\s*(?P<value>\[[^\]]*\]|/[^\s/\[\]<>()]+)")
_NAME = re.compile(rb"/[^\s/\[\]<>()]+")
_OTHER_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "/LZWDecode": LZWDecode.decode,
    "/RunLengthDecode": RunLengthDecode.decode,
    "/ASCIIHexDecode": ASCIIHexDecode.decode,
    "/ASCII85Decode": ASCII85Decode.decode,
}


class _TooLarge(Exception):
    """Decoding passed a cap: ``what`` says which, for the message."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


_PAGE, _FILE, _LIMIT = "page", "file", "limit"


@dataclass(slots=True)
class StreamBudget:
    """What one file's check has decoded so far; streams shared between pages are decoded once."""

    sizes: dict[int, int] = field(default_factory=dict)  # idnum -> decoded bytes
    visited: set[int] = field(default_factory=set)
    spent: int = 0
    inline_images: int = 0


def check_page_streams(page: pypdf.PageObject, number: int, budget: StreamBudget) -> None:
    """Refuse the file if page ``number``'s content, or a stream its resources reach, decodes past a cap."""
    try:
        total = sum(_measure(ref, budget) for ref in _content_refs(page.get("/Contents")))
        if total > MAX_STREAM_DECODED_BYTES:
            raise _TooLarge(_PAGE)
        _walk_resources(page.get("/Resources"), budget)
    except _TooLarge as exc:
        megabytes = MAX_STREAM_DECODED_BYTES // 1_000_000
        reason = {
            _PAGE: f"page {number} of the PDF decompresses to more than {megabytes} MB",
            _FILE: f"the PDF decompresses to more than {MAX_DECODED_BYTES // 1_000_000} MB by page {number}",
            _LIMIT: f"page {number} of the PDF needs a stream that decompresses to (or claims to be) more than "
            f"{megabytes} MB",
        }[exc.what]
        raise ExtractionError(ErrorCode.TOO_LARGE, f"{reason}: a decompression bomb") from exc


def _load(ref: Any) -> Any:
    """The object ``ref`` names; None when damaged, but a pypdf limit (an object-stream bomb, a forged
    /Length) refuses the file, since pdfium would then inflate that object stream whole."""
    try:
        return _resolve(ref)
    except LimitReachedError as exc:
        raise _TooLarge(_LIMIT) from exc
    except BROKEN:
        return None


def _content_refs(contents: Any) -> list[Any]:
    value = _load(contents)
    return list(value) if isinstance(value, ArrayObject) else [contents]


def _walk_resources(resources: Any, budget: StreamBudget) -> None:
    """Every stream reachable from a resource dictionary, except image XObjects, is measured once."""
    stack: list[Any] = [resources]
    while stack and len(budget.visited) < MAX_RESOURCE_OBJECTS:
        ref = stack.pop()
        if isinstance(ref, IndirectObject):
            if ref.idnum in budget.visited:
                continue
            budget.visited.add(ref.idnum)
        obj = _load(ref)
        if isinstance(obj, StreamObject) and obj.get("/Subtype") != "/Image":
            _measure(ref, budget)
        if isinstance(obj, DictionaryObject):
            stack.extend(value for key, value in obj.items() if key not in _SKIP_KEYS)
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)


def _measure(ref: Any, budget: StreamBudget) -> int:
    """Decoded length of one stream (0 if it is not one); its inline images are checked too."""
    key = ref.idnum if isinstance(ref, IndirectObject) else None
    if key is not None and key in budget.sizes:
        return budget.sizes[key]
    stream = _load(ref)
    size = 0
    if isinstance(stream, StreamObject):
        data = bytes(_decode(_filters(stream), stream._data, budget))  # bytes in, bytes out: no copy
        size = len(data)
        _check_inline_images(data, budget)
    if key is not None:
        budget.sizes[key] = size
    return size


def _filters(stream: DictionaryObject) -> list[str]:
    value = _load(stream.get("/Filter"))
    names = list(value) if isinstance(value, ArrayObject) else [value]
    return [_ABBREVIATIONS.get(str(name), str(name)) for name in (_load(n) for n in names) if isinstance(name, str)]


def _decode(filters: list[str], data: bytes | memoryview, budget: StreamBudget) -> bytes | memoryview:
    """Apply the expanding filters under the caps; stop at an image codec, an unknown filter or damage.

    ``data`` may be a view of the rest of a content stream (an inline image):
    Flate stops at its own end; other filters get at most ``INLINE_INPUT_BYTES``.
    """
    for name in filters:
        try:
            if name == "/FlateDecode":
                out = _inflate(data)
            elif name in _OTHER_DECODERS:
                out = _OTHER_DECODERS[name](bytes(data[:INLINE_INPUT_BYTES]) if isinstance(data, memoryview) else data)
            else:  # DCT, JPX, JBIG2, CCITT, Crypt: not inflated by text extraction
                break
        except LimitReachedError as exc:  # pypdf's LZW / RunLength output caps, the same 75 MB
            raise _TooLarge(_PAGE) from exc
        except BROKEN:
            break
        if len(out) > MAX_STREAM_DECODED_BYTES:
            raise _TooLarge(_PAGE)
        budget.spent += len(out)
        if budget.spent > MAX_DECODED_BYTES:
            raise _TooLarge(_FILE)
        data = out
    return data


def _inflate(data: bytes | memoryview) -> bytes:
    """zlib output, at most one byte past the cap; damaged data yields what precedes the damage (as pdfium)."""
    inflater = zlib.decompressobj()
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            out += inflater.decompress(pending, MAX_STREAM_DECODED_BYTES + 1 - len(out))
            if len(out) > MAX_STREAM_DECODED_BYTES:
                raise _TooLarge(_PAGE)
            pending = inflater.unconsumed_tail
    except zlib.error:
        pass
    return bytes(out)


def _check_inline_images(content: bytes, budget: StreamBudget) -> None:
    """Inline images with an expanding filter are decoded (pdfium does, to find their end) under the caps."""
    if b"ID" not in content:
        return
    for match in _INLINE.finditer(content):
        value = _INLINE_FILTER.search(match["dict"])
        if value is None:
            continue
        filters = [_ABBREVIATIONS.get(n.decode("latin-1"), n.decode("latin-1")) for n in _NAME.findall(value["value"])]
        if not {"/FlateDecode", "/LZWDecode", "/RunLengthDecode"} & set(filters):
            continue
        budget.inline_images += 1
        if budget.inline_images > MAX_INLINE_IMAGES_CHECKED:
            return
        _decode(filters, memoryview(content)[match.end() :], budget)


def _resolve(obj: Any) -> Any:
    if isinstance(obj, IndirectObject):
        obj = obj.get_object()
    return None if isinstance(obj, NullObject) else obj
