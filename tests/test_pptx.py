"""PptxExtractor on the real pptx corpus, cross-checked against app.xml, python-pptx and a raw a:t floor.

Synthetic packages (hidden slide, AlternateContent, links, merged cells, broken parts) are built by
rewriting parts of a small corpus file, so every other part stays a real PowerPoint part.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from lxml import etree

from extractors.base import Context, Extractor
from extractors.errors import ErrorCode, ExtractionError
from extractors.limits import Limits
from extractors.model import BlockKind, Document
from extractors.ooxml import Package
from extractors.pptx import PptxExtractor
from extractors.wordcount import count_words

from .conftest import CORPUS, corpus_file

pytestmark = pytest.mark.corpus

PPTX_FILES = sorted(p.name for p in (CORPUS / "pptx").glob("*.pptx")) if (CORPUS / "pptx").is_dir() else []
APP_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/extended-properties}"
NOT_COUNTED = (BlockKind.DIAGRAM, BlockKind.COMMENT)

# Raw a:t floor (every a:t of ppt/slides/slide*.xml + ppt/notesSlides/notesSlide*.xml, words =
# len(text.split())), from shared/reference/peer-extraction-baseline.md, "Per-file words, PPTX".
RAW_FLOOR = {
    "poi_2411-Performance_Up_48slides.pptx": 1225,
    "poi_45545_Comment_11slides_notes.pptx": 327,
    "poi_EmbeddedAudio.pptx": 0,
    "poi_EmbeddedVideo.pptx": 0,
    "poi_HowWeRefactor_28slides_27notes.pptx": 1729,
    "poi_SmartArt.pptx": 0,
    "poi_aascu_leadership_summit_charts_notes.pptx": 1135,
    "poi_bug60993_libreoffice.pptx": 10,
    "poi_bug62513_19slides.pptx": 616,
    "poi_conference_talk_Maloney_28slides_22notes.pptx": 2762,
    "poi_ececapstonespring2012_no_app_xml.pptx": 606,
    "poi_stress022_45slides_44notes.pptx": 2444,
    "poi_with_japanese.pptx": 117,
    "pythonpptx_no-slides.pptx": 0,
    "pythonpptx_prs-notes.pptx": 2,
    "pythonpptx_shp-movie-props.pptx": 0,
    "pythonpptx_tbl-cell.pptx": 30,
}

# Files outside +-3% of the raw floor, and why. The raw floor reads every a:t of a notes page, so it
# also counts the notes page's slide-number (and date) placeholder: one "word" per notes page. We read
# only the notes body placeholder (what the presenter says), so we are lower by exactly that furniture
# (test_words_equal_raw_floor_minus_notes_furniture proves it for every file). Where notes pages are
# many and words few, that exceeds 3%:
#   Performance_Up: 41 notes pages -> 41 slide numbers of 1225 (-3.3%)
#   45545_Comment: 11 notes pages x (date + slide number) = 22 of 327 (-6.7%)
#   prs-notes: the slide number "1" is one of its 2 words (-50%)
# No corpus file has text duplicated in mc:AlternateContent (their AC holds OLE previews, a blipFill and a
# slide transition), and SmartArt text lives in ppt/diagrams/data*.xml, which the floor does not read.
BEYOND_3_PERCENT = {
    "poi_2411-Performance_Up_48slides.pptx",
    "poi_45545_Comment_11slides_notes.pptx",
    "pythonpptx_prs-notes.pptx",
}


def extract(path: Path, display_name: str | None = None) -> Document:
    doc = Document(file=path.name, format="pptx", sha256="", size=0)
    ctx = Context(path=path, display_name=display_name or path.name, limits=Limits())
    PptxExtractor().extract(ctx, doc)
    return doc


_CACHE: dict[str, Document] = {}


def corpus_doc(name: str) -> Document:
    """Extract a corpus file once per session (tests only read the result)."""
    if name not in _CACHE:
        _CACHE[name] = extract(corpus_file(f"pptx/{name}"))
    return _CACHE[name]


def app_props(path: Path) -> dict[str, str]:
    """docProps/app.xml statistics as PowerPoint saved them ({} when the part is absent)."""
    with zipfile.ZipFile(path) as zf:
        if "docProps/app.xml" not in zf.namelist():
            return {}
        root = etree.fromstring(zf.read("docProps/app.xml"))
    return {el.tag.removeprefix(APP_NS): (el.text or "") for el in root}


def split_words(doc: Document, kinds: tuple[BlockKind, ...] = NOT_COUNTED) -> int:
    """Whitespace-split words of slide + notes text: the same measure as the raw floor."""
    return sum(len(b.text.split()) for b in doc.blocks if b.kind not in kinds)


def notes_furniture_words(path: Path) -> int:
    """Words on notes pages outside the body placeholder (slide number, date, header, footer)."""
    total = 0
    with Package(path, Limits()) as pkg:
        for part in (i.filename for i in pkg.zip.infolist()):
            if re.fullmatch(r"ppt/notesSlides/notesSlide\d+\.xml", part):
                total += _furniture(pkg.xml(part))
    return total


def _furniture(root: etree._Element) -> int:
    p = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
    a = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
    words = 0
    for sp in root.iter(f"{p}sp"):
        ph = sp.find(f"{p}nvSpPr/{p}nvPr/{p}ph")
        if ph is None or ph.get("type") != "body":
            for para in sp.iter(f"{a}p"):
                words += len("".join(t.text or "" for t in para.iter(f"{a}t")).split())
    return words


def rewrite(src: Path, dst: Path, parts: dict[str, bytes | None]) -> Path:
    """Copy a package, replacing (bytes) or dropping (None) the named parts."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename not in parts:
                zout.writestr(info, zin.read(info))
        for name, data in parts.items():
            if data is not None:
                zout.writestr(name, data)
    return dst


