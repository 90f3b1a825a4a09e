"""Reliability catalogue 11-19: hostile Office packages and zip portfolios end in typed errors, bounded.

Cases are built by tests/hostile_office.py. Each is read in-process (``extract_any``) and through the
sandbox: a child under the catalogue's bar (512 MiB RLIMIT_AS, 30 s deadline). After every hostile
file the same pool must read a known-good document (Tika's "baseline after fault"). The pool retires
its child after every job, so each job's ``peak_rss_bytes`` is that job's alone.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from lxml import etree

from extractors import CountMode, Limits, Result, safexml, zipscan
from extractors.errors import ErrorCode, ExtractionError
from extractors.limits import MiB
from extractors.portfolio import extract_any
from extractors.sandbox import JobStats, SandboxPool, extract_any_sandboxed
from gatecheck.cli import main as cli_main
from tests import hostile_office as H

#: The catalogue's bar for a hostile file.
LIMITS = Limits(max_parse_seconds=30, max_parse_memory_bytes=512 * MiB)
#: Only where a deliberate hang is the point: the deadline is under test, not its length.
SHORT = Limits(max_parse_seconds=3, max_parse_memory_bytes=512 * MiB)
#: A refusal from the directory alone must not grow the child past an idle interpreter by more than this.
FLAT_BYTES = 32 * MiB
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes, recycle_after=1)
    yield pool
    pool.close()


def outcome(result: Result) -> str:
    return result.errors[0]["code"] if result.errors else "ok"


def assert_typed(result: Result, expected: frozenset[str]) -> None:
    assert result.errors, f"a hostile input was read without complaint: {result.documents}"
    assert outcome(result) in expected, result.errors
    for error in result.errors:
        assert error["code"] != ErrorCode.INTERNAL and error["message"] and error["remedy"], error


def assert_good_document_reads(pool: SandboxPool, folder: Path) -> JobStats:
    good = H.good_docx(folder, f"baseline-{uuid.uuid4().hex[:8]}.docx")
    result = pool.extract(good, good.name, CountMode.WORD, LIMITS)
    good.unlink()
    assert result.errors == []
    (doc,) = result.documents
    assert any(H.MARKER in block.text for block in doc.blocks)
    assert pool.last_stats is not None
    return pool.last_stats


def read_both(pool: SandboxPool, path: Path, expected: frozenset[str]) -> tuple[Result, Result, list[JobStats]]:
    """In-process and sandboxed: the same typed outcome, within the bar; then the pool reads a good document."""
    inside = extract_any(path, path.name, CountMode.WORD, LIMITS)
    assert_typed(inside, expected)
    mark = len(pool.history)
    start = time.monotonic()
    boxed = extract_any_sandboxed(path, path.name, CountMode.WORD, LIMITS, pool=pool)
    assert time.monotonic() - start < LIMITS.max_parse_seconds
    jobs = list(pool.history)[mark:]
    assert_typed(boxed, expected)
    assert outcome(boxed) == outcome(inside)
    assert jobs and all(j.peak_rss_bytes < LIMITS.max_parse_memory_bytes for j in jobs)
    assert_good_document_reads(pool, path.parent)
    return inside, boxed, jobs


# -- 11: XXE, general entity ------------------------------------------------------------------------------------


@pytest.mark.catalogue(11)
@pytest.mark.parametrize("name", H.of_catalogue(11))
def test_11_external_general_entity_never_reaches_output(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    token = f"GATECHECK-CANARY-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(token + "\n")
    build: Any = H.CASES[name]
    path = build(tmp_path, url=secret.as_uri())
    with zipfile.ZipFile(path) as zf:
        part = zf.read(H.XXE_PART[name])
    leaky = etree.fromstring(part, etree.XMLParser(resolve_entities=True))  # the payload is live: this leaks it
    assert token in etree.tostring(leaky, encoding="unicode")
    inside, boxed, _ = read_both(pool, path, H.EXPECTED[name])
    for result in (inside, boxed):
        assert token not in repr(result)
        assert H.XXE_PART[name] in result.errors[0]["message"]
    (tmp_path / "as-catalogued").mkdir()
    catalogued = build(tmp_path / "as-catalogued")  # file:///etc/hostname, as the catalogue words it
    result = extract_any(catalogued, catalogued.name, CountMode.WORD, LIMITS)
    assert_typed(result, H.EXPECTED[name])
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if len(hostname) >= 6:  # too short a name could occur in any message by chance
        assert hostname not in repr(result)


@pytest.mark.catalogue(11)
def test_a_dtd_hidden_by_an_encoding_is_still_refused() -> None:
    """The byte check sees UTF-8 only, so every part is transcoded first: UTF-16, UTF-7 and EBCDIC cannot hide one."""
    doc = '<?xml version="1.0" encoding="{}"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]><x>&e;</x>'
    hidden = {
        "utf-16": doc.format("UTF-16").encode("utf-16"),
        "utf-16-be without BOM": doc.format("UTF-16").encode("utf-16-be"),
        "utf-7": doc.format("UTF-7").encode("ascii").replace(b"<!DOCTYPE", b"+ADw-!DOCTYPE"),
        "ebcdic": doc.format("cp037").encode("cp037"),
    }
    for label, data in hidden.items():
        with pytest.raises(ExtractionError) as err:
            safexml.parse(data, label)
        assert err.value.code is ErrorCode.HOSTILE_XML, label
    assert safexml.parse('<?xml version="1.0" encoding="UTF-16"?><x>£</x>'.encode("utf-16"), "p").text == "£"
    assert safexml.parse('<?xml version="1.0" encoding="ISO-8859-1"?><x>caf\xe9</x>'.encode("latin-1"), "p").text \
        == "caf\xe9"


# -- 12: XXE, external parameter entity + canary ----------------------------------------------------------------


class Canary:
    """A loopback HTTP server that records every request path it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'<!ENTITY exfil "PWNED">')

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


