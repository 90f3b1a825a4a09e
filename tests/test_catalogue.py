"""Every test of the reliability catalogue (reference/reliability-anchors.md (b), 1-40) is a test here.

Tests carry ``@pytest.mark.catalogue(n)``. This reads the test sources (no import, so it is fast and
cannot be fooled by a skipped module) and fails when a catalogue number has no test, or when a marker
names a number outside 1-40. ``benchmarks/catalogue_report.py`` runs them and writes the closing table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CATALOGUE = range(1, 41)
GROUPS = {"A": range(1, 7), "B": range(7, 23), "C": range(23, 34), "D": range(34, 39), "E": range(39, 41)}


def _is_catalogue_mark(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "catalogue"
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark")


def marked_tests() -> dict[int, list[str]]:
    """Catalogue number -> ``file::test`` names that carry its marker (module-level ``pytestmark`` too)."""
    found: dict[int, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for top in tree.body:
            owner = getattr(top, "name", None) or "<module>"
            for node in ast.walk(top):
                if _is_catalogue_mark(node):
                    assert isinstance(node, ast.Call)
                    arg = node.args[0] if node.args else None
                    if not isinstance(arg, ast.Constant) or not isinstance(arg.value, int):
                        raise AssertionError(f"{path.name}::{owner}: catalogue() takes one literal int")
                    found.setdefault(arg.value, []).append(f"{path.name}::{owner}")
    return found


def group_of(number: int) -> str:
    return next(g for g, numbers in GROUPS.items() if number in numbers)


def test_groups_partition_the_catalogue() -> None:
    assert sorted(n for r in GROUPS.values() for n in r) == list(CATALOGUE)


def test_every_catalogue_test_has_a_ci_test() -> None:
    found = marked_tests()
    missing = [n for n in CATALOGUE if n not in found]
    assert not missing, f"catalogue tests with no marked test: {missing}"
    unknown = sorted(set(found) - set(CATALOGUE))
    assert not unknown, f"markers outside the catalogue: {unknown}"


def test_markers_are_found_in_functions_classes_and_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "test_x.py").write_text(
        "import pytest\npytestmark = pytest.mark.catalogue(3)\n"
        "@pytest.mark.catalogue(7)\ndef test_a(): ...\n"
        "@pytest.mark.parametrize('x', [pytest.param(1, marks=pytest.mark.catalogue(9))])\ndef test_b(x): ...\n"
    )
    monkeypatch.setitem(globals(), "TESTS", tmp_path)
    assert marked_tests() == {3: ["test_x.py::<module>"], 7: ["test_x.py::test_a"], 9: ["test_x.py::test_b"]}