def python_pptx_notes_slides(path: Path) -> set[int]:
    """Slides whose notes body has text, according to python-pptx (the library baseline)."""
    pptx = pytest.importorskip("pptx")
    prs = pptx.Presentation(str(path))
    return {
        n
        for n, slide in enumerate(prs.slides, start=1)
        if slide.has_notes_slide
        and slide.notes_slide.notes_text_frame is not None
        and slide.notes_slide.notes_text_frame.text.strip()
    }


def python_pptx_slide_words(path: Path) -> dict[int, int]:
    """Per-slide words of shapes (groups recursed), table cells and notes text via python-pptx."""
    pptx = pytest.importorskip("pptx")
    out: dict[int, int] = {}
    for n, slide in enumerate(pptx.Presentation(str(path)).slides, start=1):
        texts = [t for shape in slide.shapes for t in _shape_texts(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        out[n] = len(" ".join(texts).split())
    return out


def _shape_texts(shape: object) -> list[str]:
    if hasattr(shape, "shapes"):  # group shape
        return [t for child in shape.shapes for t in _shape_texts(child)]
    texts = [shape.text_frame.text] if getattr(shape, "has_text_frame", False) else []
    if getattr(shape, "has_table", False):
        texts += [cell.text_frame.text for row in shape.table.rows for cell in row.cells]
    return texts


# -- contract ------------------------------------------------------------


def test_contract() -> None:
    ex = PptxExtractor()
    assert isinstance(ex, Extractor)
    assert ex.name == "pptx"
    assert ex.formats == frozenset({"pptx"})


# -- slides --------------------------------------------------------------


@pytest.mark.parametrize("name", PPTX_FILES)
def test_slide_count_matches_app_xml(name: str) -> None:
    props = app_props(corpus_file(f"pptx/{name}"))
    if "Slides" not in props:
        pytest.skip("app.xml has no Slides statistic (LibreOffice file or no app.xml)")
    doc = corpus_doc(name)
    assert doc.slides == int(props["Slides"])
    assert len(doc.hidden_slides) == int(props["HiddenSlides"])


@pytest.mark.parametrize(
    ("name", "slides"),
    [
        ("poi_stress022_45slides_44notes.pptx", 45),  # main part has the ppsx content type
        ("pythonpptx_no-slides.pptx", 0),
        ("poi_HowWeRefactor_28slides_27notes.pptx", 28),
        ("poi_ececapstonespring2012_no_app_xml.pptx", 24),  # no app.xml: counted from p:sldIdLst
        ("poi_bug60993_libreoffice.pptx", 1),
    ],
)
def test_known_slide_counts(name: str, slides: int) -> None:
    assert corpus_doc(name).slides == slides


def test_hidden_slides_are_flagged_on_their_blocks() -> None:
    doc = corpus_doc("poi_2411-Performance_Up_48slides.pptx")
    assert doc.slides == 48
    assert doc.hidden_slides == [13, 48]
    for block in doc.blocks:
        assert block.hidden == (block.location.slide in doc.hidden_slides), block


@pytest.mark.parametrize("name", PPTX_FILES)
def test_every_block_is_located(name: str) -> None:
    doc = corpus_doc(name)
    things = [*doc.blocks, *doc.links, *doc.images, *doc.media, *doc.attachments]
    for thing in things:
        loc = thing.location
        assert loc.file == name
        assert loc.slide is not None and 1 <= loc.slide <= (doc.slides or 0), thing
        assert loc.part, thing


def test_slides_follow_presentation_order_not_part_names(tmp_path: Path) -> None:
    src = corpus_file("pptx/pythonpptx_tbl-cell.pptx")
    with zipfile.ZipFile(src) as zf:
        pres = zf.read("ppt/presentation.xml")
    order = b'<p:sldId id="258" r:id="rId4"/><p:sldId id="257" r:id="rId2"/><p:sldId id="256" r:id="rId3"/>'
    pres = re.sub(rb"<p:sldIdLst>.*</p:sldIdLst>", b"<p:sldIdLst>" + order + b"</p:sldIdLst>", pres)
    doc = extract(rewrite(src, tmp_path / "reordered.pptx", {"ppt/presentation.xml": pres}))
    parts = {b.location.slide: b.location.part for b in doc.blocks}
    assert parts[1] == "ppt/slides/slide3.xml"
    assert parts[2] == "ppt/slides/slide1.xml"


# -- speaker notes -------------------------------------------------------


@pytest.mark.parametrize("name", PPTX_FILES)
def test_notes_pages_match_app_xml(name: str) -> None:
    """app.xml Notes counts notes pages; many are empty pages PowerPoint made automatically."""
    path = corpus_file(f"pptx/{name}")
    props = app_props(path)
    if "Notes" not in props:
        pytest.skip("app.xml has no Notes statistic")
    with Package(path, Limits()) as pkg:
        main = pkg.main_part()
        assert main is not None
        slide_parts = [r.target for r in pkg.rels(main).values() if r.type == "slide"]
        pages = sum(1 for part in slide_parts if pkg.rels_of_type(part, "notesSlide"))
    assert pages == int(props["Notes"])
    notes_slides = {b.location.slide for b in corpus_doc(name).blocks if b.kind is BlockKind.NOTES}
    assert len(notes_slides) <= pages


@pytest.mark.parametrize("name", [n for n in PPTX_FILES if n != "poi_stress022_45slides_44notes.pptx"])
def test_notes_blocks_on_the_slides_that_have_notes(name: str) -> None:
    """Same slides as python-pptx's notes_text_frame (it cannot open the ppsx-typed stress022)."""
    path = corpus_file(f"pptx/{name}")
    doc = corpus_doc(name)
    with_notes = {b.location.slide for b in doc.blocks if b.kind is BlockKind.NOTES}
    assert with_notes == python_pptx_notes_slides(path)


@pytest.mark.parametrize(
    ("name", "slides_with_notes", "notes_words"),
    [
        ("poi_conference_talk_Maloney_28slides_22notes.pptx", 11, 665),
        ("poi_HowWeRefactor_28slides_27notes.pptx", 12, 304),
        ("poi_2411-Performance_Up_48slides.pptx", 8, 216),
        ("pythonpptx_prs-notes.pptx", 1, 1),
        ("poi_stress022_45slides_44notes.pptx", 0, 0),  # 44 notes pages, all with an empty body
    ],
)
def test_notes_text(name: str, slides_with_notes: int, notes_words: int) -> None:
    notes = [b for b in corpus_doc(name).blocks if b.kind is BlockKind.NOTES]
    assert len({b.location.slide for b in notes}) == slides_with_notes
    assert sum(len(b.text.split()) for b in notes) == notes_words
    assert all(b.location.part.startswith("ppt/notesSlides/") for b in notes)


def test_notes_exclude_slide_number_placeholder() -> None:
    notes = [b.text for b in corpus_doc("pythonpptx_prs-notes.pptx").blocks if b.kind is BlockKind.NOTES]
    assert notes == ["Notes"]  # the notes page's slide number "1" is not speech


# -- words ---------------------------------------------------------------


@pytest.mark.parametrize("name", PPTX_FILES)
def test_words_equal_raw_floor_minus_notes_furniture(name: str) -> None:
    """Slide + notes text is exactly the raw a:t floor less the notes pages' number/date placeholders."""
    path = corpus_file(f"pptx/{name}")
    assert split_words(corpus_doc(name)) + notes_furniture_words(path) == RAW_FLOOR[name]


@pytest.mark.parametrize("name", PPTX_FILES)
def test_words_within_3_percent_of_raw_floor(name: str) -> None:
    if name in BEYOND_3_PERCENT:
        pytest.skip("notes-page slide numbers are a large share of a small count (see BEYOND_3_PERCENT)")
    raw = RAW_FLOOR[name]
    assert abs(split_words(corpus_doc(name)) - raw) <= 0.03 * raw


@pytest.mark.parametrize("name", [n for n in PPTX_FILES if n != "poi_stress022_45slides_44notes.pptx"])
def test_per_slide_words_match_python_pptx(name: str) -> None:
    doc = corpus_doc(name)
    mine: dict[int, int] = defaultdict(int)
    for b in doc.blocks:
        if b.kind not in NOT_COUNTED:
            mine[b.location.slide] += len(b.text.split())
    expected = python_pptx_slide_words(corpus_file(f"pptx/{name}"))
    assert {n: mine[n] for n in expected} == expected


def test_japanese_counts_cjk_characters_as_words() -> None:
    doc = corpus_doc("poi_with_japanese.pptx")
    counted = sum(count_words(b.text) for b in doc.blocks if b.kind not in NOT_COUNTED)
    assert counted == int(app_props(corpus_file("pptx/poi_with_japanese.pptx"))["Words"]) == 127
    assert counted > split_words(doc)  # whitespace splitting undercounts CJK (117)


def test_slide_titles_and_footer_placeholders() -> None:
    doc = corpus_doc("poi_conference_talk_Maloney_28slides_22notes.pptx")
    kinds = Counter(b.kind for b in doc.blocks)
    assert kinds[BlockKind.SLIDE_TITLE] > 0
    assert kinds[BlockKind.HEADER_FOOTER] > 0
    for block in doc.blocks:
        if block.kind is BlockKind.HEADER_FOOTER:
            assert block.location.part.startswith("ppt/slides/")


# -- tables, SmartArt, charts, pictures -----------------------------------


def test_table_cells() -> None:
    doc = corpus_doc("pythonpptx_tbl-cell.pptx")
    assert doc.blocks
    assert {b.kind for b in doc.blocks} == {BlockKind.TABLE_CELL}
    assert sum(count_words(b.text) for b in doc.blocks) == 30
    cells = [(b.location.slide, b.location.table, b.location.row, b.location.col, b.text) for b in doc.blocks]
    assert cells[0] == (1, 1, 1, 1, "having custom margins")
    assert (2, 2, 1, 1, "merged cell") in cells  # slide 2 holds two tables
    assert cells[-1] == (3, 1, 3, 3, "i")


def test_smartart_text_is_diagram_not_slide_body() -> None:
    doc = corpus_doc("poi_stress022_45slides_44notes.pptx")
    diagram = [b for b in doc.blocks if b.kind is BlockKind.DIAGRAM]
    smartart = [i for i in doc.images if i.kind == "smartart"]
    assert len(smartart) == 24
    assert any("Baccalauréat étranger 2018" in b.text for b in diagram)
    assert not any("Baccalauréat étranger 2018" in b.text for b in doc.blocks if b.kind is BlockKind.SLIDE_BODY)
    assert all(b.location.part.startswith("ppt/diagrams/data") for b in diagram)
    per_part: Counter[str] = Counter()
    for b in diagram:
        per_part[b.location.part] += count_words(b.text)
    assert {i.name: i.words for i in smartart} == {name: per_part[name] for name in (i.name for i in smartart)}


def test_empty_smartart() -> None:
    doc = corpus_doc("poi_SmartArt.pptx")
    assert [(i.kind, i.name, i.words) for i in doc.images] == [("smartart", "ppt/diagrams/data1.xml", 0)]
    assert doc.blocks == []


def test_charts_and_pictures() -> None:
    doc = corpus_doc("poi_aascu_leadership_summit_charts_notes.pptx")
    charts = [i for i in doc.images if i.kind == "chart"]
    assert sorted(c.location.slide for c in charts) == [6, 7]
    assert {c.name for c in charts} == {"ppt/charts/chart1.xml", "ppt/charts/chart2.xml"}
    pictures = [i for i in doc.images if i.kind == "picture"]
    assert pictures and all(p.words == 0 for p in pictures)


# -- links, comments, attachments ----------------------------------------


def test_external_links_only() -> None:
    doc = corpus_doc("poi_with_japanese.pptx")
    assert [(link.url, link.text, link.location.slide) for link in doc.links] == [
        ("http://tika.apache.org/", "This is a hyperlink", 1)
    ]  # its "#_ftn1" footnote anchors are not external


def test_links_inside_smartart() -> None:
    doc = corpus_doc("poi_stress022_45slides_44notes.pptx")
    urls = {link.url for link in doc.links}
    assert {"http://www.orientation.esi.dz/", "http://bac2018.mesrs.dz/", "http://www.mesrs.dz/"} <= urls


def test_comments_are_never_counted_text() -> None:
    doc = corpus_doc("poi_45545_Comment_11slides_notes.pptx")
    comments = [b for b in doc.blocks if b.kind is BlockKind.COMMENT]
    assert {b.location.slide for b in comments} == {1, 2}
    assert "testdoc" in [b.text for b in comments]
    assert all(b.part is None for b in comments)


@pytest.mark.parametrize(
    ("name", "count"), [("poi_45545_Comment_11slides_notes.pptx", 3), ("poi_bug62513_19slides.pptx", 9)]
)
def test_ole_objects_are_attachments(name: str, count: int) -> None:
    doc = corpus_doc(name)
    assert len(doc.attachments) == count
    for att in doc.attachments:
        assert att.name.startswith("ppt/embeddings/")
        assert att.size and att.size > 0
        assert att.content_type


def test_ole_fallback_preview_is_not_read() -> None:
    """bug62513's OLE icons sit in mc:Fallback p:pic elements; only the mc:Choice is read."""
    doc = corpus_doc("poi_bug62513_19slides.pptx")
    ole_slides = {a.location.slide for a in doc.attachments}
    assert not [i for i in doc.images if i.location.slide in ole_slides and i.kind == "picture"]


# -- media ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "seconds", "part"),
    [
        ("poi_EmbeddedVideo.pptx", "video", 3.17, "ppt/media/media1.mp4"),
        ("poi_EmbeddedAudio.pptx", "audio", 3.24, "ppt/media/media1.mp3"),
        ("pythonpptx_shp-movie-props.pptx", "video", 7.16, "ppt/media/media1.mp4"),
    ],
)
def test_embedded_media_duration(name: str, kind: str, seconds: float, part: str) -> None:
    doc = corpus_doc(name)
    assert len(doc.media) == 1  # p14:media and a:videoFile point at the same part: one clip
    media = doc.media[0]
    assert (media.name, media.kind, media.linked) == (part, kind, False)
    assert media.duration_s == pytest.approx(seconds, abs=0.1)
    assert media.duration_source in {"header", "packet_scan"}
    assert (media.location.slide, media.location.part) == (1, part)
    assert doc.images == []  # the movie's poster frame is not a separate picture


def test_unprobeable_media_is_recorded_with_unknown_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    import extractors.media

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ExtractionError(ErrorCode.CORRUPT, "not a media file")

    monkeypatch.setattr(extractors.media, "probe", broken)
    doc = extract(corpus_file("pptx/poi_EmbeddedVideo.pptx"))
    assert [(m.name, m.kind, m.duration_s, m.duration_source) for m in doc.media] == [
        ("ppt/media/media1.mp4", "video", None, "unknown")
    ]
    assert any("media1.mp4" in w for w in doc.warnings)


def test_missing_media_part_costs_only_its_duration(tmp_path: Path) -> None:
    src = corpus_file("pptx/poi_EmbeddedVideo.pptx")
    doc = extract(rewrite(src, tmp_path / "no-media.pptx", {"ppt/media/media1.mp4": None}))
    assert doc.slides == 1
    assert [(m.name, m.duration_s, m.duration_source) for m in doc.media] == [("ppt/media/media1.mp4", None, "unknown")]
    assert any("missing" in w for w in doc.warnings)


def test_linked_media(tmp_path: Path) -> None:
    src = corpus_file("pptx/poi_EmbeddedVideo.pptx")
    rels = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'slideLayout" Target="../slideLayouts/slideLayout1.xml"/>'
        b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'video" Target="https://example.org/talk.mp4" TargetMode="External"/>'
        b"</Relationships>"
    )
    doc = extract(rewrite(src, tmp_path / "linked.pptx", {"ppt/slides/_rels/slide1.xml.rels": rels}))
    assert [(m.name, m.kind, m.linked, m.duration_s, m.duration_source) for m in doc.media] == [
        ("https://example.org/talk.mp4", "video", True, None, "unknown")
    ]
    assert [(link.url, link.text, link.location.slide) for link in doc.links] == [
        ("https://example.org/talk.mp4", "file_example_MP4_480_1_5MG_Trim", 1)
    ]


