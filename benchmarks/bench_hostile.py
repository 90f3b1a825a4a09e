"""Every hostile input through the sandbox: outcome, wall time and the child's peak memory, per case.

Inputs: every file in ``../shared/corpus/bad/`` (expected codes from tests/test_bad_corpus.py) and
every generated case of every ``tests/hostile_*.py`` module (each has ``CASES``, ``EXPECTED`` and
``CATALOGUE``). Each runs through ``extract_any_sandboxed`` in one fresh ``SandboxPool`` with the
catalogue's bar (512 MiB RLIMIT_AS, 30 s deadline) and ``recycle_after=1``: every job gets a new
child, so a job's ``peak_rss_bytes`` (ru_maxrss, from the child or from ``wait4`` when it died) is
its own. A zip portfolio is several jobs (the expansion, then each member): its peak is the largest.

    python benchmarks/bench_hostile.py [--only SUBSTRING] [--no-corpus] [--modules hostile_office,...]

Markdown to stdout, progress to stderr. Exit status 1 if any case ends outside its expected set.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from extractors import CountMode, Limits  # noqa: E402
from extractors.limits import MiB  # noqa: E402
from extractors.sandbox import SandboxPool, extract_any_sandboxed  # noqa: E402
from tests.conftest import CORPUS  # noqa: E402

LIMITS = Limits(max_parse_seconds=30, max_parse_memory_bytes=512 * MiB)


@dataclass(frozen=True, slots=True)
class Case:
    group: str  # "corpus/bad" or the hostile_* module
    name: str
    catalogue: int | None
    expected: frozenset[str]
    build: Callable[[Path], Path]


@dataclass(frozen=True, slots=True)
class Row:
    case: Case
    outcome: str
    wall_s: float
    peak_mib: float
    jobs: int

    @property
    def ok(self) -> bool:
        return self.outcome in self.case.expected


def corpus_cases() -> list[Case]:
    from tests.test_bad_corpus import EXPECTED, READABLE

    bad = CORPUS / "bad"
    if not bad.is_dir():
        return []
    cases = []
    for path in sorted(bad.iterdir()):
        expected = frozenset({EXPECTED[path.name]}) if path.name in EXPECTED else frozenset({"ok"})
        if path.name not in EXPECTED and path.name not in READABLE:
            expected = frozenset()  # unknown to the test table: reported, never "expected"
        cases.append(Case("corpus/bad", path.name, None, expected, lambda _d, p=path: p))
    return cases


def module_cases(names: list[str] | None) -> tuple[list[Case], list[str]]:
    found = sorted(p.stem for p in (REPO / "tests").glob("hostile_*.py") if p.stem != "hostile_office_faults")
    cases, problems = [], []
    for stem in found:
        if names and stem not in names:
            continue
        try:
            module = importlib.import_module(f"tests.{stem}")
            table = (module.CASES, module.EXPECTED, module.CATALOGUE)
        except Exception as exc:  # a sibling module still being written must not stop the others
            problems.append(f"tests/{stem}.py not loaded: {type(exc).__name__}: {exc}")
            continue
        for name, build in table[0].items():
            cases.append(Case(stem, name, table[2].get(name), frozenset(table[1].get(name, ())), build))
    return cases, problems


def run(cases: list[Case]) -> list[Row]:
    rows = []
    pool = SandboxPool(memory_bytes=LIMITS.max_parse_memory_bytes, recycle_after=1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
            for n, case in enumerate(cases, 1):
                folder = Path(tmp) / f"{n:03d}"
                folder.mkdir()
                print(f"[{n}/{len(cases)}] {case.group} {case.name}", file=sys.stderr, flush=True)
                try:
                    path = case.build(folder)
                except BaseException as exc:  # pytest.skip() in a generator raises a BaseException
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    rows.append(Row(case, f"not built ({type(exc).__name__})", 0.0, 0.0, 0))
                    continue
                mark = len(pool.history)
                start = time.monotonic()
                result = extract_any_sandboxed(path, path.name, CountMode.WORD, LIMITS, pool=pool)
                wall = time.monotonic() - start
                jobs = list(pool.history)[mark:]
                outcome = result.errors[0]["code"] if result.errors else "ok"
                peak = max((j.peak_rss_bytes for j in jobs), default=0) / MiB
                rows.append(Row(case, outcome, wall, peak, len(jobs)))
    finally:
        pool.close()
    return rows


def table(rows: list[Row]) -> str:
    out = ["| case | catalogue | outcome | expected? | wall s | child peak MiB | jobs |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        expected = "yes" if r.ok else f"**NO** ({'/'.join(sorted(r.case.expected)) or 'unknown'})"
        number = str(r.case.catalogue) if r.case.catalogue is not None else "-"
        out.append(f"| {r.case.group}/{r.case.name} | {number} | {r.outcome} | {expected} | {r.wall_s:.2f} | "
                   f"{r.peak_mib:.0f} | {r.jobs} |")
    return "\n".join(out)


def worst(rows: list[Row], key: Callable[[Row], str], title: str) -> str:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    out = [f"| {title} | cases | unexpected | worst wall s (case) | worst child peak MiB (case) |",
           "|---|---|---|---|---|"]
    for g in sorted(groups, key=lambda k: (len(k), k)):
        rs = groups[g]
        slow = max(rs, key=lambda r: r.wall_s)
        big = max(rs, key=lambda r: r.peak_mib)
        bad = sum(not r.ok for r in rs)
        out.append(f"| {g} | {len(rs)} | {bad} | {slow.wall_s:.2f} ({slow.case.name}) | "
                   f"{big.peak_mib:.0f} ({big.case.name}) |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run cases whose group/name contains this")
    parser.add_argument("--no-corpus", action="store_true", help="skip ../shared/corpus/bad")
    parser.add_argument("--modules", help="comma-separated hostile_* modules (default: all)")
    args = parser.parse_args(argv)
    cases, problems = module_cases(args.modules.split(",") if args.modules else None)
    if not args.no_corpus:
        cases = corpus_cases() + cases
    if args.only:
        cases = [c for c in cases if args.only in f"{c.group}/{c.name}"]
    start = time.monotonic()
    rows = run(cases)
    print(f"## Hostile inputs through the sandbox ({LIMITS.max_parse_memory_bytes // MiB} MiB, "
          f"{LIMITS.max_parse_seconds} s, a fresh child per job)\n")
    print(table(rows))
    print("\n### Worst per group\n")
    print(worst(rows, lambda r: r.case.group, "group"))
    print("\n### Worst per catalogue test\n")
    print(worst(rows, lambda r: str(r.case.catalogue) if r.case.catalogue is not None else "-", "catalogue"))
    unexpected = [r for r in rows if not r.ok]
    print(f"\n{len(rows)} cases in {time.monotonic() - start:.0f} s; {len(unexpected)} outside their expected set.")
    for problem in problems:
        print(f"- {problem}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
