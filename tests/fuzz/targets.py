"""Fuzz targets around our extraction wrappers, their seed files, and the property every input must meet.

The property (reliability-anchors.md (b) 40 (ii)): for any bytes, extraction either returns a result or
raises ``ExtractionError`` with a *mapped* code, within a time budget and an RSS cap, and a returned result
serialises the way the worker stores it. ``internal_error`` is not mapped: it is the pipeline's safety net
for a library exception an extractor failed to translate, so a fuzzer that reaches it has found a bug.
``parser_crashed`` and ``timeout`` only come from the sandbox and mean a native crash or a hang.

Seeds are small real files from the shared corpus (skipped when it is absent) plus minimal files generated
here, so every target has seeds on any machine.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import resource
import signal
import tempfile
import time
import wave
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from extractors.errors import ErrorCode, ExtractionError
from extractors.limits import DEFAULT_LIMITS, Limits
from extractors.model import Document
from extractors.pipeline import extract_file
from extractors.portfolio import Result, extract_any
from extractors.sniff import sniff
from extractors.wordcount import CountMode
from tests import docgen
from tests.conftest import CORPUS
from tests.pdfgen import assemble

#: Codes an input may legitimately end in. Everything else is a finding.
BUG_CODES = frozenset({ErrorCode.INTERNAL, ErrorCode.PARSER_CRASHED, ErrorCode.TIMEOUT})
MAPPED_CODES = frozenset(ErrorCode) - BUG_CODES
#: Wall-clock budget for one in-process input. Seeds take < 0.2 s; 10 s leaves room for a loaded CI box.
TIME_BUDGET_S = float(os.environ.get("GATECHECK_FUZZ_TIME_BUDGET", "10"))
#: Peak RSS of the fuzzing process. The pytest process idles near 250 MiB with every parser loaded.
RSS_CAP_MB = int(os.environ.get("GATECHECK_FUZZ_RSS_MB", "1536"))
LIMITS: Limits = DEFAULT_LIMITS


class Finding(AssertionError):
    """An input broke the property: what happened, on which target."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    suffix: str  # the user's file name drives nothing but the template/binary-name tie-breaks in sniff
    corpus: tuple[str, ...]  # small real files, relative to the shared corpus
    generate: Callable[[], list[tuple[str, bytes]]]


# --- generated minimal seeds -----------------------------------------------------------------------------------


def minimal_pdf() -> bytes:
    """A one-page PDF with text, a link annotation, an outline entry and an embedded file."""
    content = b"BT /F1 18 Tf 72 720 Td (Project report) Tj ET BT /F1 11 Tf 72 690 Td (Watch the demo) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R /Names << /EmbeddedFiles << /Names [(a.txt) 8 0 R] >> >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R /Annots [<< /Type /Annot /Subtype /Link /Rect [70 685 200 700] "
        b"/A << /S /URI /URI (https://youtu.be/x) >> >>] >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
        b"<< /Title (Project report) /Parent 6 0 R /Dest [3 0 R /XYZ 0 792 0] >>",
        b"<< /Type /Filespec /F (a.txt) /EF << /F 9 0 R >> >>",
        b"<< /Type /EmbeddedFile /Length 5 >>\nstream\nhello\nendstream",
    ]
    return assemble(objects)


def minimal_docx() -> bytes:
    """Headings, a table, a text box, a footnote, a header and a hyperlink: most docx walker branches."""
    doc = docgen.Docx(footnotes={1: "A footnote."}, links={"rIdL": "https://example.org/demo"}, headers=["Header"])
    doc.add(
        docgen.p("Project report", "Title"),
        docgen.p("Introduction", "Heading1"),
        docgen.p(runs=docgen.r("Body text with a note.") + '<w:r><w:footnoteReference w:id="1"/></w:r>'),
        docgen.p(runs='<w:hyperlink r:id="rIdL"><w:r><w:t>demo</w:t></w:r></w:hyperlink>'),
        docgen.table([["KSB", "Evidence"], ["K1", "Report"]]),
        docgen.p(runs=docgen.text_box("Boxed text")),
        docgen.p("References", "Heading1"),
        docgen.p("Smith, J. (2020) A book."),
    )
    with tempfile.TemporaryDirectory(prefix="gc-fuzz-") as tmp:
        return doc.save(Path(tmp) / "seed.docx").read_bytes()


_PML = "http://schemas.openxmlformats.org/presentationml/2006/main"
_DML = "http://schemas.openxmlformats.org/drawingml/2006/main"
_RNS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_RT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _sp(ph: str, text: str) -> str:
    return (f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="{ph}"/><p:cNvSpPr/><p:nvPr><p:ph type="{ph}"/></p:nvPr>'
            f"</p:nvSpPr><p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>")


