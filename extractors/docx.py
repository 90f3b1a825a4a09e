"""DOCX extraction by a direct, hardened walk of the WordprocessingML parts.

Counts what a reader sees in the final document: tracked insertions are in,
deletions and moved-from text out; field codes, hidden text, comments and
``mc:Fallback`` duplicates never reach body text. Text boxes, footnotes,
endnotes, captions, diagram text and headers/footers become blocks of their
own kind so a profile decides what counts. Footnotes, text boxes and comments
are emitted right after the paragraph that anchors them, so they belong to
that paragraph's section.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

from lxml import etree
from lxml import html as lxml_html

from .base import Context
from .docx_styles import Styles, on
from .errors import ErrorCode, ExtractionError
from .model import Attachment, Block, BlockKind, Document, Image, Link, Location, Media
from .ooxml import A_NS, MC_NS, R_NS, W_NS, Package, text_of
from .wordcount import count_words

W = f"{{{W_NS}}}"
R = f"{{{R_NS}}}"
A = f"{{{A_NS}}}"
MC = f"{{{MC_NS}}}"
V = "{urn:schemas-microsoft-com:vml}"
VO = "{urn:schemas-microsoft-com:office:office}"
WP = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}"
DGM = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
WP15 = "{http://schemas.microsoft.com/office/word/2012/wordprocessingDrawing}"
_HYPERLINK_FIELD = re.compile(r'^\s*HYPERLINK\s+"([^"]+)"', re.IGNORECASE)
_NOTE_SKIP_TYPES = {"separator", "continuationSeparator", "continuationNotice"}
_INLINE_CONTAINERS = {f"{W}ins", f"{W}moveTo", f"{W}smartTag", f"{W}customXml", f"{W}fldSimple", f"{W}bdo", f"{W}dir"}
_SKIPPED = {f"{W}del", f"{W}moveFrom"}
_BOLD_MAX_WORDS = 12
_BOLD_MAX_CHARS = 100
_HTML_BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "pre", "blockquote", "caption", "dt", "dd"}


@dataclass(frozen=True, slots=True)
class _Where:
    """The container a paragraph sits in: decides its kind and location."""

    kind: BlockKind
    part: str
    table: int | None = None
    row: int | None = None
    col: int | None = None
    toc: bool = False


@dataclass(slots=True)
class _Para:
    """Accumulates one paragraph's visible text and what it anchors."""

    text: list[str] = field(default_factory=list)
    bold: list[bool] = field(default_factory=list)
    anchored: list[tuple[_Where, list[etree._Element]]] = field(default_factory=list)
    links: list[tuple[str, int, int]] = field(default_factory=list)  # url, start, end offsets
    fields: list[list[object]] = field(default_factory=list)  # [instr, result_start]

    def add(self, s: str, bold: bool) -> None:
        self.text.append(s)
        self.bold.append(bold)

    def joined(self) -> str:
        return "".join(self.text)

    def all_bold(self) -> bool:
        seen = [b for s, b in zip(self.text, self.bold, strict=True) if s.strip()]
        return bool(seen) and all(seen)


class DocxExtractor:
    name: ClassVar[str] = "docx"
    formats: ClassVar[frozenset[str]] = frozenset({"docx"})

    def extract(self, ctx: Context, doc: Document) -> None:
        with Package(ctx.path, ctx.limits) as pkg:
            _Walker(pkg, ctx, doc).run()
        if ctx.detail == "template":
            doc.warn("saved with a Word template content type; save it as a normal .docx document")