@pytest.mark.catalogue(12)
def test_12_external_parameter_entity_makes_no_request(pool: SandboxPool, tmp_path: Path, canary: Canary) -> None:
    with urllib.request.urlopen(canary.url("/probe"), timeout=5) as reply:  # the canary hears whoever asks
        reply.read()
    assert canary.paths == ["/probe"]
    canary.paths.clear()
    path = H.xxe_parameter_entity(tmp_path, canary.url("/evil.dtd"))
    inside, boxed, _ = read_both(pool, path, H.EXPECTED["xxe_parameter_entity"])
    assert "PWNED" not in repr(inside) + repr(boxed)
    with zipfile.ZipFile(path) as zf:  # below the byte check, the parser as configured fetches nothing either
        part = zf.read("word/document.xml")
    with contextlib.suppress(etree.XMLSyntaxError):
        etree.fromstring(part, safexml._PARSER)
    time.sleep(0.2)
    assert canary.paths == []


# -- 13: billion laughs, depth, huge text -----------------------------------------------------------------------


@pytest.mark.catalogue(13)
@pytest.mark.parametrize("name", H.of_catalogue(13))
def test_13_entity_bombs_depth_and_huge_text_are_bounded(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    path = H.CASES[name](tmp_path)
    _, boxed, jobs = read_both(pool, path, H.EXPECTED[name])
    assert "lollollol" not in repr(boxed)
    assert max(j.peak_rss_bytes for j in jobs) < 256 * MiB


@pytest.mark.catalogue(13)
def test_13_libxml2_default_limits_decide_no_huge_tree(tmp_path: Path) -> None:
    """10 000 000 characters per text node and 256 levels: libxml2's defaults, which huge_tree would lift."""
    def parse(body: str) -> str:
        try:
            safexml.parse(H.document_xml(body).encode(), "word/document.xml")
        except ExtractionError as err:
            return err.code
        return "ok"

    assert parse(H._run("x" * 9_999_000)) == "ok"
    assert parse(H._run("x" * 10_000_001)) == ErrorCode.TOO_LARGE
    assert parse('<w:customXml w:element="x">' * 240 + "</w:customXml>" * 240) == "ok"
    assert parse('<w:customXml w:element="x">' * 300 + "</w:customXml>" * 300) == ErrorCode.HOSTILE_XML
    with pytest.raises(etree.XMLSyntaxError, match="Text node too long"):  # what lxml itself says, unparsed by us
        etree.fromstring(b"<a>" + b"x" * 20_000_000 + b"</a>", safexml._PARSER)
    import base64

    text = base64.b64encode(os.urandom(6_000_000)).decode()  # 8 MB of varied text in one run: a real, odd document
    path = H._docx_with(tmp_path, "big_run.docx", {"word/document.xml": H.document_xml(H._run(text)).encode()})
    (doc,) = extract_any(path, path.name, CountMode.WORD, LIMITS).documents
    assert doc.blocks[0].text == text


# -- 14: Office zip bombs -----------------------------------------------------------------------------------------


@pytest.mark.catalogue(14)
@pytest.mark.parametrize("name", H.of_catalogue(14))
def test_14_office_zip_bomb_is_refused_from_the_directory_with_flat_memory(
    pool: SandboxPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = H.CASES[name](tmp_path)
    opened: list[object] = []
    directories: list[object] = []
    real_open, real_directory = zipfile.ZipFile.open, zipfile.ZipFile._RealGetContents

    def counting_open(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return real_open(self, *args, **kwargs)

    def counting_directory(self: zipfile.ZipFile) -> None:
        directories.append(self)
        real_directory(self)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting_directory)
    result = extract_any(path, path.name, CountMode.WORD, LIMITS)
    monkeypatch.undo()
    assert outcome(result) == "zip_bomb", result.errors
    assert opened == []  # refused before a single part was inflated
    if "100k" in name:
        assert directories == []  # ... and before zipfile built 100 000 ZipInfo objects
    baseline = assert_good_document_reads(pool, tmp_path)
    _, _, jobs = read_both(pool, path, H.EXPECTED[name])
    (job,) = jobs
    assert job.jobs_served == 1 and job.outcome == "zip_bomb"
    assert job.peak_rss_bytes < baseline.peak_rss_bytes + FLAT_BYTES  # not the 1 GiB (or 64 MiB) the bomb holds


# -- 15: corrupt Office zips -------------------------------------------------------------------------------------

#: What the plain libraries raise on each case: the shapes python-docx #1561 lets escape.
RAISES: dict[str, type[BaseException]] = {
    "corrupt_zlib_error": zlib.error,
    "corrupt_eof": EOFError,
    "corrupt_truncated_stream": zipfile.BadZipFile,
    "corrupt_crc": zipfile.BadZipFile,
    "missing_main_part": KeyError,
    "missing_content_types": KeyError,
    "no_central_directory": zipfile.BadZipFile,
}


@pytest.mark.catalogue(15)
@pytest.mark.parametrize("name", H.of_catalogue(15))
def test_15_corrupt_office_zip_is_corrupt_never_a_crash(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    path = H.CASES[name](tmp_path)
    with pytest.raises(RAISES[name]):
        if RAISES[name] is KeyError:
            docx = pytest.importorskip("docx")
            docx.Document(str(path))
        else:
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    zf.read(member)
    read_both(pool, path, H.EXPECTED[name])


# -- 16: portfolio traversal -------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size) for p in root.rglob("*")}


@pytest.mark.catalogue(16)
def test_16_traversal_members_refuse_the_portfolio_and_touch_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    area = tmp_path / "area"  # a relative 'evil' or 'C:\\evil' would land here (the cwd) or in scratch's parent
    scratch = area / "scratch" / "tmp"  # every temp dir of the parent and of the children
    scratch.mkdir(parents=True)
    (area / "canary").mkdir()
    (area / "canary" / "keep.txt").write_text("untouched\n")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    paths = {name: H.CASES[name](inputs) for name in H.of_catalogue(16)}
    good = H.good_docx(inputs)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.chdir(area)
    before = snapshot(tmp_path)
    box = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes)  # started now: its children use scratch too
    try:
        for name, path in paths.items():
            for result in (extract_any(path, path.name, CountMode.WORD, LIMITS),
                           extract_any_sandboxed(path, path.name, CountMode.WORD, LIMITS, pool=box)):
                assert_typed(result, H.EXPECTED[name])
                assert result.documents == []  # the whole portfolio is refused, its good member too
            good_read = box.extract(good, good.name, CountMode.WORD, LIMITS)
            assert good_read.errors == [] and good_read.documents
    finally:
        box.close()
    assert snapshot(tmp_path) == before
    assert not Path("/abs/evil").exists()
    assert not any(p.name in ("evil", "C:\\evil", "..\\evil") for p in Path(tempfile.gettempdir()).iterdir())


# -- 17: overlap bomb, and the startup self-test -----------------------------------------------------------------


@pytest.mark.catalogue(17)
@pytest.mark.parametrize("name", H.of_catalogue(17))
def test_17_overlap_bomb_is_zip_bomb(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    path = H.CASES[name](tmp_path)
    with zipfile.ZipFile(path) as zf:  # the sample really is a working overlap: every entry inflates on its own
        infos = zf.infolist()
        assert len({i.header_offset for i in infos}) == len(infos) >= 2
        if not _runtime_has_overlap_check():
            assert all(len(zf.read(i)) == i.file_size for i in infos)
    read_both(pool, path, H.EXPECTED[name])


def _runtime_has_overlap_check() -> bool:
    """gh-109858 (CVE-2024-0450) shipped in 3.11.8, 3.12.2 and 3.13.0."""
    v = sys.version_info[:3]
    return v >= (3, 13, 0) or (3, 12, 2) <= v < (3, 13, 0) or (3, 11, 8) <= v < (3, 12, 0)


@pytest.mark.catalogue(17)
def test_17_selftest_reports_the_prescan_and_the_runtime_check() -> None:
    report = zipscan.selftest()
    assert report.prescan_refuses_overlap
    assert report.runtime_refuses_overlap == _runtime_has_overlap_check()
    if report.runtime_refuses_overlap:
        assert zipscan.selftest(require_runtime_check=True).runtime_refuses_overlap
    else:  # e.g. this venv's 3.11.7: the production image can insist on a patched runtime
        with pytest.raises(RuntimeError, match="gh-109858"):
            zipscan.selftest(require_runtime_check=True)


@pytest.mark.catalogue(17)
def test_17_selftest_fails_when_the_prescan_stops_catching_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipscan, "_check_layout", lambda zf, infos: None)
    with pytest.raises(RuntimeError, match="CVE-2024-0450"):
        zipscan.selftest()


@pytest.mark.catalogue(17)
def test_17_selftest_runs_where_the_worker_and_the_cli_start(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from worker import celery_app

    calls: list[str] = []
    monkeypatch.setattr(zipscan, "selftest", lambda **_: calls.append("selftest"))
    assert celery_app._zip_selftest in [ref() for _, ref in signals.worker_init.receivers]
    celery_app._zip_selftest()
    assert calls == ["selftest"]
    assert cli_main(["extract", "--sample", "--format", "json", "--no-progress"]) == 0
    capsys.readouterr()
    assert calls == ["selftest", "selftest"]


@pytest.mark.catalogue(17)
def test_17_selftest_sees_a_patched_runtime(tmp_path: Path) -> None:
    """Under an interpreter with gh-109858 (pyenv's 3.13 here), the same code reports the runtime check present."""
    found = sorted(Path.home().glob(".pyenv/versions/3.1[3-9].*/bin/python"))  # real binaries, not pyenv shims
    if not found:
        pytest.skip("no Python >= 3.13 interpreter on this machine")
    python = str(found[0])
    pkg = tmp_path / "extractors"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for module in ("errors.py", "limits.py", "zipscan.py"):  # zipscan needs nothing else: no lxml, no olefile
        shutil.copy(ROOT / "extractors" / module, pkg / module)
    code = "from extractors.zipscan import selftest; r = selftest(); print(r.prescan_refuses_overlap, " \
        "r.runtime_refuses_overlap)"
    out = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "True"]


# -- 18: forged sizes, zipfile.Path loops ------------------------------------------------------------------------


@pytest.mark.catalogue(18)
@pytest.mark.parametrize("name", H.of_catalogue(18))
def test_18_forged_headers_are_refused_by_the_prescan(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    read_both(pool, H.CASES[name](tmp_path), H.EXPECTED[name])


def _zipfile_path_sanitizes() -> bool:
    """gh-122905 (CVE-2024-8088) shipped in 3.11.10, 3.12.5 and 3.13.0."""
    v = sys.version_info[:3]
    return v >= (3, 13, 0) or (3, 12, 5) <= v < (3, 13, 0) or (3, 11, 10) <= v < (3, 12, 0)


@pytest.mark.catalogue(18)
@pytest.mark.timeout(120)
def test_18_a_naive_reader_in_the_sandbox_hits_rlimit_or_the_deadline(tmp_path: Path) -> None:
    """Without the pre-scan (tests/hostile_office_faults.py reads like a naive library), the sandbox still bounds it."""
    naive = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes, setup="tests.hostile_office_faults")
    try:
        note = tmp_path / "read.txt"
        note.write_text(f"NAIVE read {H.forged_compress_size(tmp_path)}\n")
        result = naive.extract(note, note.name, CountMode.WORD, LIMITS)
        assert outcome(result) == "too_large", result.errors  # zipfile asked for 2 GiB: RLIMIT_AS said no
        assert "memory" in result.errors[0]["message"]
        assert_good_document_reads(naive, tmp_path)
        walk = tmp_path / "walk.txt"
        walk.write_text(f"NAIVE walk {H.zipfile_path_loop(tmp_path)}\n")
        start = time.monotonic()
        result = naive.extract(walk, walk.name, CountMode.WORD, SHORT)
        if _zipfile_path_sanitizes():
            assert outcome(result) == "ok"
        else:  # this runtime loops for ever: the deadline ends it
            assert outcome(result) == "timeout"
            assert time.monotonic() - start < SHORT.max_parse_seconds + 5
        assert_good_document_reads(naive, tmp_path)
    finally:
        naive.close()


@pytest.mark.catalogue(18)
def test_extractors_never_use_zipfile_path() -> None:
    """CVE-2024-8088 lives in zipfile.Path only; nothing here walks archives with it."""
    for source in (ROOT / "extractors").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "zipfile.Path" not in text and "import zipp" not in text, source.name


# -- 19: nesting, duplicates, encryption -------------------------------------------------------------------------


@pytest.mark.catalogue(19)
@pytest.mark.parametrize("name", H.of_catalogue(19))
def test_19_nested_duplicate_and_encrypted_members_get_their_own_code(pool: SandboxPool, tmp_path: Path,
                                                                       name: str) -> None:
    read_both(pool, H.CASES[name](tmp_path), H.EXPECTED[name])


@pytest.mark.catalogue(19)
def test_19_nesting_limit_is_exact_and_stricter_than_clamav(pool: SandboxPool, tmp_path: Path) -> None:
    depth = Limits().max_zip_depth
    assert depth <= 16  # ClamAV's MaxRecursion; a gateway portfolio needs a zip inside a zip at most
    at_limit = tmp_path / "at_limit.zip"
    at_limit.write_bytes(H.nested(depth))
    inside = extract_any(at_limit, at_limit.name, CountMode.WORD, LIMITS)
    boxed = extract_any_sandboxed(at_limit, at_limit.name, CountMode.WORD, LIMITS, pool=pool)
    for result in (inside, boxed):
        assert result.errors == []
        (doc,) = result.documents
        assert doc.file == "at_limit.zip/level2.zip/notes.md" and H.MARKER in doc.blocks[-1].text
    past = tmp_path / "past.zip"
    past.write_bytes(H.nested(depth + 1))
    assert outcome(extract_any(past, past.name, CountMode.WORD, LIMITS)) == "zip_bomb"


@pytest.mark.catalogue(19)
def test_19_an_encrypted_member_is_refused_alone(pool: SandboxPool, tmp_path: Path) -> None:
    path = H.encrypted_member(tmp_path)
    for result in (extract_any(path, path.name, CountMode.WORD, LIMITS),
                   extract_any_sandboxed(path, path.name, CountMode.WORD, LIMITS, pool=pool)):
        assert [(e["code"], e["file"]) for e in result.errors] == [("encrypted", f"{path.name}/portfolio/secret.md")]
        assert [d.file for d in result.documents] == [f"{path.name}/portfolio/report.md"]


@pytest.mark.catalogue(19)
def test_19_nested_archives_share_one_expansion_budget(tmp_path: Path) -> None:
    """Zips of zips cannot multiply the size limit: the second 600 KiB inner zip exceeds a 1 MiB budget."""
    inner = H._zip({"a.md": b"# a\n" + b"x" * (600 * 1024)})
    outer = tmp_path / "outer.zip"
    outer.write_bytes(H._zip({"one/inner.zip": inner, "two/inner.zip": inner}))
    tight = Limits(max_zip_total_bytes=1 * MiB + 2 * len(inner), max_parse_seconds=30)
    result = extract_any(outer, outer.name, CountMode.WORD, tight)
    assert [d.file for d in result.documents] == ["outer.zip/one/inner.zip/a.md"]
    assert [(e["code"], e["file"]) for e in result.errors] == [("zip_bomb", "outer.zip/two/inner.zip")]
    box = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes)
    try:
        boxed = extract_any_sandboxed(outer, outer.name, CountMode.WORD, tight, pool=box)
    finally:
        box.close()
    assert [d.file for d in boxed.documents] == [d.file for d in result.documents]
    assert [(e["code"], e["file"]) for e in boxed.errors] == [(e["code"], e["file"]) for e in result.errors]


@pytest.mark.catalogue(11)
def test_each_xml_layer_refuses_a_dtd_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transcoding exposes the DTD to the byte check; the post-parse check catches one that got past anyway."""
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'.encode("utf-16")
    assert b"<!DOCTYPE" not in doc and b"<!DOCTYPE" in safexml.to_utf8(doc, "p")
    monkeypatch.setattr(safexml, "_DTD", __import__("re").compile(rb"(?!)"))  # a byte check that never matches
    with pytest.raises(ExtractionError, match="declares a DTD") as err:
        safexml.parse(doc, "p")
    assert err.value.code is ErrorCode.HOSTILE_XML
