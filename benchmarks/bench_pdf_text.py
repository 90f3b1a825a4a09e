"""PDF page-text extraction: pypdfium2 vs pypdf ``extract_text`` vs ``pdftotext`` (and gatecheck's extractor).

Why: extractors/pdf.py reads page text with pypdfium2 and keeps pypdf for
structure only. This script is the evidence for that choice, measured the way
shared/reference/peer-extraction-baseline.md measures (so the numbers can sit
next to it):

- corpus: every PDF in ``<corpus>/pdf`` that pypdf does not report as
  encrypted (the baseline's 24 files);
- words: ``len(text.split())`` of each tool's whole output, as the baseline
  counts; a second column uses gatecheck's ``count_words``;
- timing: one warm-up round, then N rounds; in each round every file runs
  through every tool, with the tool order rotating, ``gc.collect()`` before each
  call. Corpus seconds = sum over files of the per-file median. The ratio to
  pypdf is sum(tool)/sum(pypdf) per round, median over rounds (min-max shown),
  so each ratio compares runs made seconds apart on this noisy machine.

The "gatecheck PdfExtractor" row is the whole extractor (preflight, pypdf
structure, pdfium text, layout), timed the same way; its words are its
non-header/footer blocks.

Run: ``python benchmarks/bench_pdf_text.py [--rounds 5] [--corpus PATH]``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pypdf  # noqa: E402
import pypdfium2 as pdfium  # noqa: E402

from extractors.base import Context  # noqa: E402
from extractors.limits import DEFAULT_LIMITS  # noqa: E402
from extractors.model import BlockKind, Document  # noqa: E402
from extractors.pdf import PdfExtractor  # noqa: E402
from extractors.wordcount import count_words  # noqa: E402

Tool = Callable[[Path], str]


def pdfium_text(path: Path) -> str:
    """What extractors/pdf_pages.py does for text: FPDFText_GetText per page."""
    pdf = pdfium.PdfDocument(str(path))
    try:
        out = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            out.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return "\n".join(out)
    finally:
        pdf.close()


def pypdf_text(path: Path) -> str:
    """The baseline's raw floor, exactly as it was timed."""
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)


def pdftotext_text(path: Path) -> str:
    """The baseline's subprocess call; process start-up is included, as there."""
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", "-q", str(path), "-"], capture_output=True, check=False)
    return done.stdout.decode("utf-8", errors="replace")


def gatecheck_text(path: Path) -> str:
    """The whole extractor; returns the text of the blocks that count (no headers/footers)."""
    doc = Document(file=path.name, format="pdf", sha256="", size=path.stat().st_size)
    PdfExtractor().extract(Context(path=path, display_name=path.name, limits=DEFAULT_LIMITS), doc)
    return "\n".join(b.text for b in doc.blocks if b.kind is not BlockKind.HEADER_FOOTER)


def corpus_files(corpus: Path) -> list[Path]:
    files = []
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        try:
            if not pypdf.PdfReader(path).is_encrypted:
                files.append(path)
        except pypdf.errors.PyPdfError:
            continue
    return files


def timed(tool: Tool, path: Path) -> tuple[float, str | None]:
    gc.collect()
    start = time.perf_counter()
    try:
        text: str | None = tool(path)
    except Exception as exc:  # a benchmark records failures, it does not stop on them
        print(f"  {tool.__name__} failed on {path.name}: {type(exc).__name__}", file=sys.stderr)
        text = None
    return time.perf_counter() - start, text


def run(files: list[Path], tools: dict[str, Tool], rounds: int) -> dict[str, dict[str, object]]:
    words: dict[str, dict[str, tuple[int, int] | None]] = {name: {} for name in tools}
    for path in files:  # warm-up round: page cache, imports, first-use costs; records the words
        for name, tool in tools.items():
            _, text = timed(tool, path)
            words[name][path.name] = None if text is None else (len(text.split()), count_words(text))
    per_file: dict[str, dict[str, list[float]]] = {name: {p.name: [] for p in files} for name in tools}
    round_totals: dict[str, list[float]] = {name: [] for name in tools}
    names = list(tools)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        totals = dict.fromkeys(names, 0.0)
        for path in files:
            for name in order:
                seconds, _ = timed(tools[name], path)
                per_file[name][path.name].append(seconds)
                totals[name] += seconds
        for name in names:
            round_totals[name].append(totals[name])
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {t:.2f}s" for n, t in totals.items()), file=sys.stderr)
    return summarise(files, names, words, per_file, round_totals)


def summarise(
    files: list[Path],
    names: list[str],
    words: dict[str, dict[str, tuple[int, int] | None]],
    per_file: dict[str, dict[str, list[float]]],
    round_totals: dict[str, list[float]],
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    base = round_totals.get("pypdf")
    for name in names:
        ok = [p.name for p in files if words[name][p.name] is not None]
        ratios = [t / b for t, b in zip(round_totals[name], base, strict=True)] if base else []
        out[name] = {
            "ok": len(ok),
            "seconds": sum(statistics.median(per_file[name][f]) for f in ok),
            "median_ms": 1000 * statistics.median(statistics.median(per_file[name][f]) for f in ok) if ok else 0.0,
            "words": sum(words[name][f][0] for f in ok),  # type: ignore[index]
            "count_words": sum(words[name][f][1] for f in ok),  # type: ignore[index]
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_range": (min(ratios), max(ratios)) if ratios else None,
        }
    return out


def print_table(results: dict[str, dict[str, object]], n_files: int, rounds: int) -> None:
    print(f"\nPDF corpus: {n_files} files (not encrypted), {rounds} timed rounds after a warm-up round\n")
    print(
        "| tool | files ok | median ms/file | corpus s (sum of per-file medians) | words (split) | words "
        "(count_words) | ratio to pypdf, corpus time (min-max over rounds) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f} ({r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f})"  # type: ignore[index]
        print(
            f"| {name} | {r['ok']}/{n_files} | {r['median_ms']:.1f} | {r['seconds']:.2f} | {r['words']} "
            f"| {r['count_words']} | {ratio} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpus = Path(os.environ.get("GATECHECK_CORPUS", ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--corpus", type=Path, default=default_corpus)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-extractor", action="store_true", help="skip the full gatecheck PdfExtractor row")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # pypdf logs every repair it makes; not what is being timed
    files = corpus_files(args.corpus)
    if not files:
        sys.exit(f"no PDFs under {args.corpus / 'pdf'}")
    tools: dict[str, Tool] = {"pypdf": pypdf_text, "pypdfium2": pdfium_text}
    if shutil.which("pdftotext"):
        tools["pdftotext"] = pdftotext_text
    else:
        print("pdftotext not found: its row is skipped", file=sys.stderr)
    if not args.no_extractor:
        tools["gatecheck PdfExtractor"] = gatecheck_text
    print_table(run(files, tools, args.rounds), len(files), args.rounds)
    print(f"\npypdf {pypdf.__version__}, pypdfium2 {pdfium.PYPDFIUM_INFO} (pdfium {pdfium.PDFIUM_INFO})")


if __name__ == "__main__":
    main()