# -- synthetic slide: hidden, groups, AlternateContent, links, merged cells --

_NS_DECL = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:p14="http://schemas.microsoft.com/office/powerpoint/2010/main"'
)


def _sp(text: str, ph: str | None = None, runs: str | None = None) -> str:
    ph_xml = f'<p:ph type="{ph}"/>' if ph else ""
    body = runs if runs is not None else f"<a:r><a:t>{text}</a:t></a:r>"
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="9" name="s"/><p:cNvSpPr/><p:nvPr>{ph_xml}</p:nvPr></p:nvSpPr>'
        f"<p:spPr/><p:txBody><a:bodyPr/><a:p>{body}</a:p></p:txBody></p:sp>"
    )


def _cell(text: str, merge: str = "") -> str:
    return f"<a:tc {merge}><a:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></a:txBody></a:tc>"


SYNTHETIC_SLIDE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:sld {_NS_DECL} show="0"><p:cSld><p:spTree>
<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>
{_sp("Synthetic title", ph="title")}
<p:grpSp><p:nvGrpSpPr><p:cNvPr id="2" name="g"/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>
  {_sp("grouped words here")}</p:grpSp>
<mc:AlternateContent><mc:Choice Requires="p14">{_sp("choice words")}</mc:Choice>
  <mc:Fallback>{_sp("choice words")}{_sp("fallback only")}</mc:Fallback></mc:AlternateContent>
{_sp("7", ph="sldNum")}
{
    _sp(
        "",
        runs='<a:r><a:rPr><a:hlinkClick r:id="rId90"/></a:rPr><a:t>our </a:t></a:r>'
        '<a:r><a:rPr><a:hlinkClick r:id="rId90"/></a:rPr><a:t>site</a:t></a:r><a:r><a:t> today</a:t></a:r>',
    )
}
<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="5" name="t"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>
<p:xfrm/><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/table"><a:tbl>
<a:tr h="0">{_cell("spans two", 'gridSpan="2"')}{_cell("ghost", 'hMerge="1"')}</a:tr>
<a:tr h="0">{_cell("left")}{_cell("right")}</a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>
</p:spTree></p:cSld></p:sld>"""

SYNTHETIC_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideLayout"'
    ' Target="../slideLayouts/slideLayout1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide"'
    ' Target="../notesSlides/notesSlide1.xml"/>'
    '<Relationship Id="rId90" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"'
    ' Target="https://example.org/" TargetMode="External"/></Relationships>'
)


@pytest.fixture()
def synthetic(tmp_path: Path) -> Document:
    src = corpus_file("pptx/pythonpptx_prs-notes.pptx")
    parts: dict[str, bytes | None] = {
        "ppt/slides/slide1.xml": SYNTHETIC_SLIDE.encode(),
        "ppt/slides/_rels/slide1.xml.rels": SYNTHETIC_RELS.encode(),
    }
    return extract(rewrite(src, tmp_path / "synthetic.pptx", parts), display_name="portfolio/deck.pptx")


def test_synthetic_blocks(synthetic: Document) -> None:
    got = [(b.kind, b.text, b.location.table, b.location.row, b.location.col) for b in synthetic.blocks]
    assert got == [
        (BlockKind.SLIDE_TITLE, "Synthetic title", None, None, None),
        (BlockKind.SLIDE_BODY, "grouped words here", None, None, None),
        (BlockKind.SLIDE_BODY, "choice words", None, None, None),  # once: the Fallback copy is not read
        (BlockKind.HEADER_FOOTER, "7", None, None, None),
        (BlockKind.SLIDE_BODY, "our site today", None, None, None),
        (BlockKind.TABLE_CELL, "spans two", 1, 1, 1),  # the merged-away "ghost" cell is not shown, not read
        (BlockKind.TABLE_CELL, "left", 1, 2, 1),
        (BlockKind.TABLE_CELL, "right", 1, 2, 2),
        (BlockKind.NOTES, "Notes", None, None, None),
    ]


def test_synthetic_hidden_and_located(synthetic: Document) -> None:
    assert synthetic.slides == 1
    assert synthetic.hidden_slides == [1]
    assert all(b.hidden for b in synthetic.blocks)
    assert {b.location.file for b in synthetic.blocks} == {"portfolio/deck.pptx"}


def test_synthetic_link_joins_runs(synthetic: Document) -> None:
    assert [(link.url, link.text, link.location.slide) for link in synthetic.links] == [
        ("https://example.org/", "our site", 1)
    ]


# -- damaged input -------------------------------------------------------


def _raises(path: Path, code: ErrorCode | None = None) -> ExtractionError:
    with pytest.raises(ExtractionError) as info:
        extract(path)
    if code is not None:
        assert info.value.code is code, info.value.message
    return info.value


def test_truncated_pptx(tmp_path: Path) -> None:
    data = corpus_file("pptx/poi_2411-Performance_Up_48slides.pptx").read_bytes()
    path = tmp_path / "truncated.pptx"
    path.write_bytes(data[: len(data) // 2])
    _raises(path, ErrorCode.CORRUPT)


def test_garbage_pptx(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pptx"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    _raises(path, ErrorCode.CORRUPT)


@pytest.mark.parametrize(
    "name", ["poi_clusterfuzz_XSLF_5471515212382208.pptx", "poi_Divino_Revelado_no_central_directory.pptx"]
)
def test_corpus_bad_pptx(name: str) -> None:
    _raises(corpus_file(f"bad/{name}"), ErrorCode.CORRUPT)


def test_missing_file(tmp_path: Path) -> None:
    _raises(tmp_path / "nope.pptx", ErrorCode.NOT_FOUND)


def test_docx_is_not_a_presentation(corpus: Path) -> None:
    docx = next((corpus / "docx").glob("*.docx"), None)
    if docx is None:
        pytest.skip("no docx in the corpus")
    _raises(docx, ErrorCode.CORRUPT)


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ({"ppt/slides/slide1.xml": b"<p:sld><p:cSld>"}, ErrorCode.CORRUPT),  # not well-formed
        ({"ppt/slides/slide1.xml": None}, ErrorCode.CORRUPT),  # listed slide part missing
        ({"ppt/presentation.xml": None}, ErrorCode.CORRUPT),
        (
            {"ppt/slides/slide1.xml": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'},
            ErrorCode.HOSTILE_XML,
        ),
        ({"ppt/notesSlides/notesSlide1.xml": b"\xff\xfe garbage"}, ErrorCode.CORRUPT),
    ],
)
def test_damaged_parts(tmp_path: Path, parts: dict[str, bytes | None], code: ErrorCode) -> None:
    src = corpus_file("pptx/pythonpptx_prs-notes.pptx")
    _raises(rewrite(src, tmp_path / "damaged.pptx", parts), code)


def test_flipped_bytes_only_raise_extraction_error(tmp_path: Path) -> None:
    """Damage anywhere in a real deck gives a result or an ExtractionError, never a library exception."""
    data = bytearray(corpus_file("pptx/pythonpptx_tbl-cell.pptx").read_bytes())
    for i, offset in enumerate(range(200, len(data), len(data) // 40)):
        damaged = bytearray(data)
        damaged[offset : offset + 8] = b"\x00\xff" * 4
        path = tmp_path / f"flip{i}.pptx"
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(ExtractionError):
            extract(path)
