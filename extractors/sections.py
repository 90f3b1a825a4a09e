"""Turn a flat list of located blocks into a section tree with kinds and counts.

Headings come from the extractors (styles, outline levels, bold short lines,
PDF outlines, font sizes, slide titles, markdown). Kinds come from heading
titles in any common spelling; a KSB mapping can also be a table recognised by
its header row or by a column of KSB codes. Sub-sections inherit the kind of an
appendix, reference list, glossary or KSB mapping they sit in.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

from .model import TOTAL_PARTS, Block, BlockKind, Document, Location, Section, SectionKind
from .wordcount import CountMode, count_words

_NUMBERING = re.compile(
    r"^\s*(?:(?:section|chapter|part)\s+)?(?:\d+(?:\.\d+)*\.?|[ivxlc]+[.)]|[a-z][.)])\s*[-–—:.)]?\s*",
    re.IGNORECASE,
)
_RULES: list[tuple[SectionKind, re.Pattern[str]]] = [
    (
        SectionKind.KSB_MAPPING,
        re.compile(
            r"\bksbs?\b.*\b(map|mapping|matrix|evidence|locator|cross[- ]?referenc|tracker|coverage)"
            r"|\b(project\s+)?evidence\s+locator\b|\bmapping\s+(table|matrix|document)\b|^ksbs?$"
            r"|\bknowledge,?\s+skills,?\s+(and\s+)?behaviours?\b.*\bmap",
        ),
    ),
    (
        SectionKind.REFERENCES,
        re.compile(r"^(references?|bibliography|reference\s+list|list\s+of\s+references|works\s+cited|"
                   r"sources(\s+consulted)?|citations|further\s+reading)\b"),
    ),
    (
        SectionKind.GLOSSARY,
        re.compile(r"^(glossary|(list\s+of\s+)?abbreviations|acronyms|definitions|terminology|glossary\s+of\s+terms)\b"),
    ),
    (SectionKind.TOC, re.compile(r"^((table\s+of\s+)?contents|list\s+of\s+(figures|tables|illustrations))\b")),
    (SectionKind.APPENDIX, re.compile(r"^(appendix|appendices|annex|annexe|annexes|annexure|addendum|attachments?)\b")),
    (
        SectionKind.FRONT_MATTER,
        re.compile(r"^(title\s+page|cover\s+(page|sheet)|acknowledge?ments?|dedication|foreword|preface)$"),
    ),
]
_INHERITED = {SectionKind.APPENDIX, SectionKind.REFERENCES, SectionKind.KSB_MAPPING, SectionKind.GLOSSARY}
_TOP_LEVEL_KINDS = {SectionKind.APPENDIX, SectionKind.REFERENCES, SectionKind.GLOSSARY, SectionKind.KSB_MAPPING}
_KSB_CODE = re.compile(r"^\s*[KSB]\d{1,2}(?:\.\d+)?\b")
_KSB_HEADER = re.compile(r"\bksbs?\b|knowledge,?\s+skills?|\bcriteri(a|on)\b", re.IGNORECASE)
_EVIDENCE_HEADER = re.compile(r"\b(evidence|page|section|where|how|reference|location|met)\b", re.IGNORECASE)
PREAMBLE_FRONT_MATTER_MAX_WORDS = 150


def classify_title(title: str) -> SectionKind | None:
    """Kind named by a heading's own title, or None for an ordinary heading."""
    norm = " ".join(title.lower().replace("&", " and ").split())
    for candidate in (norm, _NUMBERING.sub("", norm, count=1)):
        for kind, pattern in _RULES:
            if pattern.search(candidate):
                return kind
    return None


def build(doc: Document, mode: CountMode = CountMode.WORD) -> None:
    """Fill block word counts, section kinds, heading paths and ``doc.sections``."""
    doc.count_mode = str(mode)
    for block in doc.blocks:
        block.words = count_words(block.text, mode)
    _assign_heading_levels(doc.blocks)
    doc.sections = _sections(doc)
    _ksb_tables(doc)
    _finish(doc)


def _is_heading(block: Block) -> bool:
    return block.kind in (BlockKind.HEADING, BlockKind.SLIDE_TITLE) and block.level is not None


def _assign_heading_levels(blocks: list[Block]) -> None:
    """Bold/unlevelled headings nest under the last real heading; special kinds go top level."""
    last_real = 0
    prev: Block | None = None
    for b in blocks:
        if b.kind is BlockKind.SLIDE_TITLE:
            continued = (
                prev is not None and prev.kind is BlockKind.SLIDE_TITLE and prev.location.slide == b.location.slide
            )
            b.level = None if continued else 1  # a two-line title starts one section
        prev = b
        if b.kind is not BlockKind.HEADING:
            continue
        if b.level is not None:
            last_real = b.level
            continue
        kind = classify_title(b.text)
        b.level = 1 if kind in _TOP_LEVEL_KINDS or last_real == 0 else min(last_real + 1, 9)


