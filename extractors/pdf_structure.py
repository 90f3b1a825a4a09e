"""Stage 2 of PDF extraction: everything pypdf is used for, which is structure and never content.

It exists to keep pypdf confined to what it reads safely: the page tree and
page sizes, declared image sizes (so a decompression bomb is refused without
decoding it), URI link annotations, embedded files and file-attachment
annotations, and the outline (bookmarks). Content streams are never parsed
here and images never decoded; ``pdf_streams`` only measures how far the
streams pdfium will inflate expand. Link texts and page text come later from pdfium.
"""

from __future__ import annotations

import math
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pypdf
from pypdf.errors import DependencyError, LimitReachedError, PyPdfError
from pypdf.generic import ArrayObject, BooleanObject, DictionaryObject, IndirectObject, NullObject, StreamObject

from .base import Context
from .errors import ErrorCode, ExtractionError
from .limits import Limits, MiB
from .model import Attachment, Document, Location
from .pdf_model import OutlineEntry, Structure, clean_text
from .pdf_preflight import (
    BROKEN,
    MAX_ANNOTS_PER_PAGE,
    MAX_DECODED_ATTACHMENTS,
    MAX_IMAGE_DECODED_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_NAME_TREE_NODES,
    MAX_OUTLINE_NODES,
    MAX_PAGE_UNITS,
    MAX_XOBJECT_DEPTH,
    MAX_XOBJECTS_CHECKED,
    open_reader,
    refuse_if_exhausted,
)
from .pdf_streams import StreamBudget, check_page_streams

# --- 2. structure via pypdf -------------------------------------------------


def read_structure(ctx: Context, doc: Document) -> Structure:
    """Everything pypdf is needed for; refuses encrypted, XFA, oversized and bomb files."""
    reader, owner_only = open_reader(ctx.path)
    refuse_if_exhausted(reader)
    catalog = _catalog(reader)
    _refuse_dynamic_xfa(catalog)
    n_pages = _count_pages(reader, catalog, ctx.limits)
    refuse_if_exhausted(reader)
    structure = Structure(pages=n_pages, owner_password_only=owner_only)
    checked: set[int] = set()
    budget = StreamBudget()
    for index in range(n_pages):
        page = reader.pages[index]
        _check_page_size(page, index + 1)
        _check_images(page.get("/Resources"), checked, depth=0)
        check_page_streams(page, index + 1, budget)
        with _optional(doc, f"links and attachments on page {index + 1}"):
            _read_annotations(page, index + 1, ctx.display_name, structure, doc)
    with _optional(doc, "the PDF's embedded files"):
        _read_embedded_files(catalog, ctx.display_name, doc)
    with _optional(doc, "the PDF's bookmarks (outline)"):
        structure.outline = _read_outline(reader, catalog, doc)
    refuse_if_exhausted(reader)
    return structure


@contextmanager
def _optional(doc: Document, what: str) -> Iterator[None]:
    """Links, attachments and bookmarks are extras: damage there is a warning, never a refusal."""
    try:
        yield
    except BROKEN:
        doc.warn(f"{what} could not be read and were skipped")


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


# --- page sizes and image dictionaries --------------------------------------


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
        except BROKEN:  # unresolvable: nothing can decode it either
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


# --- links and attachments --------------------------------------------------


def _read_annotations(page: pypdf.PageObject, number: int, display: str, structure: Structure, doc: Document) -> None:
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
    name = clean_text(_text(spec.get("/UF")) or _text(spec.get("/F")) or fallback_name or "") or "attachment"
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
        except (LimitReachedError, DependencyError, *BROKEN):  # DependencyError: JBIG2 (we never run jbig2dec)
            return None
    return None


def _may_decode(doc: Document) -> bool:
    return len(doc.attachments) < MAX_DECODED_ATTACHMENTS


# --- outline (bookmarks) ----------------------------------------------------


def _read_outline(reader: pypdf.PdfReader, catalog: DictionaryObject, doc: Document) -> list[OutlineEntry]:
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


def _flatten_outline(reader: pypdf.PdfReader, items: list[Any], level: int) -> list[OutlineEntry]:
    out: list[OutlineEntry] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten_outline(reader, item, level + 1))
            continue
        title = clean_text(_text(getattr(item, "title", "")) or "")
        if not title:
            continue
        try:
            page = reader.get_destination_page_number(item)
        except BROKEN:
            page = None
        top = getattr(item, "top", None)
        top_f = float(top) if isinstance(top, int | float) and not isinstance(top, bool) else None
        out.append(OutlineEntry(title=title[:300], level=level, page=page, top=top_f))
    return out


def _inherit_child_pages(entries: list[OutlineEntry]) -> list[OutlineEntry]:
    """A container bookmark without a destination takes its first descendant's page (chapter folders)."""
    fixed = list(entries)
    for i, entry in enumerate(fixed):
        if entry.page is not None:
            continue
        for child in fixed[i + 1 :]:
            if child.level <= entry.level:
                break
            if child.page is not None:
                fixed[i] = OutlineEntry(entry.title, entry.level, child.page, None)
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
