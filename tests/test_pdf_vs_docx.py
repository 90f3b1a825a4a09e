"""A PDF exported from a .docx counts within ±2% of the .docx itself.

LibreOffice (headless) exports real corpus documents to PDF; both files go
through gatecheck and their body+tables (+ text boxes, captions) words are
compared. Running headers/footers and page numbers in the PDF must be
recognised as such, or the PDF would over-count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from extractors import extract_file
from tests.conftest import CORPUS

pytestmark = [pytest.mark.corpus, pytest.mark.external]

DOCS = [
    "poi_stress016_privacy_notice.docx",  # 5 pages of plain report-like prose
    "poi_61787_no_app_xml.docx",  # headings
    "poi_Bug51170_mac_word2008.docx",  # header and images
    "poi_drawing_20pages.docx",  # 20 pages, tables, drawings
    "poi_heading123_stale_wordcount.docx",
]
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "gatecheck" / "samples" / "sample_project_report.docx"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice missing in CI: scripts/install.sh --dev must install it")
        pytest.skip("LibreOffice not installed")
    out = tmp_path_factory.mktemp("pdf")
    sources = [CORPUS / "docx" / n for n in DOCS if (CORPUS / "docx" / n).exists()] + [SAMPLE]
    subprocess.run(
        [soffice, "--headless", f"-env:UserInstallation=file://{out}/profile", "--convert-to", "pdf",
         "--outdir", str(out), *map(str, sources)],
        check=True, capture_output=True, timeout=300,
    )
    return out


def _counted(path: Path) -> int:
    parts = extract_file(path).words_by_part()
    return parts["body"] + parts["tables"] + parts["text_boxes"] + parts["captions"]


@pytest.mark.parametrize("name", [*DOCS, SAMPLE.name])
def test_pdf_counts_within_two_percent_of_its_docx(exported: Path, name: str) -> None:
    source = SAMPLE if name == SAMPLE.name else CORPUS / "docx" / name
    if not source.exists():
        pytest.skip("corpus file missing")
    pdf = exported / (Path(name).stem + ".pdf")
    docx_words, pdf_words = _counted(source), _counted(pdf)
    assert abs(pdf_words - docx_words) <= 0.02 * docx_words, f"docx {docx_words} vs pdf {pdf_words}"


def test_exported_sample_keeps_its_section_kinds(exported: Path) -> None:
    doc = extract_file(exported / "sample_project_report.pdf")
    kinds = {s.kind.value for s in doc.sections}
    assert {"references", "ksb_mapping"} <= kinds or {"references", "appendix"} <= kinds
