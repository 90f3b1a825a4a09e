"""Hostile audio/video (reliability catalogue tests 20 and 21): typed outcomes, bounded time and memory.

The files come from tests/hostile_media.py (cut, flipped or patched corpus media, PyAV-written MKV/MXF and
hand-assembled Matroska). Each one goes through the production path, the sandbox, and must give an outcome from
``EXPECTED``; the pool must then read the next file. A fresh child per case measures the probe's time and peak RSS,
and an in-process run with every PyAV decode entry point booby-trapped shows probing never decodes.

A native crash cannot be produced on demand with PyAV 18.1 (the #2344 cut raises InvalidDataError when decoded, and
the probe never decodes anyway), so the "child dies on a signal" test uses the test-only faulty extractor of
tests/sandbox_faults.py. Whole-worker deaths on every attempt are tests/test_worker.py's
``test_poison_pill_ends_failed_without_looping`` (catalogue 25): the submission ends ``worker_crashed`` after
``max_attempts`` and the worker keeps draining the queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import av.audio.stream
import av.codec.context
import av.container
import av.packet
import av.video.stream
import pytest

from extractors import CountMode, Limits
from extractors.limits import MiB
from extractors.media import probe
from extractors.sandbox import SandboxPool, extract_any_sandboxed
from tests.conftest import corpus_file
from tests.hostile_media import CASES, CATALOGUE, EXPECTED, MILLION_HOURS_S, OK, outcome_of
from tests.test_sandbox import GOOD, fault_file
from tests.test_worker import embedded as worker_env  # noqa: F401  (a fixture: the worker bound to local backends)
from tests.test_worker import make_record, read_json

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(max_parse_seconds=30, max_parse_memory_bytes=512 * MiB)
#: Per-file bounds for the probe of a hostile file (it takes milliseconds; the slack is for a loaded CI box).
MAX_PROBE_S = 5.0
#: The same through the sandbox, a child start included (the sandbox's own deadline, LIMITS, is 30 s).
MAX_SANDBOXED_S = 10.0
#: Peak RSS a probing child may add over the same child probing a good file (interpreter + PyAV is ~70 MB).
MAX_EXTRA_RSS = 64 * MiB
MAX_RSS = 256 * MiB
FUZZ_INPUTS = int(os.environ.get("GATECHECK_MEDIA_FUZZ_INPUTS", "200"))
#: Mutation outcomes the probe may give: a MediaInfo or one of the codes it maps library errors to.
FUZZ_CODES = {"corrupt", "unsupported_format"}
CASES_20 = sorted(n for n in CASES if CATALOGUE[n] == 20)
CASES_21 = sorted(n for n in CASES if CATALOGUE[n] == 21)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    p = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes)
    yield p
    p.close()


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxPool]:
    p = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes, setup="tests.sandbox_faults")
    yield p
    p.close()


def sandboxed_outcome(pool: SandboxPool, path: Path) -> tuple[str, Any]:
    """``"ok"`` and the Media entry, or the error code, of one file read the production way (in the sandbox)."""
    result = extract_any_sandboxed(path, path.name, CountMode.WORD, LIMITS, pool=pool)
    if result.errors:
        (error,) = result.errors
        assert result.documents == [] and error["file"] == path.name and error["message"] and error["remedy"]
        return error["code"], error
    (doc,) = result.documents
    (media,) = doc.media
    return OK, media


def assert_good_media_reads(pool: SandboxPool) -> None:
    """Tika's "baseline after fault": the same pool reads a real video at once."""
    code, media = sandboxed_outcome(pool, corpus_file("media/mdn_rabbit320.mp4"))
    assert code == OK and media.kind == "video" and abs(media.duration_s - 7.8) < 0.1


