"""Property-based fuzzing of our extraction wrappers (reliability-anchors.md (b) 40 (ii), §6).

Why: the bad corpus pins the failures someone already found; these tests look for the next one. Seeds
are small real files and generated minimal files (tests/fuzz/targets.py); structure-aware mutators
(tests/fuzz/mutators.py) flip and splice bytes, truncate, edit zip members, damage XML tags inside
docx/pptx parts and swap PDF tokens. The property: extraction returns a result or raises
``ExtractionError`` with a mapped code (never ``internal_error``, the safety net for an untranslated
library exception), within a time budget and an RSS cap.

The in-process tests are fast and shrink failures; a smaller batch runs through the sandbox, where a
native crash (SIGSEGV in FFmpeg or pdfium) is visible as ``parser_crashed`` instead of killing pytest.
Inputs that once broke the property live in tests/data/fuzz_regressions/ and are replayed below.

Runs are reproducible: derandomized, no example database. ``GATECHECK_FUZZ_EXAMPLES`` raises the
example count per target for a longer campaign (see tests/data/fuzz_regressions/README.md).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from extractors.errors import ExtractionError
from extractors.limits import DEFAULT_LIMITS
from extractors.pdf_preflight import preflight
from extractors.sandbox import SandboxPool, extract_any_sandboxed
from extractors.wordcount import CountMode
from tests.fuzz import mutators, targets
from tests.fuzz.targets import BUG_CODES, MAPPED_CODES, TARGETS, TIME_BUDGET_S

pytestmark = [pytest.mark.catalogue(40), pytest.mark.filterwarnings("ignore")]

#: Examples per target in CI: 1.5-9 s per target (zip portfolios are the slowest). Raise for longer campaigns.
EXAMPLES = int(os.environ.get("GATECHECK_FUZZ_EXAMPLES", "800"))
#: Unset in CI (derandomized: the same inputs every run); a campaign sets it to explore different inputs.
SEED = int(os.environ["GATECHECK_FUZZ_SEED"]) if os.environ.get("GATECHECK_FUZZ_SEED") else None
#: Mutants per target replayed in sandboxed children (each failed parse costs a fresh child, ~0.2 s).
SANDBOX_EXAMPLES = max(8, EXAMPLES // 50)
#: Seconds of coverage-guided fuzzing per target in CI (5 targets: ~20 s plus ~1.5 s start-up each).
ATHERIS_SECONDS = int(os.environ.get("GATECHECK_ATHERIS_SECONDS", "4"))
ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).parent / "data" / "fuzz_regressions"
#: file -> (target, the outcome it must now have). Every file is explained in the README beside it.
REGRESSION_OUTCOMES: dict[str, tuple[str, str]] = {
    "docx-forged-extract-version-notimplemented.docx": ("docx", "corrupt"),
    "zip-forged-extract-version-notimplemented.zip": ("zip", "partial:corrupt"),
    "media-flv-stream-added-mid-demux-indexerror.flv": ("media", "ok"),
}


class DrawChooser:
    """Mutation choices drawn from Hypothesis, so a failing mutant shrinks to a small edit."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def below(self, n: int) -> int:
        return self._draw(st.integers(0, n - 1)) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self._draw(st.binary(max_size=max_len))


@st.composite
def mutants(draw: st.DrawFn, target: str) -> tuple[str, bytes]:
    """(seed label, mutated bytes): one seed of ``target`` after 1-3 stacked mutations."""
    label, original = draw(st.sampled_from(targets.seeds(target)))
    return label, mutators.mutate_many(original, DrawChooser(draw), targets.all_seed_bytes())