class _Walker:
    def __init__(self, pkg: Package, ctx: Context, doc: Document) -> None:
        self.pkg, self.ctx, self.doc = pkg, ctx, doc
        main = pkg.main_part()
        if main is None or not pkg.has(main):
            raise ExtractionError(ErrorCode.CORRUPT, "package has no main document part")
        self.main = main
        self.styles = Styles(self._related_xml(main, "styles"))
        self.footnotes = self._notes(main, "footnotes", "footnote")
        self.endnotes = self._notes(main, "endnotes", "endnote")
        self.comments = self._notes(main, "comments", "comment")
        self.paragraphs = 0
        self.tables = 0
        self.placeholders = 0

    # -- setup ---------------------------------------------------------
    def _related_xml(self, source: str, rel_type: str) -> etree._Element | None:
        rels = self.pkg.rels_of_type(source, rel_type)
        if not rels or rels[0].external or not self.pkg.has(rels[0].target):
            return None
        return self.pkg.xml(rels[0].target)

    def _notes(self, source: str, rel_type: str, tag: str) -> dict[str, tuple[str, list[etree._Element]]]:
        rels = self.pkg.rels_of_type(source, rel_type)
        root = self._related_xml(source, rel_type)
        if root is None:
            return {}
        part = rels[0].target
        return {
            el.get(f"{W}id", ""): (part, list(el))
            for el in root.iter(f"{W}{tag}")
            if el.get(f"{W}type") not in _NOTE_SKIP_TYPES
        }

    # -- top level -----------------------------------------------------
    def run(self) -> None:
        root = self.pkg.xml(self.main)
        body = root.find(f"{W}body")
        if body is None:
            raise ExtractionError(ErrorCode.CORRUPT, f"{self.main} has no w:body")
        self._container(body, _Where(BlockKind.PARAGRAPH, self.main))
        self._headers_footers()
        self._app_properties()
        if self.placeholders:
            self.doc.warn(f"{self.placeholders} content control(s) still show their placeholder text")
        if self.doc.attachments:
            n = len(self.doc.attachments)
            self.doc.warn(f"{n} embedded object(s) listed but not read or counted; submit evidence as separate files")

    def _headers_footers(self) -> None:
        for rel in self.pkg.rels(self.main).values():
            if rel.type in {"header", "footer"} and not rel.external and self.pkg.has(rel.target):
                self._container(self.pkg.xml(rel.target), _Where(BlockKind.HEADER_FOOTER, rel.target))

    def _app_properties(self) -> None:
        rels = self.pkg.rels_of_type("", "extended-properties")
        if not rels or not self.pkg.has(rels[0].target):
            return
        root = self.pkg.xml(rels[0].target)
        app: dict[str, object] = {}
        for el in root:
            name = etree.QName(el).localname
            if name in {"Application", "Words", "Pages", "Characters"} and el.text:
                app[name.lower()] = int(el.text) if el.text.strip().isdigit() else el.text.strip()
        if app:
            self.doc.metadata["app"] = app

    # -- block level ---------------------------------------------------
    def _container(self, el: etree._Element, where: _Where) -> None:
        self._items(list(el), where)

    def _items(self, children: list[etree._Element], where: _Where) -> None:
        for child in children:
            tag = child.tag
            if tag == f"{W}p":
                self._paragraph(child, where)
            elif tag == f"{W}tbl":
                self._table(child, where)
            elif tag == f"{W}sdt":
                self._block_sdt(child, where)
            elif tag in (f"{W}customXml", f"{W}ins", f"{W}moveTo"):
                self._container(child, where)
            elif tag == f"{MC}AlternateContent":
                self._container(_choose(child), where)
            elif tag == f"{W}altChunk":
                self._alt_chunk(child, where)

    def _block_sdt(self, sdt: etree._Element, where: _Where) -> None:
        pr = sdt.find(f"{W}sdtPr")
        if pr is not None:
            gallery = pr.find(f"{W}docPartObj/{W}docPartGallery")
            if gallery is not None and "table of contents" in (gallery.get(f"{W}val") or "").lower():
                where = replace(where, toc=True)
            if pr.find(f"{W}showingPlcHdr") is not None:
                self.placeholders += 1
        content = sdt.find(f"{W}sdtContent")
        if content is not None:
            self._container(content, where)

    def _table(self, tbl: etree._Element, where: _Where) -> None:
        in_body = where.kind is BlockKind.PARAGRAPH
        self.tables += 1
        index = self.tables
        for r, tr in enumerate(_rows(tbl), start=1):
            for c, tc in enumerate(_cells(tr), start=1):
                kind = BlockKind.TABLE_CELL if in_body or where.kind is BlockKind.TABLE_CELL else where.kind
                self._container(tc, replace(where, kind=kind, table=index, row=r, col=c))

    def _alt_chunk(self, el: etree._Element, where: _Where) -> None:
        rel = self.pkg.rels(where.part).get(el.get(f"{R}id") or "")
        if rel is None or rel.external or not self.pkg.has(rel.target):
            return
        ctype = (self.pkg.content_type(rel.target) or "").lower()
        data = self.pkg.read(rel.target, self.ctx.limits.max_xml_part_bytes)
        if "html" in ctype:
            self._html_chunk(data, replace(where, part=rel.target))
        elif ctype.startswith("text/plain"):
            for line in data.decode("utf-8", "replace").splitlines():
                self._emit(line, BlockKind.PARAGRAPH, replace(where, part=rel.target))
        else:
            self.doc.warn(f"embedded chunk {rel.target} ({ctype or 'unknown type'}) was not read")

    def _html_chunk(self, data: bytes, where: _Where) -> None:
        parser = lxml_html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
        try:
            root = lxml_html.document_fromstring(data, parser=parser)
        except (etree.ParserError, ValueError):
            self.doc.warn(f"HTML chunk {where.part} could not be parsed")
            return
        for el in root.iter("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "pre", "blockquote", "dt", "dd"):
            if any(d.tag in _HTML_BLOCKS for d in el.iterdescendants()):
                continue
            text = " ".join(el.text_content().split())
            tag = str(el.tag)
            if tag[0] == "h" and tag[1:].isdigit():
                self._emit(text, BlockKind.HEADING, where, level=int(tag[1:]), detected_by="html")
            else:
                kind = {"li": BlockKind.LIST_ITEM, "td": BlockKind.TABLE_CELL, "th": BlockKind.TABLE_CELL}.get(tag)
                self._emit(text, kind or BlockKind.PARAGRAPH, where)

    # -- paragraphs ----------------------------------------------------
    def _paragraph(self, p: etree._Element, where: _Where) -> None:
        self.paragraphs += 1
        ppr = p.find(f"{W}pPr")
        sid = _val(ppr, "pStyle")
        style_bold = bool(self.styles.get(sid).bold)
        acc = _Para()
        self._inline(p, acc, where, style_bold)
        text = acc.joined()
        kind, level, how = self._classify(ppr, sid, where, acc, text)
        self._emit(text, kind, where, level=level, detected_by=how, style=self.styles.get(sid).name,
                   toc=where.toc or self.styles.is_toc(sid), index=self.paragraphs)
        for url, start, end in acc.links:
            self.doc.links.append(Link(url, text[start:end].strip(), self._loc(where, self.paragraphs)))
        for sub_where, elements in acc.anchored:
            self._items(elements, sub_where)

    def _classify(
        self, ppr: etree._Element | None, sid: str | None, where: _Where, acc: _Para, text: str
    ) -> tuple[BlockKind, int | None, str | None]:
        if self.styles.is_caption(sid) and where.kind not in (BlockKind.FOOTNOTE, BlockKind.ENDNOTE):
            return BlockKind.CAPTION, None, None
        if where.kind is not BlockKind.PARAGRAPH:
            return where.kind, None, None
        if where.toc or self.styles.is_toc(sid):
            return BlockKind.PARAGRAPH, None, None
        direct = _val(ppr, "outlineLvl")
        if direct is not None and direct.isdigit() and int(direct) < 9:
            return BlockKind.HEADING, int(direct) + 1, "outline_level"
        level = self.styles.heading_level(sid)
        if level is not None:
            return BlockKind.HEADING, level, "style"
        if self.styles.is_title(sid):
            return BlockKind.HEADING, 1, "title"
        if (ppr is not None and ppr.find(f"{W}numPr") is not None) or self.styles.get(sid).numbered:
            return BlockKind.LIST_ITEM, None, None
        if _bold_heading(acc, text):
            return BlockKind.HEADING, None, "bold"
        return BlockKind.PARAGRAPH, None, None

    def _emit(
        self,
        text: str,
        kind: BlockKind,
        where: _Where,
        *,
        level: int | None = None,
        detected_by: str | None = None,
        style: str | None = None,
        toc: bool = False,
        index: int | None = None,
    ) -> None:
        if not text.strip():
            return
        self.doc.blocks.append(
            Block(
                text=text,
                kind=kind,
                location=self._loc(where, index),
                level=level,
                toc_entry=toc,
                style=style,
                detected_by=detected_by,
            )
        )

    def _loc(self, where: _Where, index: int | None) -> Location:
        return Location(
            file=self.ctx.display_name,
            paragraph=index,
            table=where.table,
            row=where.row,
            col=where.col,
            part=where.part,
        )

    # -- inline content ------------------------------------------------
    def _inline(self, el: etree._Element, acc: _Para, where: _Where, style_bold: bool) -> None:
        for child in el:
            tag = child.tag
            if tag == f"{W}r":
                self._run(child, acc, where, style_bold)
            elif tag == f"{W}hyperlink":
                start = len(acc.joined())
                self._inline(child, acc, where, style_bold)
                rel = self.pkg.rels(where.part).get(child.get(f"{R}id") or "")
                if rel is not None and rel.external:
                    acc.links.append((rel.target, start, len(acc.joined())))
            elif tag in _INLINE_CONTAINERS:
                self._inline(child, acc, where, style_bold)
            elif tag == f"{W}sdt":
                self._inline_sdt(child, acc, where, style_bold)
            elif tag == f"{MC}AlternateContent":
                self._inline(_choose(child), acc, where, style_bold)
            # w:del, w:moveFrom, w:pPr, bookmarks, proofing marks: nothing visible

    def _inline_sdt(self, sdt: etree._Element, acc: _Para, where: _Where, style_bold: bool) -> None:
        pr = sdt.find(f"{W}sdtPr")
        if pr is not None and pr.find(f"{W}showingPlcHdr") is not None:
            self.placeholders += 1
        content = sdt.find(f"{W}sdtContent")
        if content is not None:
            self._inline(content, acc, where, style_bold)

    def _run(self, r: etree._Element, acc: _Para, where: _Where, style_bold: bool) -> None:
        rpr = r.find(f"{W}rPr")
        rstyle = self.styles.get(_val(rpr, "rStyle")) if _val(rpr, "rStyle") else None
        if _toggle(rpr, "vanish", rstyle.vanish if rstyle else None):
            return
        bold = bool(_toggle(rpr, "b", rstyle.bold if rstyle and rstyle.bold is not None else style_bold))
        for child in r:
            self._run_child(child, acc, where, bold)

    def _run_child(self, child: etree._Element, acc: _Para, where: _Where, bold: bool) -> None:
        tag = child.tag
        if tag == f"{W}t":
            acc.add(child.text or "", bold)
        elif tag in (f"{W}tab", f"{W}ptab"):
            acc.add("\t", bold)
        elif tag in (f"{W}br", f"{W}cr"):
            acc.add("\n", bold)
        elif tag == f"{W}noBreakHyphen":
            acc.add("-", bold)
        elif tag in (f"{W}fldChar", f"{W}instrText"):
            self._field(child, acc)
        elif tag == f"{W}footnoteReference":
            self._anchor(acc, self.footnotes, child, BlockKind.FOOTNOTE)
        elif tag == f"{W}endnoteReference":
            self._anchor(acc, self.endnotes, child, BlockKind.ENDNOTE)
        elif tag == f"{W}commentReference":
            self._anchor(acc, self.comments, child, BlockKind.COMMENT)
        elif tag == f"{W}drawing":
            self._drawing(child, acc, where)
        elif tag == f"{W}pict":
            self._vml(child, acc, where)
        elif tag == f"{W}object":
            self._ole_object(child, acc, where)
        elif tag == f"{MC}AlternateContent":
            for sub in _choose(child):
                self._run_child(sub, acc, where, bold)

    def _field(self, el: etree._Element, acc: _Para) -> None:
        """Track complex fields: codes never count; HYPERLINK results become links."""
        if el.tag == f"{W}instrText":
            if acc.fields:
                acc.fields[-1][0] = str(acc.fields[-1][0]) + (el.text or "")
            return
        kind = el.get(f"{W}fldCharType")
        if kind == "begin":
            acc.fields.append(["", None])
        elif kind == "separate" and acc.fields:
            acc.fields[-1][1] = len(acc.joined())
        elif kind == "end" and acc.fields:
            instr, start = acc.fields.pop()
            m = _HYPERLINK_FIELD.match(str(instr))
            if m and isinstance(start, int):
                acc.links.append((m.group(1), start, len(acc.joined())))

    def _anchor(
        self, acc: _Para, notes: dict[str, tuple[str, list[etree._Element]]], ref: etree._Element, kind: BlockKind
    ) -> None:
        found = notes.get(ref.get(f"{W}id", ""))
        if found is not None:
            part, elements = found
            acc.anchored.append((_Where(kind, part), elements))

    # -- drawings, shapes, objects -------------------------------------
    def _drawing(self, d: etree._Element, acc: _Para, where: _Where) -> None:
        self._text_boxes(d, acc, where)
        gd = next(d.iter(f"{A}graphicData"), None)
        uri = (gd.get("uri") or "") if gd is not None else ""
        props = next(d.iter(f"{WP}docPr"), None)
        name = (props.get("descr") or props.get("name") or "") if props is not None else ""
        loc = self._loc(where, self.paragraphs)
        if uri.endswith("/diagram"):
            self._smartart(gd, name, acc, where)
        elif uri.endswith("/chart"):
            self.doc.images.append(Image("chart", name, 0, loc))
        elif uri.endswith("/picture"):
            self.doc.images.append(Image("picture", name, 0, loc))
        else:
            self.doc.images.append(Image("drawing", name, 0, loc))
        self._web_video(d, name, loc)

    def _text_boxes(self, el: etree._Element, acc: _Para, where: _Where) -> None:
        for box in el.iter(f"{W}txbxContent"):
            if _inside_txbx(box, el):
                continue  # nested text box: reached through its parent box
            acc.anchored.append((replace(where, kind=BlockKind.TEXT_BOX, table=None, row=None, col=None), list(box)))

    def _smartart(self, gd: etree._Element, name: str, acc: _Para, where: _Where) -> None:
        ids = gd.find(f"{DGM}relIds")
        rel = self.pkg.rels(where.part).get(ids.get(f"{R}dm") or "") if ids is not None else None
        if rel is None or rel.external or not self.pkg.has(rel.target):
            return
        root = self.pkg.xml(rel.target)
        texts = [text_of(p, f"{A}t") for p in root.iter(f"{A}p")]
        words = sum(count_words(t) for t in texts)
        loc = self._loc(where, self.paragraphs)
        self.doc.images.append(Image("smartart", name or posixpath.basename(rel.target), words, loc))
        for t in texts:
            self._emit(t, BlockKind.DIAGRAM, replace(where, part=rel.target), index=self.paragraphs)

    def _web_video(self, d: etree._Element, name: str, loc: Location) -> None:
        for vid in d.iter(f"{WP15}webVideoPr"):
            url = vid.get("embeddedHtml") or ""
            m = re.search(r'src="([^"]+)"', url)
            target = m.group(1) if m else url
            self.doc.media.append(Media(name or target, "video", None, loc, "unknown", None, linked=True))
            if target:
                self.doc.links.append(Link(target, name, loc))

    def _vml(self, pict: etree._Element, acc: _Para, where: _Where) -> None:
        self._text_boxes(pict, acc, where)
        if next(pict.iter(f"{V}imagedata"), None) is not None:
            self.doc.images.append(Image("picture", "", 0, self._loc(where, self.paragraphs)))

    def _ole_object(self, obj: etree._Element, acc: _Para, where: _Where) -> None:
        self._text_boxes(obj, acc, where)
        for ole in obj.iter(f"{VO}OLEObject"):
            rel = self.pkg.rels(where.part).get(ole.get(f"{R}id") or "")
            if rel is None or rel.external:
                continue
            info = self.pkg.info(rel.target)
            self.doc.attachments.append(
                Attachment(
                    name=posixpath.basename(rel.target),
                    content_type=self.pkg.content_type(rel.target) or ole.get("ProgID"),
                    size=info.file_size if info else None,
                    location=self._loc(where, self.paragraphs),
                )
            )


# -- helpers -----------------------------------------------------------
def _choose(alt: etree._Element) -> etree._Element:
    """mc:AlternateContent: the first Choice, else the Fallback; never both."""
    choice = alt.find(f"{MC}Choice")
    if choice is not None:
        return choice
    fallback = alt.find(f"{MC}Fallback")
    return fallback if fallback is not None else etree.Element("empty")


def _val(pr: etree._Element | None, tag: str) -> str | None:
    if pr is None:
        return None
    el = pr.find(f"{W}{tag}")
    return el.get(f"{W}val") if el is not None else None


def _toggle(rpr: etree._Element | None, tag: str, inherited: bool | None) -> bool | None:
    direct = on(rpr.find(f"{W}{tag}")) if rpr is not None else None
    return direct if direct is not None else inherited


def _rows(tbl: etree._Element) -> list[etree._Element]:
    rows: list[etree._Element] = []
    for child in tbl:
        if child.tag == f"{W}tr":
            rows.append(child)
        elif child.tag in (f"{W}sdt", f"{W}customXml", f"{W}ins"):
            content = child.find(f"{W}sdtContent")
            rows.extend(_rows(content if content is not None else child))
    return rows


def _cells(tr: etree._Element) -> list[etree._Element]:
    cells: list[etree._Element] = []
    for child in tr:
        if child.tag == f"{W}tc":
            cells.append(child)
        elif child.tag in (f"{W}sdt", f"{W}customXml"):
            content = child.find(f"{W}sdtContent")
            cells.extend(_cells(content if content is not None else child))
    return cells


def _inside_txbx(box: etree._Element, stop: etree._Element) -> bool:
    parent = box.getparent()
    while parent is not None and parent is not stop:
        if parent.tag == f"{W}txbxContent" or parent.tag == f"{MC}Fallback":
            return True
        parent = parent.getparent()
    return False


def _bold_heading(acc: _Para, text: str) -> bool:
    """Short, wholly bold, unpunctuated paragraphs act as headings in many reports."""
    stripped = text.strip().rstrip(":").strip()
    if not stripped or len(stripped) > _BOLD_MAX_CHARS or "\n" in stripped or "\t" in stripped:
        return False
    if stripped[-1] in ".,;!?" or not any(ch.isalpha() for ch in stripped):
        return False
    return count_words(stripped) <= _BOLD_MAX_WORDS and acc.all_bold()
