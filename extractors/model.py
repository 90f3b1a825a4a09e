"""One located document model for every format.

Extractors emit an ordered list of ``Block``s; ``sections.build`` turns the
headings among them into a section tree with kinds and word counts. Every
block keeps its location so later checks can point an assessor at it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE_CELL = "table_cell"
    CAPTION = "caption"
    FOOTNOTE = "footnote"
    ENDNOTE = "endnote"
    TEXT_BOX = "text_box"
    HEADER_FOOTER = "header_footer"
    COMMENT = "comment"
    SLIDE_TITLE = "slide_title"
    SLIDE_BODY = "slide_body"
    NOTES = "notes"
    DIAGRAM = "diagram"


class Part(StrEnum):
    """Word-count parts; a profile chooses which ones count."""

    BODY = "body"
    TABLES = "tables"
    TEXT_BOXES = "text_boxes"
    FOOTNOTES = "footnotes"
    ENDNOTES = "endnotes"
    CAPTIONS = "captions"
    DIAGRAMS = "diagrams"
    NOTES = "notes"
    HEADERS_FOOTERS = "headers_footers"


class SectionKind(StrEnum):
    MAIN = "main"
    FRONT_MATTER = "front_matter"
    TOC = "toc"
    APPENDIX = "appendix"
    REFERENCES = "references"
    KSB_MAPPING = "ksb_mapping"
    GLOSSARY = "glossary"


# Parts that make up ``words.total``: what Word's dialog counts with
# "include text boxes, footnotes and endnotes" ticked. Notes, diagram text and
# headers/footers are reported but never part of the total.
TOTAL_PARTS: tuple[Part, ...] = (
    Part.BODY,
    Part.TABLES,
    Part.TEXT_BOXES,
    Part.FOOTNOTES,
    Part.ENDNOTES,
    Part.CAPTIONS,
)

_PART_OF_KIND: dict[BlockKind, Part | None] = {
    BlockKind.HEADING: Part.BODY,
    BlockKind.PARAGRAPH: Part.BODY,
    BlockKind.LIST_ITEM: Part.BODY,
    BlockKind.SLIDE_TITLE: Part.BODY,
    BlockKind.SLIDE_BODY: Part.BODY,
    BlockKind.TABLE_CELL: Part.TABLES,
    BlockKind.CAPTION: Part.CAPTIONS,
    BlockKind.FOOTNOTE: Part.FOOTNOTES,
    BlockKind.ENDNOTE: Part.ENDNOTES,
    BlockKind.TEXT_BOX: Part.TEXT_BOXES,
    BlockKind.HEADER_FOOTER: Part.HEADERS_FOOTERS,
    BlockKind.NOTES: Part.NOTES,
    BlockKind.DIAGRAM: Part.DIAGRAMS,
    BlockKind.COMMENT: None,  # comments never count
}


def part_of(kind: BlockKind) -> Part | None:
    return _PART_OF_KIND[kind]


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != ()}


@dataclass(slots=True)
class Location:
    """Where a thing is: enough for an assessor to find it in seconds."""

    file: str
    page: int | None = None
    slide: int | None = None
    paragraph: int | None = None
    table: int | None = None
    row: int | None = None
    col: int | None = None
    heading_path: tuple[str, ...] = ()
    part: str | None = None  # package part or archive member, e.g. word/footnotes.xml

    def to_dict(self) -> dict[str, Any]:
        d = _clean(asdict(self))
        if "heading_path" in d:
            d["heading_path"] = list(d["heading_path"])
        return d


@dataclass(slots=True)
class Block:
    text: str
    kind: BlockKind
    location: Location
    level: int | None = None  # heading level, 1 = top
    words: int = 0  # filled by sections.build for the chosen count mode
    section_kind: SectionKind = SectionKind.MAIN
    toc_entry: bool = False  # paragraph styled as a table-of-contents entry
    hidden: bool = False  # hidden slide: reported, counted separately
    style: str | None = None  # source style name (docx), for explanations
    detected_by: str | None = None  # headings: style | outline_level | bold | pdf_outline | font_size | markdown

    @property
    def part(self) -> Part | None:
        return part_of(self.kind)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": str(self.kind),
            "text": self.text,
            "words": self.words,
            "section_kind": str(self.section_kind),
            "location": self.location.to_dict(),
        }
        if self.level is not None:
            d["level"] = self.level
        if self.hidden:
            d["hidden"] = True
        if self.style:
            d["style"] = self.style
        return d


@dataclass(slots=True)
class Section:
    title: str
    level: int
    kind: SectionKind
    location: Location
    words: int = 0  # own text, up to the next heading of any level
    words_with_subsections: int = 0
    first_block: int = 0  # index into Document.blocks
    end_block: int = 0  # exclusive
    detected_by: str = "style"  # style | outline_level | bold | pdf_outline | font_size | slide | preamble | table

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "level": self.level,
            "kind": str(self.kind),
            "words": self.words,
            "words_with_subsections": self.words_with_subsections,
            "detected_by": self.detected_by,
            "location": self.location.to_dict(),
        }


@dataclass(slots=True)
class Media:
    name: str
    kind: str  # video | audio
    duration_s: float | None
    location: Location
    duration_source: str = "header"  # header | packet_scan | unknown
    container: str | None = None
    linked: bool = False  # referenced by URL rather than embedded

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "duration_source": self.duration_source,
            "container": self.container,
            "linked": self.linked,
            "location": self.location.to_dict(),
        }


@dataclass(slots=True)
class Link:
    url: str
    text: str
    location: Location

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "text": self.text, "location": self.location.to_dict()}


@dataclass(slots=True)
class Image:
    """A picture, diagram, chart or SmartArt; its words are counted separately."""

    kind: str  # picture | chart | smartart | drawing
    name: str
    words: int
    location: Location

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "words": self.words, "location": self.location.to_dict()}


@dataclass(slots=True)
class Attachment:
    """Embedded file (OLE object, PDF EmbeddedFiles): listed, never counted."""

    name: str
    content_type: str | None
    size: int | None
    location: Location

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "location": self.location.to_dict(),
        }


@dataclass(slots=True)
class Document:
    file: str
    format: str  # docx | pdf | pptx | media | markdown | text
    sha256: str
    size: int
    blocks: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    pages: int | None = None
    slides: int | None = None
    hidden_slides: list[int] = field(default_factory=list)
    scanned_pages: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # portfolio folder this file sits in
    count_mode: str = "word"

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def words_by_part(self) -> dict[str, int]:
        out = {str(p): 0 for p in Part}
        for b in self.blocks:
            p = b.part
            if p is not None:
                out[str(p)] += b.words
        return out  # diagram text is in DIAGRAM blocks; Image.words repeats it per diagram

    def words_by_section_kind(self) -> dict[str, int]:
        out = {str(k): 0 for k in SectionKind}
        for b in self.blocks:
            if b.part in TOTAL_PARTS:
                out[str(b.section_kind)] += b.words
        return out

    def total_words(self) -> int:
        return sum(b.words for b in self.blocks if b.part in TOTAL_PARTS)

    def to_dict(self, include_blocks: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file": self.file,
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
            "words": {
                "mode": self.count_mode,
                "total": self.total_words(),
                "by_part": self.words_by_part(),
                "by_section_kind": self.words_by_section_kind(),
            },
            "sections": [s.to_dict() for s in self.sections],
            "media": [m.to_dict() for m in self.media],
            "links": [link.to_dict() for link in self.links],
            "images": [i.to_dict() for i in self.images],
            "attachments": [a.to_dict() for a in self.attachments],
            "scanned_pages": list(self.scanned_pages),
            "warnings": list(self.warnings),
        }
        if self.pages is not None:
            d["pages"] = self.pages
        if self.slides is not None:
            d["slides"] = self.slides
            d["hidden_slides"] = list(self.hidden_slides)
        if self.group is not None:
            d["group"] = self.group
        if self.metadata:
            d["metadata"] = self.metadata
        if include_blocks:
            d["blocks"] = [b.to_dict() for b in self.blocks]
        return d
