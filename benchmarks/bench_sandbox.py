"""What parsing in a sandboxed child costs per document, over the docx corpus.

For each file: the median of ``--rounds`` in-process ``extract_any`` calls and the
median of ``--rounds`` calls through a warm ``SandboxPool`` (the steady state: the
child is reused until recycled). Overhead per document = sandboxed minus
in-process; the report gives its median (and p90) over files. It also times a
fresh child per document (``recycle_after=1``: the cost after every failure) and
the one-off pool start.

    python benchmarks/bench_sandbox.py [--rounds 5] [--formats docx]

Run from anywhere; the corpus is ``../shared/corpus`` or ``$GATECHECK_CORPUS``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from timing import median_seconds  # noqa: E402  (benchmarks/ is the script directory)

from extractors import CountMode, Limits  # noqa: E402
from extractors.portfolio import extract_any  # noqa: E402
from extractors.sandbox import SandboxPool  # noqa: E402

LIMITS = Limits()


def corpus_files(corpus: Path, formats: list[str]) -> list[Path]:
    """Readable corpus files (ones that extract without error in-process)."""
    files = [p for fmt in formats for p in sorted((corpus / fmt).iterdir()) if p.is_file()]
    return [p for p in files if not extract_any(p, p.name, CountMode.WORD, LIMITS).errors]


def per_file(pool: SandboxPool, files: list[Path], rounds: int) -> list[tuple[str, float, float]]:
    """(name, in-process s, sandboxed s) per file."""
    rows = []
    for path in files:
        inside = median_seconds(lambda p=path: extract_any(p, p.name, CountMode.WORD, LIMITS), rounds)
        sandboxed = median_seconds(lambda p=path: pool.extract(p, p.name, CountMode.WORD, LIMITS), rounds)
        rows.append((path.name, inside, sandboxed))
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(files: list[Path], rounds: int) -> None:
    start = time.perf_counter()
    pool = SandboxPool()
    pool.extract(files[0], "warm-up", CountMode.WORD, LIMITS)
    first = time.perf_counter() - start
    rows = per_file(pool, files, rounds)
    pool.close()
    overhead = sorted(s - i for _, i, s in rows)
    fresh_pool = SandboxPool(recycle_after=1)
    fresh_pool.extract(files[0], "warm-up", CountMode.WORD, LIMITS)
    fresh = [s - i for _, i, s in per_file(fresh_pool, files[:10], rounds)]
    fresh_pool.close()
    print(f"- pool start + first document: {ms(first)}")
    print(f"- in-process, median over files: {ms(statistics.median(i for _, i, _ in rows))}")
    print(f"- sandboxed (warm child), median over files: {ms(statistics.median(s for _, _, s in rows))}")
    print(f"- **overhead per document (warm child): median {ms(statistics.median(overhead))}, "
          f"p90 {ms(overhead[int(0.9 * (len(overhead) - 1))])}, max {ms(overhead[-1])}**")
    print(f"- overhead with a fresh child per document (after a failure): median {ms(statistics.median(fresh))}")
    slowest = max(rows, key=lambda r: r[2] - r[1])
    print(f"- largest overhead: {slowest[0]} ({ms(slowest[1])} in-process, {ms(slowest[2])} sandboxed)\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--formats", default="docx")
    parser.add_argument("--corpus", type=Path,
                        default=Path(os.environ.get("GATECHECK_CORPUS", REPO.parent / "shared" / "corpus")))
    args = parser.parse_args()
    files = corpus_files(args.corpus, args.formats.split(","))
    print(f"# Sandbox overhead: {len(files)} {args.formats} files, median of {args.rounds} rounds each\n")
    report(files, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