@pytest.fixture(autouse=True)
def _quiet_parsers() -> Iterator[None]:
    """pypdf logs every repair; thousands of mutants would bury a real failure (the sandbox child does the same)."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _fuzz_in_process(target: str, workdir: Path) -> dict[str, int]:
    """Run ``EXAMPLES`` Hypothesis mutants of ``target``; returns how many ended in each outcome."""
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=timedelta(seconds=TIME_BUDGET_S), derandomize=SEED is None,
              database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
    @seed(SEED)
    @given(case=mutants(target))
    def run(case: tuple[str, bytes]) -> None:
        _, data = case
        with targets.hard_deadline(int(3 * TIME_BUDGET_S)):
            outcome = targets.run_one(target, data, workdir)
        outcomes[outcome.split(":")[0]] = outcomes.get(outcome.split(":")[0], 0) + 1

    run()
    return outcomes


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_reach_the_parsers(target: str, tmp_path: Path) -> None:
    """Unmutated seeds extract cleanly, so mutants start from inputs that get past sniffing into the parser."""
    outcomes = {label: targets.run_one(target, data, tmp_path) for label, data in targets.seeds(target)}
    generated = [label for label in outcomes if label.startswith("generated")]
    assert generated, f"{target} has no generated seed"
    assert all(outcomes[label] == "ok" for label in generated), outcomes
    assert sum(o == "ok" for o in outcomes.values()) >= len(outcomes) - 1, outcomes


def test_mutators_reach_past_the_container(tmp_path: Path) -> None:
    """Guards the fuzzer's depth: edited OOXML parts are re-zipped readable (so lxml and our walkers see them),
    and token-edited PDFs with a rebuilt xref pass the preflight (so pypdf and pdfium see them)."""
    docx, pdf = targets.minimal_docx(), targets.minimal_pdf()
    original = dict((i.filename, body) for i, body in mutators.read_zip(docx) or [])
    edited_parts = 0
    for n in range(200):
        members = mutators.read_zip(mutators.mutate_zip(docx, mutators.RandomChooser(n))) or []
        edited_parts += any(original.get(i.filename, b) != b for i, b in members if i.filename.endswith(".xml"))
    assert edited_parts >= 30, edited_parts
    passed = 0
    for n in range(100):
        chooser = mutators.RandomChooser(n)
        path = tmp_path / f"m{n}.pdf"
        path.write_bytes(mutators.repair_pdf_xref(mutators.mutate_pdf(pdf, chooser)))
        try:
            preflight(path, DEFAULT_LIMITS)
            passed += 1
        except ExtractionError:
            pass
    assert passed >= 50, passed


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutants_end_in_a_result_or_a_mapped_error(target: str, tmp_path: Path) -> None:
    """In-process, per-example deadline, RSS cap: no exception outside the mapped set, ever."""
    outcomes = _fuzz_in_process(target, tmp_path)
    ran = sum(outcomes.values())
    assert ran >= min(EXAMPLES, 50), f"only {ran} examples ran: {outcomes}"
    assert outcomes.get("ok", 0) + outcomes.get("partial", 0) > 0, f"no mutant of {target} was readable: {outcomes}"
    assert set(outcomes) - {"ok", "partial"} <= {str(c) for c in MAPPED_CODES}, outcomes
    assert targets.peak_rss_mb() <= targets.RSS_CAP_MB


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    pool = SandboxPool(memory_bytes=DEFAULT_LIMITS.max_parse_memory_bytes)
    yield pool
    pool.close()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_sandboxed_mutants_never_crash_or_hang(target: str, tmp_path: Path, pool: SandboxPool) -> None:
    """Native crashes kill the interpreter (PyAV #2344), so a batch runs in the real sandboxed children."""
    limits = DEFAULT_LIMITS.__class__(max_parse_seconds=int(3 * TIME_BUDGET_S))
    seeds, donors = targets.seeds(target), targets.all_seed_bytes()
    suffix = TARGETS[target].suffix
    answered = 0
    for n in range(SANDBOX_EXAMPLES):
        chooser = mutators.RandomChooser(7919 * n + len(target))
        data = mutators.mutate_many(mutators.pick(chooser, seeds)[1], chooser, donors)
        path = tmp_path / f"mutant{n:04d}{suffix}"
        path.write_bytes(data)
        started = time.perf_counter()
        result = extract_any_sandboxed(path, path.name, CountMode.WORD, limits, pool=pool)
        elapsed = time.perf_counter() - started
        bad = [e for e in result.errors if e["code"] in {str(c) for c in BUG_CODES}]
        assert not bad, f"mutant {n} of {target} ({len(data)} bytes, kept at {path}): {bad}"
        assert elapsed <= 3 * TIME_BUDGET_S, f"mutant {n} of {target} took {elapsed:.1f} s"
        assert {e["code"] for e in result.errors} <= {str(c) for c in MAPPED_CODES}
        answered += 1
        path.unlink()
    assert answered == SANDBOX_EXAMPLES


def _atheris_command(target: str, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "tests.fuzz.atheris_harness", target, f"-max_total_time={ATHERIS_SECONDS}",
            "-seed=1", f"-timeout={int(TIME_BUDGET_S)}", f"-rss_limit_mb={targets.RSS_CAP_MB}",
            f"-artifact_prefix={workdir}/", "-print_final_stats=1", str(workdir / "corpus")]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_harness_runs_clean(target: str, tmp_path: Path) -> None:
    """A short coverage-guided run per target, as a subprocess: libFuzzer exits 0 only if no input raised
    outside the mapped set, ran over ``-timeout`` or pushed RSS over ``-rss_limit_mb`` (it writes a
    crash-/timeout-/oom- file for any of those)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
           "TMPDIR": str(tmp_path), "GATECHECK_ATHERIS_INSTRUMENT": "extractors"}  # pypdf's adds ~8 s start-up
    proc = subprocess.run(_atheris_command(target, tmp_path), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=ATHERIS_SECONDS * 4 + 120, check=False)
    log = proc.stderr[-6000:]
    artifacts = sorted(p.name for glob in ("crash-*", "timeout-*", "oom-*", "leak-*") for p in tmp_path.glob(glob))
    assert proc.returncode == 0 and not artifacts, f"exit {proc.returncode}, artifacts {artifacts}:\n{log}"
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    assert runs and int(runs.group(1)) > len(targets.seeds(target)), log
    peak = re.search(r"stat::peak_rss_mb:\s*(\d+)", proc.stderr)
    assert peak and int(peak.group(1)) <= targets.RSS_CAP_MB, log


def test_every_regression_fixture_is_listed_and_explained() -> None:
    files = sorted(p.name for p in REGRESSIONS.iterdir() if p.name != "README.md")
    assert files == sorted(REGRESSION_OUTCOMES)
    readme = (REGRESSIONS / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in files)


@pytest.mark.parametrize("name", sorted(REGRESSION_OUTCOMES))
def test_fuzz_regression_replays(name: str, tmp_path: Path) -> None:
    """Each input that once escaped the mapped set now ends in the outcome its fix gave it."""
    target, expected = REGRESSION_OUTCOMES[name]
    with targets.hard_deadline(int(3 * TIME_BUDGET_S)):
        outcome = targets.run_one(target, (REGRESSIONS / name).read_bytes(), tmp_path)
    assert outcome == expected
