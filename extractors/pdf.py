"""PDF extraction: located text blocks, headings, scanned pages, links, attachments.

Stack (measured in benchmarks/bench_pdf_text.py): pypdfium2 reads page text, line
positions and font sizes; over the 24-file corpus it takes 0.06x the time of
pypdf's ``extract_text`` and 0.4x that of a ``pdftotext`` subprocess, with word
counts within a few percent of pdftotext's. pypdf reads structure only (page
tree, outline, annotations, embedded files, image dictionaries): it never
parses a content stream or decodes an image here, which keeps its known CPU/RAM
bombs out of reach.

Order of work, cheapest and most defensive first, one module per stage (this
module only runs them in order):

1. ``pdf_preflight``: a raw byte preflight (empty file, ``%PDF-`` header, a
   ``startxref`` at the end that points at a cross-reference section, no loop in
   the ``/Prev`` chain);
2. ``pdf_structure``: pypdf under explicit limits: encryption, dynamic XFA, page
   count, page size, declared image sizes (so a decompression bomb is refused
   before anything renders or decodes it), links, attachments, outline; and
   (``pdf_streams``) how far every stream pdfium will inflate whole expands,
   under pypdf's 75 MB cap, so a Flate/LZW bomb is refused instead of crashing pdfium;
3. ``pdf_pages``: pdfium: text per page, object statistics for scanned/OCR detection;
4. ``pdf_layout``: running headers/footers, heading placement, paragraphs, blocks.

``pdf_model`` holds the records the stages hand each other. Every library
exception is translated in one place (``pdf_preflight.translate_errors``), by
class, into an ``ExtractionError``; nothing matches on library messages.
"""

from __future__ import annotations

from typing import ClassVar

import pypdf

from .base import Context
from .model import Document, Link, Location
from .pdf_layout import font_size_headings, mark_headers_footers, page_blocks, place_outline_headings
from .pdf_model import Page, Structure
from .pdf_pages import classify_pages, read_text
from .pdf_preflight import PYPDF_CONFIGURATION, preflight, translate_errors
from .pdf_structure import read_structure

# --- public -----------------------------------------------------------------


class PdfExtractor:
    """Fills a Document from a PDF; raises ExtractionError for anything it cannot read."""

    name: ClassVar[str] = "pdf"
    formats: ClassVar[frozenset[str]] = frozenset({"pdf"})

    def extract(self, ctx: Context, doc: Document) -> None:
        with translate_errors(), pypdf.apply_configuration(**PYPDF_CONFIGURATION):
            preflight(ctx.path, ctx.limits)
            structure = read_structure(ctx, doc)
            pages = read_text(ctx.path, structure)
        _build_document(ctx.display_name, doc, structure, pages)


# --- 4. layout and blocks ---------------------------------------------------


def _build_document(display: str, doc: Document, structure: Structure, pages: list[Page]) -> None:
    """Turn per-page lines into located blocks and page-level findings."""
    doc.pages = len(pages)
    if structure.owner_password_only:
        doc.warn("the PDF is encrypted with an owner password only (editing restrictions); it was read without one")
    classify_pages(pages, doc)
    mark_headers_footers(pages)
    source: str | None = None
    if place_outline_headings(pages, structure.outline):
        source = "pdf_outline"
    elif font_size_headings(pages):
        source = "font_size"
    if source is not None:
        doc.metadata["heading_source"] = source
    for page in pages:
        doc.blocks.extend(page_blocks(page, display, source))
    for page in pages:
        for url, text in page.links:
            doc.links.append(Link(url=url, text=text, location=Location(file=display, page=page.number)))
