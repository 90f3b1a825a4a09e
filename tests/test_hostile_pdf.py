"""Reliability catalogue 7-10: hostile PDFs end in a typed error or a bounded read, in the sandbox; the pool lives on.

Each case from tests/hostile_pdf.py is written to a temp directory and parsed by
a sandboxed child under the catalogue's bar (512 MiB address space, 30 s). The
outcome must be one ``EXPECTED`` allows; a refusal must come from a limit, not
from running out of memory; the child's peak RSS (sampled from /proc while it
parses) must stay well below the cap; and the same pool must then read a good
PDF. The pool replaces its child after every input (``recycle_after=1``), so
each peak belongs to one case.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

import pypdf
import pypdf.filters
import pytest
from pypdf.errors import PdfReadError

from extractors import CountMode, Limits
from extractors.base import Context
from extractors.limits import MiB
from extractors.model import Document
from extractors.pdf import PdfExtractor
from extractors.pdf_preflight import PYPDF_CONFIGURATION
from extractors.portfolio import Result
from extractors.sandbox import SandboxPool, extract_any_sandboxed
from tests import hostile_pdf
from tests.conftest import ROOT

#: The catalogue's bar for hostile files.
HOSTILE = Limits(max_parse_seconds=30, max_parse_memory_bytes=512 * MiB)
#: A bomb must be refused by a limit well before the cap, not by reaching it.
PEAK_RSS_BOUND_MIB = HOSTILE.max_parse_memory_bytes * 3 // 4 // MiB

# The newest pypdf release with loop/bomb security fixes we could confirm, and the advisories behind the floor
# (pypdf's GitHub advisories, as cited by downstream dependency bumps, and its CHANGELOG / release notes "SEC"
# entries; looked up 2026-11): GHSA-4vvm-4w3v-6mr8 / CVE-2023-36464 (comment at
# EOF, 3.9.0); GHSA-jrm6-h9cq-8gqw (malformed-file loop); GHSA-7hfw-26vp-jp8m / CVE-2025-55197 (FlateDecode RAM,
# 6.0.0); GHSA-vr63-x8vc-m265 / CVE-2025-62707 (DCT inline image loop, 6.1.3); GHSA-jfx9-29x2-rv3j /
# CVE-2025-62708 and GHSA-m449-cwjh-6pw7 / CVE-2025-66019 (LZW RAM, 6.1.3 / 6.4.0); GHSA-4xc4-762w-m6cg /
# CVE-2026-22690 (missing /Root, huge /Size, 6.6.0); GHSA-2q4j-m29v-hq73 / CVE-2026-24688 (cyclic outlines,
# 6.6.2); GHSA-2rw7-x74f-jg35 / CVE-2026-27628 (circular xref /Prev, 6.7.2); GHSA-9m86-7pmv-2852 /
# CVE-2026-28804 (ASCIIHexDecode, 6.7.5); CVE-2026-31826 (/Length, 6.8.0); CVE-2026-33123 (array-based
# streams, 6.9.1); CVE-2026-48155 / CVE-2026-48156 (6.12.0); CVE-2026-48735 (XMP entities), CVE-2026-49460,
# CVE-2026-49461, GHSA-52x6-gq3r-vpf4 / CVE-2026-54530 and GHSA-m2v9-299j-rv96 / CVE-2026-54531 (loops, 6.13.0);
# GHSA-5xf7-4p34-54qr / CVE-2026-59936 and GHSA-g867-7843-wf8q / CVE-2026-59935 (inline-image loops, 6.14.2);
# CVE-2026-84310 / CVE-2026-84311 (outline and XForm blow-ups, 6.16.1); CVE-2026-119203..119209 (6.21.4); then
# 7.0.0 (XFA decoding work, image size limits, object-stream offsets) and 7.0.1 (image buffer sizes), the last
# release whose notes we found carry "SEC" entries.
PYPDF_SECURITY_FLOOR = (7, 0, 1)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


# --- measuring a child's peak RSS ---------------------------------------------------------------------------


class PeakRss:
    """Samples a process's VmHWM (peak RSS) from /proc until stopped; the last good sample is its peak so far."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return None
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is None:
                return
            self.peak_kib = max(self.peak_kib, value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_pdf.good(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def pool(good_pdf: Path) -> Iterator[SandboxPool]:
    """One pool for every case; a fresh child per input, so each measured peak is one case's."""
    sandbox = SandboxPool(memory_bytes=HOSTILE.max_parse_memory_bytes, recycle_after=1)
    assert_good_pdf_reads(sandbox, good_pdf)  # starts the first child
    yield sandbox
    sandbox.close()


def assert_good_pdf_reads(pool: SandboxPool, good_pdf: Path) -> None:
    result = extract_any_sandboxed(good_pdf, "good.pdf", CountMode.WORD, HOSTILE, pool=pool)
    assert result.errors == [], result.errors
    (doc,) = result.documents
    assert [b.text for b in doc.blocks] == [hostile_pdf.MARKER]


def outcome(result: Result) -> str:
    if result.errors:
        (error,) = result.errors
        return error["code"]
    (doc,) = result.documents
    return "ok" if doc.pages else "no pages"


def run_case(pool: SandboxPool, good_pdf: Path, tmp_path: Path, name: str) -> Result:
    """Parse one hostile case in the pool under the bar, check the outcome and bounds, then the good PDF."""
    path = hostile_pdf.CASES[name](tmp_path)
    (pid,) = pool.pids()  # the child that will parse this input (the pool keeps one ready)
    start = time.monotonic()
    with PeakRss(pid) as rss:
        result = extract_any_sandboxed(path, path.name, CountMode.WORD, HOSTILE, pool=pool)
    elapsed = time.monotonic() - start
    got = outcome(result)
    peak = max(rss.peak_mib, reported_peak_mib(pool, path.name))
    print(f"{name}: {got} in {elapsed:.2f} s, peak RSS {peak:.0f} MiB ({path.stat().st_size} B file)")
    assert got in hostile_pdf.EXPECTED[name], result.errors
    assert elapsed < HOSTILE.max_parse_seconds
    assert 0 < peak < PEAK_RSS_BOUND_MIB
    for error in result.errors:
        assert error["message"] and error["remedy"]
        assert "memory" not in error["message"], error  # refused by a limit, not by exhausting the cap
    for doc in result.documents:
        assert hostile_pdf.MARKER in " ".join(b.text for b in doc.blocks)  # the page was really read
    assert_good_pdf_reads(pool, good_pdf)
    return result


def reported_peak_mib(pool: SandboxPool, display: str) -> float:
    """The child's own VmHWM for this job, when the pool reports one (``last_stats``); sampling can miss a
    last-moment spike, this cannot."""
    stats = getattr(pool, "last_stats", None)
    if stats is None or getattr(stats, "display", None) != display:
        return 0.0
    return float(getattr(stats, "peak_rss_bytes", 0)) / MiB


def cases(number: int) -> list[str]:
    return [name for name, n in hostile_pdf.CATALOGUE.items() if n == number]


# --- 7: Flate bombs -------------------------------------------------------------------------------------------


@pytest.mark.catalogue(7)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", cases(7))
def test_flate_bombs_are_refused_or_read_bounded(pool: SandboxPool, good_pdf: Path, tmp_path: Path,
                                                 name: str) -> None:
    result = run_case(pool, good_pdf, tmp_path, name)
    if name.endswith("_attachment"):  # pypdf stops at its cap: the file is listed, its size unknown
        (doc,) = result.documents
        assert [(a.name, a.size) for a in doc.attachments] == [("bomb.bin", None)]
    else:  # what pdfium would inflate is measured first and refused
        assert "decompression bomb" in result.errors[0]["message"]


@pytest.mark.catalogue(7)
def test_bomb_payloads_really_expand_past_the_caps() -> None:
    """The generators' claims, checked by inflating under a cap: every Flate bomb passes 75 MB."""
    import zlib

    def inflated_past(data: bytes, layers: int, cap: int) -> bool:
        for _ in range(layers - 1):
            data = zlib.decompress(data)
        return len(zlib.decompressobj().decompress(data, cap + 1)) > cap

    cap = hostile_pdf.PYPDF_FILTER_CAP
    assert inflated_past(hostile_pdf.deflate_spaces(100 * hostile_pdf.MB), 1, cap)
    assert inflated_past(hostile_pdf.nested_flate(4 * hostile_pdf.GiB, 3), 3, cap)
    assert len(hostile_pdf.nested_flate(4 * hostile_pdf.GiB, 3)) < 2_000


# --- 8: LZW / RunLength / JBIG2 bombs, huge /Length -----------------------------------------------------------


@pytest.mark.catalogue(8)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", cases(8))
def test_filter_bombs_and_huge_lengths_are_refused_or_read_bounded(pool: SandboxPool, good_pdf: Path,
                                                                   tmp_path: Path, name: str) -> None:
    result = run_case(pool, good_pdf, tmp_path, name)
    if name.endswith("_attachment"):
        (doc,) = result.documents
        assert all(a.size is None for a in doc.attachments)


@pytest.mark.catalogue(8)
def test_lzw_and_runlength_payloads_expand_past_the_cap() -> None:
    from pypdf._codecs._codecs import LzwCodec
    from pypdf.filters import RunLengthDecode

    cap = hostile_pdf.PYPDF_FILTER_CAP
    assert len(LzwCodec(max_output_length=10**9).decode(hostile_pdf.lzw_run(16))) > cap
    with pypdf.apply_configuration(run_length_maximum_output_length=10**9):
        assert len(RunLengthDecode.decode(hostile_pdf.run_length(100 * hostile_pdf.MB))) > cap


@pytest.mark.catalogue(8)
def test_jbig2dec_is_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pypdf >= 7 names the external JBIG2 decoder in Configuration.jbig2dec_binary (pypdf.filters.JBIG2DEC_BINARY
    is its deprecated alias, ignored under disable_legacy_handling). Ours sets None, and wins even when the
    ambient configuration names a binary (as on a host with jbig2dec installed)."""
    assert PYPDF_CONFIGURATION["jbig2dec_binary"] is None
    assert PYPDF_CONFIGURATION["disable_legacy_handling"] is True
    calls: list[Any] = []

    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("pypdf tried to run an external decoder")

    monkeypatch.setattr(pypdf.filters, "subprocess", SimpleNamespace(run=no_subprocess))
    path = hostile_pdf.jbig2_bomb_attachment(tmp_path)
    doc = Document(file=path.name, format="pdf", sha256="", size=path.stat().st_size)
    with pypdf.apply_configuration(jbig2dec_binary="/usr/bin/jbig2dec"):
        PdfExtractor().extract(Context(path=path, display_name=path.name, limits=HOSTILE), doc)
        assert pypdf.get_configuration().jbig2dec_binary == "/usr/bin/jbig2dec"  # ours was scoped to the call
    assert calls == []
    assert [(a.name, a.size) for a in doc.attachments] == [("bomb.bin", None)]


# --- 9: CPU loops -----------------------------------------------------------------------------------------------


@pytest.mark.catalogue(9)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", cases(9))
def test_loop_regressions_end_within_the_deadline(pool: SandboxPool, good_pdf: Path, tmp_path: Path,
                                                  name: str) -> None:
    result = run_case(pool, good_pdf, tmp_path, name)
    if name.startswith("outline_"):  # the pages are read; the looping bookmarks are cut with a warning
        (doc,) = result.documents
        assert any("loop back on themselves" in w for w in doc.warnings), doc.warnings


@pytest.mark.catalogue(9)
def test_installed_pypdf_has_the_loop_and_bomb_fixes() -> None:
    assert _version(pypdf.__version__) >= PYPDF_SECURITY_FLOOR, pypdf.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (pin,) = [d for d in project["dependencies"] if re.match(r"pypdf\b", d)]
    assert _version(pin.split(">=")[1]) >= PYPDF_SECURITY_FLOOR[:2], pin  # a fresh install cannot go below it


@pytest.mark.catalogue(9)
def test_every_pypdf_limit_is_set_explicitly_and_never_looser() -> None:
    """An upgrade that adds a limit fails here until we choose its value; none of ours exceeds pypdf's default."""
    defaults = pypdf.Configuration()
    limits = [f.name for f in dataclasses.fields(pypdf.Configuration) if "maximum" in f.name]
    assert len(limits) > 20
    missing = [name for name in limits if name not in PYPDF_CONFIGURATION]
    assert not missing, missing
    looser = [name for name in limits if PYPDF_CONFIGURATION[name] > getattr(defaults, name)]
    assert not looser, looser
    with pypdf.apply_configuration(**PYPDF_CONFIGURATION) as applied:
        assert all(getattr(applied, name) == PYPDF_CONFIGURATION[name] for name in PYPDF_CONFIGURATION)


# --- 10: XMP entity expansion -------------------------------------------------------------------------------------


@pytest.mark.catalogue(10)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", cases(10))
def test_xmp_entities_are_never_expanded(pool: SandboxPool, good_pdf: Path, tmp_path: Path, name: str) -> None:
    """We never parse XMP: the page is read, memory stays bounded, and no expanded entity reaches any output."""
    result = run_case(pool, good_pdf, tmp_path, name)
    assert len(result.documents) == 1
    assert hostile_pdf.LAUGH * 2 not in repr(pickle.loads(pickle.dumps(result)))


@pytest.mark.catalogue(10)
def test_pypdf_refuses_the_xmp_entities_should_we_ever_read_xmp(tmp_path: Path) -> None:
    for name in cases(10):
        path = hostile_pdf.CASES[name](tmp_path)
        with pypdf.apply_configuration(**PYPDF_CONFIGURATION):
            reader = pypdf.PdfReader(path)
            with pytest.raises(PdfReadError, match="entities"):
                _ = reader.xmp_metadata


# --- the corpus itself ------------------------------------------------------------------------------------------


@pytest.mark.catalogue(9)
def test_catalogue_tables_agree_and_files_are_small(tmp_path: Path) -> None:
    assert set(hostile_pdf.CASES) == set(hostile_pdf.EXPECTED) == set(hostile_pdf.CATALOGUE)
    assert set(hostile_pdf.CATALOGUE.values()) == {7, 8, 9, 10}
    for name, make in hostile_pdf.CASES.items():
        path = make(tmp_path)
        assert path.parent == tmp_path and path.read_bytes().startswith(b"%PDF-")
        assert path.stat().st_size < 2 * MiB, name
        assert hostile_pdf.EXPECTED[name], name


@pytest.mark.catalogue(9)
def test_good_pdf_is_read_in_process(good_pdf: Path) -> None:
    """The baseline itself, outside the sandbox (so a sandbox fault cannot hide a broken baseline)."""
    doc = Document(file="good.pdf", format="pdf", sha256="", size=good_pdf.stat().st_size)
    PdfExtractor().extract(Context(path=good_pdf, display_name="good.pdf", limits=HOSTILE), doc)
    assert [b.text for b in doc.blocks] == [hostile_pdf.MARKER]
