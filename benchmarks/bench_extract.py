"""Time gatecheck's extractors against a raw floor measured in the same run.

Method: /work/shared/reference/peer-extraction-baseline.md ("Method"). Every tool runs in this
process; ``gc.collect()`` runs before each call and ``time.perf_counter`` brackets the whole
``extract(path)``, opening the file included. A warm-up round records words and failures, then
N timed rounds run every file through every tool with the tool order rotated each round.

    python benchmarks/bench_extract.py [--rounds 5] [--formats docx,pptx,pdf] [--json out.json]

The corpus is ``../shared/corpus/{docx,pptx,pdf}`` from the repository root, or ``$GATECHECK_CORPUS``
(or ``--corpus``). See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import re
import statistics
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from extractors import ExtractionError, extract_file  # noqa: E402

FORMATS = ("docx", "pptx", "pdf")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML is an OLE compound file

W_NS = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
A_NS = ("http://schemas.openxmlformats.org/drawingml/2006/main", "http://purl.oclc.org/ooxml/drawingml/main")
SLIDE_RE = re.compile(r"^ppt/slides/slide(\d+)\.xml$")
NOTES_RE = re.compile(r"^ppt/notesSlides/notesSlide(\d+)\.xml$")

# A per-file word difference worth reporting: both relative and absolute.
ODD_REL = 0.25
ODD_ABS = 20


# --------------------------------------------------------------------------- raw floors


def _iter_text(stream: Any, namespaces: Sequence[str], text_tag: str, breaks: dict[str, str]) -> Iterator[str]:
    """Yield the text of every ``text_tag`` element and a separator for each break-like element."""
    tags = [f"{{{ns}}}{local}" for ns in namespaces for local in (text_tag, *breaks)]
    for _, el in etree.iterparse(stream, events=("end",), tag=tags, resolve_entities=False, no_network=True):
        local = etree.QName(el).localname
        if local == text_tag:
            if el.text:
                yield el.text
        else:
            yield breaks[local]
        el.clear()


def raw_docx(path: Path) -> str:
    """zipfile + lxml iterparse over word/document.xml, every w:t (transitional and Strict)."""
    with zipfile.ZipFile(path) as zf, zf.open("word/document.xml") as fh:
        return "".join(_iter_text(fh, W_NS, "t", {"p": "\n", "tab": "\t", "br": "\n", "cr": "\n"}))


def _pptx_parts(names: Iterable[str]) -> list[str]:
    slides = sorted((int(m[1]), n) for n in names if (m := SLIDE_RE.match(n)))
    notes = sorted((int(m[1]), n) for n in names if (m := NOTES_RE.match(n)))
    return [n for _, n in slides] + [n for _, n in notes]


def raw_pptx(path: Path) -> str:
    """zipfile + lxml iterparse of a:t over ppt/slides/slide*.xml and ppt/notesSlides/notesSlide*.xml."""
    out: list[str] = []
    with zipfile.ZipFile(path) as zf:
        for name in _pptx_parts(zf.namelist()):
            with zf.open(name) as fh:
                out.extend(_iter_text(fh, A_NS, "t", {"p": "\n", "br": "\n"}))
    return "".join(out)


def raw_pdf(path: Path) -> str:
    """pypdf: extract_text() of every page."""
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


# --------------------------------------------------------------------------- library baselines


def python_docx(path: Path) -> str:
    """python-docx: paragraphs and tables in body order; table cells once each, nested tables too."""
    import docx

    out: list[str] = []
    _docx_blocks(docx.Document(str(path)).iter_inner_content(), out)
    return "\n".join(out)


def _docx_blocks(items: Iterable[Any], out: list[str]) -> None:
    from docx.table import Table, _Cell

    for item in items:
        if isinstance(item, Table):
            for tc in item._tbl.iter_tcs():
                _docx_blocks(_Cell(tc, item).iter_inner_content(), out)
        else:
            out.append(item.text)


def python_pptx(path: Path) -> str:
    """python-pptx: every shape (groups recursed), table cells, and speaker notes."""
    from pptx import Presentation

    out: list[str] = []
    for slide in Presentation(str(path)).slides:
        _pptx_shapes(slide.shapes, out)
        if slide.has_notes_slide:
            frame = slide.notes_slide.notes_text_frame
            if frame is not None:
                out.append(frame.text)
    return "\n".join(out)


def _pptx_shapes(shapes: Iterable[Any], out: list[str]) -> None:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            _pptx_shapes(shape.shapes, out)
        elif shape.has_text_frame:
            out.append(shape.text_frame.text)
        elif getattr(shape, "has_table", False) and shape.has_table:
            out.extend(cell.text_frame.text for cell in shape.table.iter_cells())


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class Words:
    """Words a tool produced for one file: ``split`` = len(text.split()) over its whole output."""

    split: int
    total: int | None = None  # gatecheck only: doc.total_words() (Word-compatible, counted parts)


def words_of_text(text: object) -> Words:
    assert isinstance(text, str)
    return Words(split=len(text.split()))


def words_of_doc(doc: object) -> Words:
    text = "\n".join(b.text for b in doc.blocks)  # type: ignore[attr-defined]
    return Words(split=len(text.split()), total=doc.total_words())  # type: ignore[attr-defined]


def gatecheck(path: Path) -> object:
    return extract_file(path)


@dataclass(frozen=True, slots=True)
class Tool:
    key: str
    label: str
    run: Callable[[Path], object]
    words: Callable[[object], Words]
    floor: bool = False
    ours: bool = False


GATECHECK = Tool("gatecheck", "gatecheck `extract_file`", gatecheck, words_of_doc, ours=True)

TOOLS: dict[str, list[Tool]] = {
    "docx": [
        Tool("raw", "raw floor: zipfile + lxml iterparse (w:t)", raw_docx, words_of_text, floor=True),
        Tool("python-docx", "python-docx (paragraphs + tables, body order)", python_docx, words_of_text),
        GATECHECK,
    ],
    "pptx": [
        Tool("raw", "raw floor: zipfile + lxml iterparse (a:t, slides + notes)", raw_pptx, words_of_text, floor=True),
        Tool("python-pptx", "python-pptx (shapes incl. groups, tables, notes)", python_pptx, words_of_text),
        GATECHECK,
    ],
    "pdf": [
        Tool("raw", "raw floor: pypdf extract_text, every page", raw_pdf, words_of_text, floor=True),
        GATECHECK,
    ],
}


# --------------------------------------------------------------------------- corpus


@dataclass(slots=True)
class Corpus:
    fmt: str
    files: list[Path]
    password: list[str] = field(default_factory=list)  # skipped: needs a password
    encrypted_open: list[str] = field(default_factory=list)  # encrypted, but opens with no password (kept)


def corpus_root(arg: str | None) -> Path:
    root = arg or os.environ.get("GATECHECK_CORPUS") or str(REPO.parent / "shared" / "corpus")
    return Path(root).resolve()


def pdf_password_state(path: Path) -> str:
    """'plain', 'open' (encrypted, empty user password) or 'password' (needs one)."""
    from pypdf import PasswordType, PdfReader

    reader = PdfReader(path)
    if not reader.is_encrypted:
        return "plain"
    return "password" if reader.decrypt("") == PasswordType.NOT_DECRYPTED else "open"


def password_state(path: Path, fmt: str) -> str:
    if fmt == "pdf":
        try:
            return pdf_password_state(path)
        except Exception:
            return "plain"  # unreadable: let the tools report it
    with path.open("rb") as fh:
        return "password" if fh.read(8) == OLE_MAGIC else "plain"


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix)


def load_corpus(root: Path, fmt: str) -> Corpus:
    folder = root / fmt
    corpus = Corpus(fmt, [])
    for path in _files(folder, f".{fmt}"):
        state = password_state(path, fmt)
        if state == "password":
            corpus.password.append(path.name)
            continue
        if state == "open":
            corpus.encrypted_open.append(path.name)
        corpus.files.append(path)
    return corpus


# --------------------------------------------------------------------------- timing


@dataclass(slots=True)
class Run:
    """Everything measured for one format."""

    fmt: str
    tools: list[Tool]
    files: list[str]
    words: dict[str, dict[str, Words]] = field(default_factory=dict)  # tool -> file -> words
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # tool -> file -> error
    rejected: dict[str, str] = field(default_factory=dict)  # file -> gatecheck ExtractionError
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # tool -> file -> per round
    unmeasurable: dict[str, str] = field(default_factory=dict)  # tool -> why


def timed(tool: Tool, path: Path) -> tuple[float, object]:
    gc.collect()
    start = time.perf_counter()
    result = tool.run(path)
    return time.perf_counter() - start, result


def describe(exc: BaseException) -> str:
    if isinstance(exc, ExtractionError):
        return f"ExtractionError[{exc.code}]: {exc.message}"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def warm_up(run: Run, paths: dict[str, Path]) -> None:
    """One untimed pass: words, failures, gatecheck rejections; fills ``run.files``."""
    for tool in run.tools:
        run.words[tool.key], run.failures[tool.key], run.times[tool.key] = {}, {}, {}
    for name, path in paths.items():
        for tool in run.tools:
            if tool.key in run.unmeasurable:
                continue
            try:
                _, result = timed(tool, path)
            except ExtractionError as exc:
                if tool.ours:
                    run.rejected[name] = describe(exc)
                else:
                    run.failures[tool.key][name] = describe(exc)
                continue
            except Exception as exc:
                if tool.ours:  # not an ExtractionError: the extractor is missing or unfinished
                    run.unmeasurable[tool.key] = f"{name}: {describe(exc)}"
                else:
                    run.failures[tool.key][name] = describe(exc)
                continue
            run.words[tool.key][name] = tool.words(result)
            del result
    run.files = [n for n in paths if n not in run.rejected]
    ours = [t.key for t in run.tools if t.ours and t.key not in run.unmeasurable]
    if ours and not run.files:
        run.unmeasurable[ours[0]] = "every file was rejected with ExtractionError"


def ok_files(run: Run, key: str) -> list[str]:
    return [f for f in run.files if f not in run.failures[key] and f in run.words[key]]


def timed_rounds(run: Run, paths: dict[str, Path], rounds: int, progress: Callable[[str], None]) -> None:
    tools = [t for t in run.tools if t.key not in run.unmeasurable]
    for tool in tools:
        run.times[tool.key] = {f: [] for f in ok_files(run, tool.key)}
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        start = time.perf_counter()
        for name in run.files:
            for tool in order:
                if name in run.times[tool.key]:
                    seconds, result = timed(tool, paths[name])
                    del result
                    run.times[tool.key][name].append(seconds)
        took = time.perf_counter() - start
        progress(f"  {run.fmt} round {r + 1}/{rounds}: {took:.1f} s (order: {', '.join(t.key for t in order)})")


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class Row:
    tool: Tool
    files_ok: int
    files_all: int
    corpus_s: float
    words: int
    total_words: int | None
    ratio: float | None
    ratio_min: float | None
    ratio_max: float | None
    per_file_ratio: float | None


def summarise(run: Run, tool: Tool, floor: Tool) -> Row:
    files = [f for f in run.times[tool.key] if f in run.times[floor.key]]
    t, raw = run.times[tool.key], run.times[floor.key]
    rounds = len(next(iter(t.values()), []))
    per_round = [sum(t[f][r] for f in files) / sum(raw[f][r] for f in files) for r in range(rounds) if files]
    per_file = [statistics.median(t[f][r] / raw[f][r] for r in range(rounds)) for f in files if rounds]
    totals = [run.words[tool.key][f].total for f in files]
    return Row(
        tool=tool,
        files_ok=len(files),
        files_all=len(run.files),
        corpus_s=sum(statistics.median(t[f]) for f in files),
        words=sum(run.words[tool.key][f].split for f in files),
        total_words=sum(x or 0 for x in totals) if tool.ours else None,
        ratio=statistics.median(per_round) if per_round else None,
        ratio_min=min(per_round) if per_round else None,
        ratio_max=max(per_round) if per_round else None,
        per_file_ratio=statistics.median(per_file) if per_file else None,
    )


def rows_for(run: Run) -> list[Row]:
    floor = next(t for t in run.tools if t.floor)
    if floor.key in run.unmeasurable:
        return []
    return [summarise(run, t, floor) for t in run.tools if t.key not in run.unmeasurable]


def fmt_ratio(row: Row) -> str:
    if row.ratio is None or row.ratio_min is None or row.ratio_max is None:
        return "–"
    return f"{row.ratio:.2f} ({row.ratio_min:.2f}–{row.ratio_max:.2f})"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| tool | files ok | corpus s | words | ratio to floor, corpus time (min–max) | median per-file ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        label = f"{row.tool.label} **[floor]**" if row.tool.floor else row.tool.label
        per_file = "–" if row.per_file_ratio is None else f"{row.per_file_ratio:.2f}"
        files = f"{row.files_ok}/{row.files_all}"
        out.append(f"| {label} | {files} | {row.corpus_s:.3f} | {row.words} | {fmt_ratio(row)} | {per_file} |")
    return out


def odd_words(run: Run) -> list[tuple[str, int, Words]]:
    """Files where gatecheck's words (all blocks, split) differ a lot from the floor's."""
    floor = next(t.key for t in run.tools if t.floor)
    ours = next((t.key for t in run.tools if t.ours), None)
    if ours is None or ours in run.unmeasurable:
        return []
    out = []
    for name in run.files:
        a, b = run.words[floor].get(name), run.words[ours].get(name)
        if a is None or b is None:
            continue
        diff = abs(b.split - a.split)
        if diff >= ODD_ABS and diff > ODD_REL * max(a.split, 1):
            out.append((name, a.split, b))
    return out


def report(run: Run, corpus: Corpus, rounds: int) -> list[str]:
    out = [f"### {run.fmt.upper()} ({len(run.files)} files, {rounds} timed rounds)", ""]
    rows = rows_for(run)
    out += table(rows) if rows else ["(no rows: the floor could not be measured)"]
    ours = next((r for r in rows if r.tool.ours), None)
    if ours is not None:
        out += ["", f"gatecheck `total_words()` (Word-compatible count, counted parts only): {ours.total_words}"]
    out += ["", *notes(run, corpus)]
    return out


def notes(run: Run, corpus: Corpus) -> list[str]:
    out: list[str] = []
    for key, why in run.unmeasurable.items():
        out.append(f"- **{key}: not measurable** ({why})")
    if corpus.password:
        out.append(f"- skipped, needs a password: {', '.join(corpus.password)}")
    if corpus.encrypted_open:
        out.append(f"- encrypted but opens without a password (kept): {', '.join(corpus.encrypted_open)}")
    for name, why in run.rejected.items():
        out.append(f"- skipped, gatecheck rejects it: `{name}`: {why}")
    for key, failed in run.failures.items():
        for name, why in failed.items():
            out.append(f"- failure, {key} on `{name}`: {why}")
    for name, floor, ours in odd_words(run):
        detail = f"gatecheck {ours.split} (all blocks, split; total_words() {ours.total})"
        out.append(f"- words differ, `{name}`: floor {floor}, {detail}")
    return out or ["- no failures"]


def to_json(runs: list[Run], corpora: dict[str, Corpus], rounds: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": rounds,
        "python": platform.python_version(),
        "versions": versions(),
        "formats": {},
    }
    for run in runs:
        data["formats"][run.fmt] = {
            "files": run.files,
            "skipped_password": corpora[run.fmt].password,
            "encrypted_open": corpora[run.fmt].encrypted_open,
            "rejected_by_gatecheck": run.rejected,
            "unmeasurable": run.unmeasurable,
            "failures": run.failures,
            "rows": [row_json(r) for r in rows_for(run)],
            "per_file": per_file_json(run),
        }
    return data


def row_json(row: Row) -> dict[str, Any]:
    return {
        "tool": row.tool.key,
        "label": row.tool.label,
        "files_ok": row.files_ok,
        "files": row.files_all,
        "corpus_s": row.corpus_s,
        "words": row.words,
        "total_words": row.total_words,
        "ratio": row.ratio,
        "ratio_min": row.ratio_min,
        "ratio_max": row.ratio_max,
        "median_per_file_ratio": row.per_file_ratio,
    }


def per_file_json(run: Run) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in run.files:
        entry: dict[str, Any] = {}
        for tool in run.tools:
            w = run.words.get(tool.key, {}).get(name)
            t = run.times.get(tool.key, {}).get(name)
            entry[tool.key] = {
                "words": None if w is None else w.split,
                "total_words": None if w is None else w.total,
                "median_s": statistics.median(t) if t else None,
                "times_s": t,
            }
        out[name] = entry
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("lxml", "pypdf", "pypdfium2", "python-docx", "python-pptx", "gatecheck"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of docx,pptx,pdf")
    ap.add_argument("--corpus", default=None, help="corpus root (default $GATECHECK_CORPUS or ../shared/corpus)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the raw results as JSON")
    args = ap.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if bad := [f for f in args.formats if f not in FORMATS]:
        ap.error(f"unknown format(s): {', '.join(bad)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def bench_format(fmt: str, corpus: Corpus, rounds: int, progress: Callable[[str], None]) -> Run:
    paths = {p.name: p for p in corpus.files}
    run = Run(fmt, TOOLS[fmt], [])
    start = time.perf_counter()
    warm_up(run, paths)
    progress(f"  {fmt} warm-up: {time.perf_counter() - start:.1f} s, {len(run.files)} files")
    timed_rounds(run, paths, rounds, progress)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = corpus_root(args.corpus)
    if not root.is_dir():
        print(f"corpus not found: {root}", file=sys.stderr)
        return 2
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # same for every pypdf user; keeps stderr readable

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    runs, corpora = [], {}
    for fmt in args.formats:
        corpora[fmt] = load_corpus(root, fmt)
        runs.append(bench_format(fmt, corpora[fmt], args.rounds, progress))
    progress(f"total {time.perf_counter() - started:.0f} s")

    print(f"## Extraction time against the raw floor ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, corpus {root})\n")
    pkgs = ", ".join(f"{k} {v}" for k, v in versions().items())
    print(f"versions: {pkgs}, Python {platform.python_version()}; {os.cpu_count()} CPUs; {args.rounds} timed rounds\n")
    for run in runs:
        print("\n".join(report(run, corpora[run.fmt], args.rounds)) + "\n")
    if args.json:
        args.json.write_text(json.dumps(to_json(runs, corpora, args.rounds), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