def check_case(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    path = CASES[name](tmp_path)
    start = time.monotonic()
    code, found = sandboxed_outcome(pool, path)
    elapsed = time.monotonic() - start
    assert code in EXPECTED[name], (name, found)
    assert elapsed < MAX_SANDBOXED_S, (name, elapsed)
    if code == OK:
        assert found.kind in {"audio", "video"} and found.duration_s is not None and found.duration_s > 0
    assert_good_media_reads(pool)


# -- catalogue 20: native-crash shapes ----------------------------------------------------------------------------


@pytest.mark.catalogue(20)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", CASES_20)
def test_crash_shapes_give_a_typed_outcome_through_the_sandbox(pool: SandboxPool, tmp_path: Path, name: str) -> None:
    check_case(pool, tmp_path, name)


@pytest.mark.catalogue(20)
def test_mp4_cut_in_its_first_frame_keeps_the_header_and_warns(tmp_path: Path) -> None:
    """PyAV #2344's input: nothing is decoded, so the header's 7.8 s stands, with a truncation warning."""
    info = probe(CASES["mp4_cut_in_first_frame"](tmp_path), LIMITS)
    assert (info.kind, info.duration_source) == ("video", "header") and abs((info.duration_s or 0) - 7.8) < 0.1
    assert any("truncated" in w for w in info.warnings)


@pytest.mark.catalogue(20)
@pytest.mark.timeout(60)
def test_child_killed_by_a_signal_is_parser_crashed_and_the_pool_reads_the_next_media(
    faulty: SandboxPool, tmp_path: Path
) -> None:
    """The child really dies (SIGSEGV, as in PyAV #2344): one typed error, a new child, and media reads on."""
    code, media = sandboxed_outcome(faulty, corpus_file("media/mdn_rabbit320.mp4"))
    assert code == OK
    (before,) = faulty.pids()
    code, error = sandboxed_outcome(faulty, fault_file(tmp_path, "segfault"))
    assert code == "parser_crashed" and "SIGSEGV" in error["message"]
    assert faulty.pids() != [before]  # the dead child was replaced
    code, media = sandboxed_outcome(faulty, CASES["mp4_cut_in_first_frame"](tmp_path))
    assert code == OK and media.duration_source == "header"
    assert_good_media_reads(faulty)


@pytest.mark.catalogue(20)
@pytest.mark.timeout(120)
def test_worker_finishes_once_when_a_media_parser_crashes(
    worker_env: Any, faulty: SandboxPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """A crashing file is that file's error in a ``done`` report after one attempt: no retry, no requeue.

    (A crash that takes the whole worker down every time is test_worker's poison-pill test, catalogue 25.)
    """
    from extractors import sandbox
    from worker import tasks

    monkeypatch.setattr(sandbox, "default_pool", lambda limits: faulty)
    files = [("evidence/crash.txt", str(fault_file(tmp_path, "segfault"))),
             ("evidence/interview.mp4", str(CASES["mp4_cut_in_first_frame"](tmp_path))),
             ("evidence/clip.mp4", str(corpus_file("media/mdn_rabbit320.mp4"))),
             ("report.docx", GOOD)]
    sid = make_record(worker_env.state, worker_env.storage, files=files)
    assert tasks.process_submission(sid) == "done"
    rec = worker_env.state.get(sid)
    assert rec is not None and rec.attempts == 1
    extracted = read_json(worker_env.storage, rec.extracted_key)
    assert [(e["file"], e["code"]) for e in extracted["errors"]] == [("evidence/crash.txt", "parser_crashed")]
    media = {m["name"]: m for d in extracted["documents"] for m in d.get("media", [])}
    assert set(media) == {"evidence/interview.mp4", "evidence/clip.mp4"}
    assert tasks.process_submission(sid) == "duplicate"  # a redelivered message does not run it again
    assert worker_env.state.get(sid).attempts == 1


# -- catalogue 21: resource bombs ---------------------------------------------------------------------------------


@pytest.mark.catalogue(21)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", CASES_21)
def test_resource_bombs_give_a_typed_outcome_through_the_sandbox(pool: SandboxPool, tmp_path: Path,
                                                                 name: str) -> None:
    check_case(pool, tmp_path, name)


@pytest.mark.catalogue(21)
def test_million_hour_matroska_header_is_replaced_by_the_packet_scan(tmp_path: Path) -> None:
    """Matroska's Duration is one float anyone can write; the packets' timestamps say 7.8 s."""
    info = probe(CASES["mkv_duration_million_hours"](tmp_path), LIMITS)
    assert info.duration_source == "packet_scan" and abs((info.duration_s or 0) - 7.8) < 0.1
    (warning,) = info.warnings
    assert "claims 1,000,000 hours" in warning and "7.8 s" in warning


@pytest.mark.catalogue(21)
def test_million_hour_mp4_claim_is_kept_but_flagged(tmp_path: Path) -> None:
    """Header and sample tables agree on 10^6 hours: the claim stands, flagged (media_duration fails it)."""
    info = probe(CASES["mp4_duration_million_hours"](tmp_path), LIMITS)
    assert info.duration_source == "header" and info.duration_s == pytest.approx(MILLION_HOURS_S, rel=1e-3)
    (warning,) = info.warnings
    assert "claims 1,000,000 hours in a 834,563-byte file" in warning and "suspect" in warning


@pytest.mark.catalogue(21)
def test_stream_bombs_are_capped_by_ffmpeg(tmp_path: Path) -> None:
    """65 535 declared tracks become FFmpeg's default max_streams (1 000) streams, read in milliseconds."""
    for name in ("mkv_65535_streams", "mkv_1000_streams"):
        path = CASES[name](tmp_path)
        with av.open(str(path)) as container:
            assert len(container.streams) == 1000
        start = time.perf_counter()
        info = probe(path, LIMITS)
        assert time.perf_counter() - start < MAX_PROBE_S
        assert info.kind == "audio" and info.duration_s == pytest.approx(1.0)


def _measure(path: Path) -> tuple[dict[str, Any], int]:
    """Probe ``path`` in a fresh interpreter (sandbox RLIMIT_AS): its JSON line and its peak RSS in bytes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "tests.hostile_media", "measure", str(path)], cwd=ROOT, env=env,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    result = json.loads(proc.stdout)
    return result, int(result["peak_rss"])


@pytest.mark.catalogue(20)
@pytest.mark.catalogue(21)
@pytest.mark.timeout(300)
def test_every_case_probes_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """Each case in its own child: time under MAX_PROBE_S, peak RSS within MAX_EXTRA_RSS of a good file's."""
    _, baseline = _measure(corpus_file("media/mdn_rabbit320.mp4"))
    table = {}
    for name, make in CASES.items():
        folder = tmp_path / name
        folder.mkdir()
        result, peak = _measure(make(folder))
        table[name] = (result["outcome"], round(result["seconds"], 4), peak // MiB)
        assert result["outcome"] in EXPECTED[name], (name, result)
        assert result["seconds"] < MAX_PROBE_S, (name, result)
        assert peak < min(baseline + MAX_EXTRA_RSS, MAX_RSS), (name, peak // MiB, baseline // MiB)
    print(f"\nbaseline {baseline // MiB} MiB; case: (outcome, probe seconds, peak RSS MiB)")
    for name, row in table.items():
        print(f"  {name}: {row}")


_DECODERS = [(av.container.InputContainer, "decode"), (av.packet.Packet, "decode"),
             (av.codec.context.CodecContext, "decode"), (av.video.stream.VideoStream, "decode"),
             (av.audio.stream.AudioStream, "decode")]


@pytest.mark.catalogue(21)
def test_probing_never_decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PyAV decode entry point raises here, and every case still gives its expected outcome."""
    calls: list[str] = []

    def trap(owner: str) -> Any:
        def decode(*_: Any, **__: Any) -> Any:
            calls.append(owner)
            raise AssertionError(f"{owner}.decode called: the probe must never decode")
        return decode

    for cls, attr in _DECODERS:
        monkeypatch.setattr(cls, attr, trap(cls.__name__))
    for name, make in CASES.items():
        folder = tmp_path / name
        folder.mkdir()
        outcome, detail = outcome_of(make(folder), LIMITS)
        assert outcome in EXPECTED[name], (name, detail)
    for name in ("mdn_rabbit320.mp4", "moviepy_no_duration.webm", "mdn_viper.ogg"):  # the packet scan too
        assert outcome_of(corpus_file(f"media/{name}"), LIMITS)[0] == OK
    assert calls == []


@pytest.mark.catalogue(21)
@pytest.mark.timeout(300)
def test_mutation_fuzz_gives_only_mapped_codes() -> None:
    """A fixed-seed mutation loop (bit flips, byte runs, truncations, splices of 8 corpus files) in one child.

    Only a MediaInfo, ``corrupt`` or ``unsupported_format`` may come out; a native crash would end the child on
    a signal, and the last line names the input that did it. GATECHECK_MEDIA_FUZZ_INPUTS runs a longer loop.
    """
    for rel in ("media/mdn_rabbit320.mp4", "media/tinytag_flac453sStereo.flac"):
        corpus_file(rel)  # skip (not fail) without the corpus
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "tests.hostile_media", "fuzz", "2024", str(FUZZ_INPUTS)], cwd=ROOT,
                          env=env, capture_output=True, timeout=240, check=False)
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    last = rows[-1]["input"] if rows else "none"
    assert proc.returncode == 0, f"exit {proc.returncode} after {last}: {proc.stderr.decode()[-2000:]}"
    assert len(rows) == FUZZ_INPUTS
    outcomes = [r["outcome"] for r in rows]
    unmapped = [r for r in rows if not (r["outcome"].startswith(OK + ":") or r["outcome"] in FUZZ_CODES)]
    assert unmapped == []
    assert {o.split(":")[0] for o in outcomes} >= {OK, "corrupt"}  # the mutations do break files, and not all
    assert max(r["seconds"] for r in rows) < MAX_PROBE_S
