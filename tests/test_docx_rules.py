"""DOCX counting rules pinned on generated documents with exactly known content."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractors import ErrorCode, ExtractionError, extract_file
from extractors.model import BlockKind, SectionKind
from tests.docgen import CT_MACRO, CT_TEMPLATE, Docx, p, r, table, text_box


def _words(tmp_path: Path, doc: Docx, name: str = "t.docx") -> dict[str, int]:
    return extract_file(doc.save(tmp_path / name)).words_by_part()


def test_plain_body(tmp_path: Path) -> None:
    assert _words(tmp_path, Docx().add(p("one two three"), p("four")))["body"] == 4


def test_tracked_deletions_and_moves_do_not_count_insertions_do(tmp_path: Path) -> None:
    runs = (
        r("kept words")
        + '<w:ins w:id="1" w:author="a">' + r(" inserted text") + "</w:ins>"
        + '<w:del w:id="2" w:author="a"><w:r><w:delText>deleted words here</w:delText></w:r></w:del>'
        + '<w:moveFrom w:id="3" w:author="a">' + r(" moved away") + "</w:moveFrom>"
        + '<w:moveTo w:id="4" w:author="a">' + r(" moved here") + "</w:moveTo>"
    )
    assert _words(tmp_path, Docx().add(p(runs=runs)))["body"] == 6


def test_field_codes_and_hidden_text_never_count(tmp_path: Path) -> None:
    runs = (
        r("see")
        + '<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        + '<w:r><w:instrText> HYPERLINK "https://example.org/video" </w:instrText></w:r>'
        + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        + r(" the video")
        + '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
        + r(" secret notes", extra_rpr="<w:vanish/>")
        + r(" styled secret", extra_rpr='<w:rStyle w:val="Secret"/>')
    )
    path = Docx().add(p(runs=runs)).save(tmp_path / "f.docx")
    doc = extract_file(path)
    assert doc.words_by_part()["body"] == 3  # see the video
    assert [(link.url, link.text) for link in doc.links] == [("https://example.org/video", "the video")]


def test_text_box_counted_once_in_its_own_part(tmp_path: Path) -> None:
    words = _words(tmp_path, Docx().add(p(runs=r("body") + text_box("three box words"))))
    assert words["body"] == 1
    assert words["text_boxes"] == 3  # not 6: the VML fallback duplicate is skipped


def test_tables_footnotes_captions_headers_are_separate_parts(tmp_path: Path) -> None:
    doc = Docx(footnotes={1: "a footnote of six words here"}, headers=["Running header text"])
    doc.add(p(runs=r("Body text") + '<w:r><w:footnoteReference w:id="1"/></w:r>'))
    doc.add(table([["cell one", "cell two"], ["three", "four"]]))
    doc.add(p("Figure 1: a caption", style="Caption"))
    words = _words(tmp_path, doc)
    assert words == {
        "body": 2, "tables": 6, "text_boxes": 0, "footnotes": 6, "endnotes": 0,
        "captions": 4, "diagrams": 0, "notes": 0, "headers_footers": 3,
    }


def test_report_with_appendix_and_references_known_counts(tmp_path: Path) -> None:
    doc = Docx()
    doc.add(p("My project", style="Title"))
    doc.add(p("Introduction", style="Heading1"), p("one two three four five"))
    doc.add(p("Method", style="MyChapter"), p("six seven eight"))  # custom style based on Heading 1
    doc.add(p("Details", style="Heading2"), p("nine ten"))
    doc.add(p("Appendix A – Evidence", style="Heading1"), p("appendix words do not count toward the target"))
    doc.add(p("Annex 2", runs=r("Annex 2", bold=True)), p("bold heading annex text"))
    doc.add(p("Bibliography", style="Heading1"), p("Smith, J. (2020) A book."))
    d = extract_file(doc.save(tmp_path / "report.docx"))
    kinds = {s.title: (s.kind, s.level, s.words, s.words_with_subsections) for s in d.sections}
    assert kinds["My project"][0] is SectionKind.FRONT_MATTER
    assert kinds["Introduction"] == (SectionKind.MAIN, 1, 6, 6)
    assert kinds["Method"] == (SectionKind.MAIN, 1, 4, 7)
    assert kinds["Details"] == (SectionKind.MAIN, 2, 3, 3)
    assert kinds["Appendix A – Evidence"][0] is SectionKind.APPENDIX
    assert kinds["Annex 2"][:2] == (SectionKind.APPENDIX, 1)
    assert kinds["Bibliography"][0] is SectionKind.REFERENCES
    by_kind = d.words_by_section_kind()
    assert by_kind["main"] == 13
    assert by_kind["appendix"] == 4 + 7 + 2 + 4
    assert by_kind["references"] == 1 + 5
    details = next(b for b in d.blocks if b.text == "nine ten")
    assert details.location.heading_path == ("Method", "Details")


def test_toc_entries_and_ksb_table_get_their_kinds(tmp_path: Path) -> None:
    doc = Docx().add(p("Contents"), p("Introduction 1", style="TOC1"))
    doc.add(p("Introduction", style="Heading1"), p("main text"))
    doc.add(table([["KSB", "Evidence location"], ["K1", "p3"], ["S2", "p4"]]))
    d = extract_file(doc.save(tmp_path / "toc.docx"))
    by_kind = d.words_by_section_kind()
    assert by_kind["toc"] == 2
    assert by_kind["ksb_mapping"] == 7
    assert any(s.kind is SectionKind.KSB_MAPPING and s.detected_by == "table" for s in d.sections)


def test_bold_short_paragraph_is_a_heading_but_bold_sentence_is_not(tmp_path: Path) -> None:
    doc = Docx().add(
        p(runs=r("Situation", bold=True)),
        p(runs=r("This whole sentence is bold and ends with a full stop.", bold=True)),
    )
    d = extract_file(doc.save(tmp_path / "bold.docx"))
    assert [b.kind for b in d.blocks] == [BlockKind.HEADING, BlockKind.PARAGRAPH]
    assert d.sections[0].detected_by == "bold"


def test_list_items_and_hyperlinks(tmp_path: Path) -> None:
    link = '<w:hyperlink r:id="rIdL1">' + r("demo video") + "</w:hyperlink>"
    doc = Docx(links={"rIdL1": "https://youtu.be/abc"}).add(p("first item", style="ListBullet"), p(runs=link))
    d = extract_file(doc.save(tmp_path / "links.docx"))
    assert d.blocks[0].kind is BlockKind.LIST_ITEM
    assert [(x.url, x.text) for x in d.links] == [("https://youtu.be/abc", "demo video")]


@pytest.mark.parametrize(
    ("content_type", "name", "code"),
    [(CT_MACRO, "m.docx", ErrorCode.MACRO_ENABLED), (CT_TEMPLATE, "t.dotx", ErrorCode.TEMPLATE_FORMAT)],
)
def test_refused_variants(tmp_path: Path, content_type: str, name: str, code: ErrorCode) -> None:
    path = Docx(content_type=content_type).add(p("x")).save(tmp_path / name)
    with pytest.raises(ExtractionError) as info:
        extract_file(path)
    assert info.value.code is code


def test_template_content_named_docx_is_read_with_a_warning(tmp_path: Path) -> None:
    d = extract_file(Docx(content_type=CT_TEMPLATE).add(p("a b c")).save(tmp_path / "looks-like.docx"))
    assert d.total_words() == 3
    assert any("template" in w for w in d.warnings)


def test_dtd_in_document_is_refused_as_hostile(tmp_path: Path) -> None:
    path = Docx().add(p("x")).save(tmp_path / "x.docx")
    import zipfile

    evil = tmp_path / "evil.docx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                doctype = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                data = data.replace(b"<w:document", doctype + b"<w:document", 1)
            dst.writestr(item, data)
    with pytest.raises(ExtractionError) as info:
        extract_file(evil)
    assert info.value.code is ErrorCode.HOSTILE_XML