def minimal_pptx() -> bytes:
    """Two slides (title, body, table, link) and a notes page."""
    ns = f'xmlns:p="{_PML}" xmlns:a="{_DML}" xmlns:r="{_RNS}"'
    table = ('<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="4" name="T"/><p:cNvGraphicFramePr/><p:nvPr/>'
             '</p:nvGraphicFramePr><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/'
             'table"><a:tbl><a:tr><a:tc><a:txBody><a:bodyPr/><a:p><a:r><a:t>cell</a:t></a:r></a:p></a:txBody>'
             "</a:tc></a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>")
    link = ('<a:p><a:r><a:rPr><a:hlinkClick r:id="rIdL"/></a:rPr><a:t>demo</a:t></a:r></a:p>')
    body = _sp("body", "Body words here").replace("</a:p></p:txBody>", "</a:p>" + link + "</p:txBody>")
    slide1 = f"<p:sld {ns}><p:cSld><p:spTree>{_sp('title', 'Project')}{body}{table}</p:spTree></p:cSld></p:sld>"
    slide2 = f'<p:sld {ns} show="0"><p:cSld><p:spTree>{_sp("title", "Hidden")}</p:spTree></p:cSld></p:sld>'
    notes = f"<p:notes {ns}><p:cSld><p:spTree>{_sp('body', 'Speaker notes')}</p:spTree></p:cSld></p:notes>"

    def rels(*items: tuple[str, str, str]) -> str:
        body = "".join(f'<Relationship Id="{i}" Type="{_RT}/{t}" Target="{target}"'
                       + (' TargetMode="External"/>' if target.startswith("http") else "/>") for i, t, target in items)
        return f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{body}</Relationships>'

    ct = "application/vnd.openxmlformats-officedocument.presentationml"
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/ppt/presentation.xml" ContentType="{ct}.presentation.main+xml"/>'
        f'<Override PartName="/ppt/slides/slide1.xml" ContentType="{ct}.slide+xml"/>'
        f'<Override PartName="/ppt/slides/slide2.xml" ContentType="{ct}.slide+xml"/>'
        f'<Override PartName="/ppt/notesSlides/notesSlide1.xml" ContentType="{ct}.notesSlide+xml"/></Types>',
        "_rels/.rels": rels(("rId1", "officeDocument", "ppt/presentation.xml")),
        "ppt/presentation.xml": f'<p:presentation {ns}><p:sldIdLst><p:sldId id="256" r:id="rId2"/>'
        '<p:sldId id="257" r:id="rId3"/></p:sldIdLst></p:presentation>',
        "ppt/_rels/presentation.xml.rels": rels(("rId2", "slide", "slides/slide1.xml"),
                                                ("rId3", "slide", "slides/slide2.xml")),
        "ppt/slides/slide1.xml": slide1,
        "ppt/slides/_rels/slide1.xml.rels": rels(("rIdN", "notesSlide", "../notesSlides/notesSlide1.xml"),
                                                 ("rIdL", "hyperlink", "https://example.org/demo")),
        "ppt/slides/slide2.xml": slide2,
        "ppt/notesSlides/notesSlide1.xml": notes,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def minimal_wav(seconds: float = 0.05) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * int(8000 * seconds))
    return buf.getvalue()


