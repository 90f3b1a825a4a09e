"""Build minimal but valid .docx packages with exactly known content.

Tests use these to pin expectations (tracked changes, hidden text, fields,
text boxes, footnotes, AlternateContent duplicates) that real-world files only
show incidentally. Paragraph specs are tiny XML snippets so every construct
is visible in the test that uses it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = (
    f'xmlns:w="{W}" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:v="urn:schemas-microsoft-com:vml" mc:Ignorable="wps"'
)
CT_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
CT_TEMPLATE = "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
CT_MACRO = "application/vnd.ms-word.document.macroEnabled.main+xml"
STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="{W}">
<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/><w:basedOn w:val="Normal"/>
<w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/><w:basedOn w:val="Normal"/>
<w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading3"><w:name w:val="heading 3"/><w:basedOn w:val="Normal"/>
<w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="MyChapter"><w:name w:val="My Chapter"/><w:basedOn w:val="Heading1"/></w:style>
<w:style w:type="paragraph" w:styleId="Caption"><w:name w:val="caption"/></w:style>
<w:style w:type="paragraph" w:styleId="TOC1"><w:name w:val="toc 1"/></w:style>
<w:style w:type="paragraph" w:styleId="ListBullet"><w:name w:val="List Bullet"/>
<w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
<w:style w:type="character" w:styleId="Secret"><w:name w:val="Secret"/><w:rPr><w:vanish/></w:rPr></w:style>
</w:styles>"""


def p(text: str = "", style: str | None = None, runs: str | None = None) -> str:
    """A paragraph: plain text, or raw run XML in ``runs``."""
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    body = runs if runs is not None else r(text)
    return f"<w:p>{ppr}{body}</w:p>"


def r(text: str, bold: bool = False, extra_rpr: str = "") -> str:
    rpr = ("<w:b/>" if bold else "") + extra_rpr
    rpr_xml = f"<w:rPr>{rpr}</w:rPr>" if rpr else ""
    return f'<w:r>{rpr_xml}<w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def table(rows: list[list[str]]) -> str:
    trs = "".join("<w:tr>" + "".join(f"<w:tc>{p(c)}</w:tc>" for c in row) + "</w:tr>" for row in rows)
    return f"<w:tbl>{trs}</w:tbl>"


def text_box(text: str) -> str:
    """A modern text box with its VML fallback duplicate, as Word writes it."""
    inner = f"<w:txbxContent>{p(text)}</w:txbxContent>"
    return (
        "<w:r><mc:AlternateContent><mc:Choice Requires=\"wps\"><w:drawing><wp:anchor><wp:docPr id=\"1\" name=\"Box\"/>"
        "<a:graphic><a:graphicData uri=\"http://schemas.microsoft.com/office/word/2010/wordprocessingShape\">"
        f"<wps:wsp><wps:txbx>{inner}</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        f"</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox>{inner}</v:textbox></v:shape></w:pict>"
        "</mc:Fallback></mc:AlternateContent></w:r>"
    )


@dataclass
class Docx:
    body: list[str] = field(default_factory=list)
    footnotes: dict[int, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # rId -> url
    headers: list[str] = field(default_factory=list)
    content_type: str = CT_MAIN

    def add(self, *xml: str) -> Docx:
        self.body.extend(xml)
        return self

    def save(self, path: Path) -> Path:
        rels = ['<Relationship Id="rIdStyles" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                'relationships/styles" Target="styles.xml"/>']
        overrides = [f'<Override PartName="/word/document.xml" ContentType="{self.content_type}"/>']
        files: dict[str, str] = {"word/styles.xml": STYLES}
        for rid, url in self.links.items():
            rels.append(f'<Relationship Id="{rid}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                        f'relationships/hyperlink" Target="{escape(url)}" TargetMode="External"/>')
        if self.footnotes:
            notes = "".join(f'<w:footnote w:id="{i}">{p(t)}</w:footnote>' for i, t in self.footnotes.items())
            files["word/footnotes.xml"] = f'<w:footnotes {NS}><w:footnote w:type="separator" w:id="-1">' \
                f'{p("----")}</w:footnote>{notes}</w:footnotes>'
            rels.append('<Relationship Id="rIdFn" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                        'relationships/footnotes" Target="footnotes.xml"/>')
            overrides.append('<Override PartName="/word/footnotes.xml" ContentType="application/'
                             'vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/>')
        for n, text in enumerate(self.headers, start=1):
            files[f"word/header{n}.xml"] = f"<w:hdr {NS}>{p(text)}</w:hdr>"
            rels.append(f'<Relationship Id="rIdH{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                        f'relationships/header" Target="header{n}.xml"/>')
        files["word/document.xml"] = f'<?xml version="1.0" encoding="UTF-8"?><w:document {NS}><w:body>' \
            + "".join(self.body) + "<w:sectPr/></w:body></w:document>"
        files["word/_rels/document.xml.rels"] = _rels(rels)
        files["_rels/.rels"] = _rels(['<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                                      'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'])
        files["[Content_Types].xml"] = (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            + "".join(overrides) + "</Types>"
        )
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path


def _rels(items: list[str]) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships">' + "".join(items) + "</Relationships>")
