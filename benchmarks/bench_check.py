"""Full check time of a typical ST0505 AM1 + AM2 submission vs extracting the same files.

The submission is built from real corpus material: a 2,000-word report written from
real prose (tests/reports.py) with a KSB mapping appendix, a real deck with speaker
notes, and a portfolio of the real DevOps apprentice's evidence pieces plus real
media. Reports the median over rounds of: extraction alone, check (extraction +
all checks) for AM1 and AM2, and the ratio check/extraction.

Usage: python benchmarks/bench_check.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import median_seconds  # noqa: E402  (benchmarks/ is the script directory)

from extractors import extract_paths  # noqa: E402
from tests.conftest import CORPUS  # noqa: E402
from tests.reports import report  # noqa: E402
from validators import api, profile  # noqa: E402
from validators.nlp import nlp  # noqa: E402

AM1_KSBS = "K3 S2 S3 B3 K4 K5 S5 S6 B1 K6 S7 K15 K16 S9 K17 S10 K22 S14 B2".split()
AM1_ROWS = [["KSB", "Where evidenced"], *[[k, "Plan"] for k in AM1_KSBS]]


def build(tmp: Path) -> tuple[list[Path], list[Path]]:
    am1 = [report(tmp / "project_report.docx", 2000, mapping=AM1_ROWS),
           tmp / "presentation.pptx"]
    shutil.copy(CORPUS / "pptx" / "poi_HowWeRefactor_28slides_27notes.pptx", am1[1])
    folder = tmp / "portfolio"
    for n, md in enumerate(sorted((CORPUS / "epa").glob("benfielding74_evidence_*.md")), start=1):
        (folder / f"task{n}").mkdir(parents=True)
        shutil.copy(md, folder / f"task{n}" / md.name)
    (folder / "task5").mkdir()
    shutil.copy(CORPUS / "media" / "mdn_rabbit320.mp4", folder / "task5" / "demo.mp4")
    shutil.copy(CORPUS / "epa" / "benfielding74_DevOps_work-mapping-table_KSB.md", folder / "ksb_mapping.md")
    (folder / "declaration.md").write_text(
        "# Authenticity declaration\nI confirm this portfolio is my own work.\n"
        "Signed: A. Apprentice (apprentice)\nSigned: B. Manager (employer, line manager)\n")
    return am1, [folder]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prof = profile.find("ST0505", "Accelerate")[0]
    nlp()  # load the pipeline once, as a worker does at start
    with tempfile.TemporaryDirectory() as raw:
        am1, am2 = build(Path(raw))
        for method, paths in (("AM1", am1), ("AM2", am2)):
            api.check_paths(paths, prof, method)  # warm-up
            ext = median_seconds(lambda p=paths: extract_paths(p), args.rounds)
            chk = median_seconds(lambda p=paths, m=method: api.check_paths(p, prof, m), args.rounds)
            outcome = api.check_paths(paths, prof, method).outcome
            print(f"| {method} | {len(extract_paths(paths).documents)} docs | extract {ext * 1000:.0f} ms | "
                  f"check {chk * 1000:.0f} ms | ratio {chk / ext:.2f} | outcome {outcome} |")


if __name__ == "__main__":
    main()