def _sections(doc: Document) -> list[Section]:
    heads = [i for i, b in enumerate(doc.blocks) if _is_heading(b)]
    sections: list[Section] = []
    if doc.blocks and (not heads or heads[0] > 0):
        sections.append(_preamble(doc, heads[0] if heads else len(doc.blocks), bool(heads)))
    stack: list[Section] = []
    for n, start in enumerate(heads):
        block = doc.blocks[start]
        end = heads[n + 1] if n + 1 < len(heads) else len(doc.blocks)
        level = block.level or 1
        while stack and stack[-1].level >= level:
            stack.pop()
        kind = _kind_for(block, stack)
        sec = Section(
            title=" ".join(block.text.split()),
            level=level,
            kind=kind,
            location=replace(block.location, heading_path=tuple(s.title for s in stack)),
            first_block=start,
            end_block=end,
            detected_by=block.detected_by or ("slide" if block.kind is BlockKind.SLIDE_TITLE else "style"),
        )
        stack.append(sec)
        sections.append(sec)
    return sections


def _kind_for(block: Block, stack: list[Section]) -> SectionKind:
    own = classify_title(block.text)
    if own is not None:
        return own
    if block.detected_by == "title":
        return SectionKind.FRONT_MATTER
    for parent in reversed(stack):
        if parent.kind in _INHERITED:
            return parent.kind
    return SectionKind.MAIN


def _preamble(doc: Document, end: int, has_headings: bool) -> Section:
    words = sum(b.words for b in doc.blocks[:end] if b.kind is not BlockKind.HEADER_FOOTER)
    short = has_headings and words <= PREAMBLE_FRONT_MATTER_MAX_WORDS
    first = doc.blocks[0].location
    return Section(
        title="(before the first heading)",
        level=1,
        kind=SectionKind.FRONT_MATTER if short else SectionKind.MAIN,
        location=Location(file=first.file, page=first.page, slide=first.slide, paragraph=first.paragraph),
        first_block=0,
        end_block=end,
        detected_by="preamble",
    )


def _ksb_tables(doc: Document) -> None:
    """A table that maps KSBs is a KSB mapping wherever it sits."""
    tables: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, b in enumerate(doc.blocks):
        if b.kind is BlockKind.TABLE_CELL and b.location.table is not None:
            tables[(b.location.part or "", b.location.table)].append(i)
    for idxs in tables.values():
        if not _looks_like_ksb_table([doc.blocks[i] for i in idxs]):
            continue
        owner = _section_at(doc.sections, idxs[0])
        if owner is not None and owner.kind is SectionKind.KSB_MAPPING:
            continue
        first = doc.blocks[idxs[0]]
        sec = Section(
            title="KSB mapping table",
            level=(owner.level + 1) if owner else 1,
            kind=SectionKind.KSB_MAPPING,
            location=first.location,
            first_block=idxs[0],
            end_block=idxs[-1] + 1,
            detected_by="table",
        )
        doc.sections.insert(doc.sections.index(owner) + 1 if owner else 0, sec)


def _looks_like_ksb_table(cells: list[Block]) -> bool:
    header = " ".join(c.text for c in cells if c.location.row == 1)
    if _KSB_HEADER.search(header) and _EVIDENCE_HEADER.search(header):
        return True
    first_col = [c for c in cells if c.location.col == 1 and (c.location.row or 0) > 1]
    coded = sum(1 for c in first_col if _KSB_CODE.match(c.text))
    return coded >= 5 and coded >= len(first_col) / 2


def _section_at(sections: list[Section], index: int) -> Section | None:
    found = None
    for s in sections:
        if s.first_block <= index < s.end_block and s.detected_by != "table":
            found = s
    return found


def _finish(doc: Document) -> None:
    """Give each block its section kind and heading path; count section words."""
    ordinary = [s for s in doc.sections if s.detected_by != "table"]
    for sec in ordinary:
        path = (*sec.location.heading_path, sec.title) if sec.detected_by != "preamble" else ()
        for b in doc.blocks[sec.first_block : sec.end_block]:
            b.section_kind = sec.kind
            b.location.heading_path = path
        sec.words = sum(b.words for b in doc.blocks[sec.first_block : sec.end_block] if b.part in TOTAL_PARTS)
    for pos, sec in enumerate(ordinary):
        sec.words_with_subsections = sec.words + sum(s.words for s in _descendants(ordinary, pos))
    for sec in doc.sections:
        if sec.detected_by == "table":
            blocks = doc.blocks[sec.first_block : sec.end_block]
            for b in blocks:
                if b.kind is BlockKind.TABLE_CELL and b.location.table == sec.location.table:
                    b.section_kind = SectionKind.KSB_MAPPING
            sec.words = sec.words_with_subsections = sum(
                b.words for b in blocks if b.kind is BlockKind.TABLE_CELL and b.location.table == sec.location.table
            )
    for b in doc.blocks:
        if b.toc_entry:
            b.section_kind = SectionKind.TOC


def _descendants(sections: list[Section], pos: int) -> list[Section]:
    level = sections[pos].level
    out: list[Section] = []
    for s in sections[pos + 1 :]:
        if s.level <= level or s.detected_by == "preamble":
            break
        out.append(s)
    return out