def minimal_mp4() -> bytes:
    """Three 16x16 MPEG-4 frames muxed by PyAV: a real moov/mdat layout for the box walker and demuxer."""
    import av  # lazy: only the media target needs PyAV

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for n in range(3):
            frame = av.VideoFrame(16, 16, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([n * 40]) * plane.buffer_size)
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def minimal_portfolio() -> bytes:
    """Folders of evidence with a docx, a PDF, notes, a WAV and a nested zip: every branch of the portfolio walk."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/notes.md", "# Inner\nNested evidence.\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("portfolio/task1/report.docx", minimal_docx())
        zf.writestr("portfolio/task1/report.pdf", minimal_pdf())
        zf.writestr("portfolio/task2/notes.md", "# Notes\nObserved on site.\n")
        zf.writestr("portfolio/task2/clip.wav", minimal_wav())
        zf.writestr("portfolio/nested.zip", inner.getvalue())
        zf.writestr("__MACOSX/._report.docx", b"\x00\x05\x16\x07")
    return buf.getvalue()


def _media_seeds() -> list[tuple[str, bytes]]:
    return [("generated.wav", minimal_wav()), ("generated.mp4", minimal_mp4())]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("pdf", ".pdf", ("pdf/samplefiles_habibi_arabic.pdf", "pdf/pypdf_r2-owner-password_RC4.pdf",
                               "pdf/samplefiles_with-attachment.pdf", "bad/qpdf_issue-149_xref_loop.pdf",
                               "pdf/pdfplumber_libreoffice_tagged_with_outline.pdf"),
               lambda: [("generated.pdf", minimal_pdf())]),
        Target("docx", ".docx", ("docx/mammoth_utf8-bom.docx", "docx/mammoth_endnotes.docx",
                                 "docx/poi_61787_no_app_xml.docx", "docx/pythondocx_par-hlink-frags.docx",
                                 "docx/mammoth_text-box.docx", "docx/pandoc_comments.docx"),
               lambda: [("generated.docx", minimal_docx())]),
        Target("pptx", ".pptx", ("pptx/poi_bug60993_libreoffice.pptx", "pptx/pythonpptx_tbl-cell.pptx",
                                 "pptx/poi_SmartArt.pptx"),
               lambda: [("generated.pptx", minimal_pptx())]),
        Target("zip", ".zip", (), lambda: [("generated-portfolio.zip", minimal_portfolio())]),
        Target("media", ".mp4", ("media/-video-with-dash-.mp4", "media/pymediainfo_issue55.flv",
                                 "media/mutagen_alac.m4a", "media/tinytag_test.opus",
                                 "bad/truncated_pymediainfo_sample.mkv"),
               _media_seeds),
    )
}


@functools.cache
def seeds(target: str) -> tuple[tuple[str, bytes], ...]:
    """(label, bytes) of every seed of ``target``: the corpus files present, then the generated ones."""
    spec = TARGETS[target]
    found = [(rel, (CORPUS / rel).read_bytes()) for rel in spec.corpus if (CORPUS / rel).is_file()]
    return (*found, *spec.generate())


def all_seed_bytes() -> tuple[bytes, ...]:
    """Every target's seeds: splice donors, so a docx can grow a PDF tail or a portfolio a media member."""
    return tuple(data for name in TARGETS for _, data in seeds(name))


# --- the property ----------------------------------------------------------------------------------------------


def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux


def _serialisable(doc: Document) -> None:
    """As worker.tasks._put_json stores the model: a lone surrogate or a non-JSON value would fail there."""
    json.dumps(doc.to_dict(include_blocks=True), ensure_ascii=False, indent=2).encode("utf-8")


def _check_result(target: str, result: Result) -> str:
    bad = [e for e in result.errors if e["code"] not in MAPPED_CODES]
    if bad:
        raise Finding(f"{target}: portfolio entry ended in {bad[0]['code']}: {bad[0]['message']} ({bad[0]['file']})")
    for doc in result.documents:
        _serialisable(doc)
    return "ok" if not result.errors else "partial:" + ",".join(sorted({e["code"] for e in result.errors}))


def extract_outcome(target: str, path: Path, display: str) -> str:
    """Extract like the worker (sniff, then a zip is a portfolio); the outcome label or a ``Finding``."""
    try:
        found = sniff(path, LIMITS, display)
        if found.format == "zip":
            return _check_result(target, extract_any(path, display, CountMode.WORD, LIMITS))
        _serialisable(extract_file(path, display, limits=LIMITS, sniffed=found))
        return "ok"
    except ExtractionError as err:
        if err.code not in MAPPED_CODES:
            cause = err.__cause__
            detail = f" ({type(cause).__name__}: {cause})" if cause else ""
            raise Finding(f"{target}: ended in {err.code}: {err.message}{detail}") from (cause or err)
        return str(err.code)
    except Finding:
        raise
    except Exception as exc:
        raise Finding(f"{target}: {type(exc).__name__} escaped the wrappers: {exc}") from exc


def run_one(target: str, data: bytes, workdir: Path) -> str:
    """Write ``data`` as a file of ``target``'s kind, extract it in-process and check the property."""
    spec = TARGETS[target]
    path = workdir / f"input{spec.suffix}"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        outcome = extract_outcome(target, path, f"fuzz{spec.suffix}")
    finally:
        path.unlink(missing_ok=True)
    elapsed = time.perf_counter() - start
    if elapsed > TIME_BUDGET_S:
        raise Finding(f"{target}: took {elapsed:.1f} s (budget {TIME_BUDGET_S:.0f} s)")
    if (rss := peak_rss_mb()) > RSS_CAP_MB:
        raise Finding(f"{target}: peak RSS {rss} MiB (cap {RSS_CAP_MB} MiB)")
    return outcome


class Hang(BaseException):
    """Raised by the alarm in ``hard_deadline``; a BaseException so no ``except Exception`` swallows it."""


@contextlib.contextmanager
def hard_deadline(seconds: int) -> Iterator[None]:
    """Stop a Python-level hang (a parser loop) instead of blocking the test run; main thread only.

    A loop inside C code ignores the alarm until it returns to Python: the sandboxed test catches those.
    """

    def _alarm(_sig: int, _frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    # pytest-timeout's signal method uses the same timer: keep its deadline (an earlier one fires as a Hang).
    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001), interval)
