"""Run the reliability catalogue's tests and print the closing table: group, catalogue tests, test cases, passed.

    .venv/bin/python benchmarks/catalogue_report.py [pytest args...]

Every test marked ``catalogue(n)`` runs (``pytest -m catalogue``); the conftest hook writes one JSON line
per test, and this groups them by catalogue group (A request validation ... E load, fuzzing, GDPR).
The worst time and memory per hostile file come from ``benchmarks/bench_hostile.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_catalogue import GROUPS, group_of  # noqa: E402

TITLES = {"A": "Request validation (1-6)", "B": "Hostile documents (7-22)", "C": "Faults and durability (23-33)",
          "D": "API security, idempotency, tenancy (34-38)", "E": "Load, fuzzing, GDPR (39-40)"}


def run(pytest_args: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "catalogue.jsonl"
        env = {**os.environ, "GATECHECK_CATALOGUE_REPORT": str(out), "CI": os.environ.get("CI", "1")}
        cmd = [sys.executable, "-m", "pytest", "-m", "catalogue", "-q", "-p", "no:cacheprovider", *pytest_args]
        subprocess.run(cmd, cwd=ROOT, env=env, check=False)
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def table(rows: list[dict]) -> str:
    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        for group in sorted({group_of(n) for n in row["catalogue"]}):
            by_group[group].append(row)
    lines = ["| group | catalogue tests covered | test cases | passed | failed | skipped | slowest case |",
             "|---|---|---|---|---|---|---|"]
    for group in GROUPS:
        got = by_group.get(group, [])
        covered = sorted({n for r in got for n in r["catalogue"] if n in GROUPS[group]})
        count = {k: sum(r["outcome"] == k for r in got) for k in ("passed", "failed", "skipped")}
        slowest = max((r["seconds"] for r in got), default=0.0)
        lines.append(f"| {TITLES[group]} | {len(covered)}/{len(GROUPS[group])} | {len(got)} | {count['passed']} | "
                     f"{count['failed']} | {count['skipped']} | {slowest:.1f} s |")
    return "\n".join(lines)


def main() -> int:
    rows = run(sys.argv[1:])
    print(table(rows))
    return 0 if rows and all(r["outcome"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
