"""Zip and folder portfolios: entries read one by one, groups kept, hostile archives refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from extractors import ErrorCode, extract_paths
from tests.conftest import corpus_file
from tests.docgen import Docx, p


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_gateway_zip_keeps_folder_groups(tmp_path: Path) -> None:
    report = Docx().add(p("Evidence one two three")).save(tmp_path / "r.docx").read_bytes()
    epa = corpus_file("epa/benfielding74_evidence_hack-3975.md").read_bytes()
    z = _zip(tmp_path / "gateway.zip", {
        "portfolio/task1/report.docx": report,
        "portfolio/task2/hack.md": epa,
        "employer reference/ref.md": b"# Employer reference\nObserved on site.\n",
        "__MACOSX/._junk": b"junk",
        "legacy/old.doc": corpus_file("bad/poi_SampleDoc_legacy_word97.doc").read_bytes(),
    })
    result = extract_paths([z])
    groups = {d.file.split("gateway.zip/")[1]: d.group for d in result.documents}
    assert groups == {
        "portfolio/task1/report.docx": "portfolio/task1",
        "portfolio/task2/hack.md": "portfolio/task2",
        "employer reference/ref.md": "employer reference",
    }
    assert [e["code"] for e in result.errors] == ["legacy_format"]
    assert result.errors[0]["file"].endswith("gateway.zip/legacy/old.doc")


@pytest.mark.catalogue(16)
@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b.txt", "C:\\win.txt"])
def test_zip_slip_names_refuse_the_archive(tmp_path: Path, name: str) -> None:
    z = _zip(tmp_path / "slip.zip", {"ok.md": b"fine", name: b"evil"})
    result = extract_paths([z])
    assert result.documents == []
    assert [e["code"] for e in result.errors] == ["unsafe_path"]


@pytest.mark.catalogue(19)
def test_nested_zips_beyond_the_depth_limit_are_refused(tmp_path: Path) -> None:
    inner = _zip(tmp_path / "l3.zip", {"a.md": b"deep"}).read_bytes()
    for level in (2, 1):
        inner = _zip(tmp_path / f"l{level}.zip", {f"l{level + 1}.zip": inner}).read_bytes()
    top = tmp_path / "top.zip"
    top.write_bytes(inner)
    result = extract_paths([top])
    assert [e["code"] for e in result.errors] == [ErrorCode.ZIP_BOMB.value]


@pytest.mark.catalogue(14)
def test_inflation_bomb_is_refused_before_extraction(tmp_path: Path) -> None:
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.txt", b"\0" * (40 * 1024 * 1024))  # 40 MiB of zeros compress ~1000:1
    result = extract_paths([z])
    assert [e["code"] for e in result.errors] == ["zip_bomb"]


def test_folder_portfolio(tmp_path: Path) -> None:
    (tmp_path / "task1").mkdir()
    (tmp_path / "task1" / "notes.md").write_text("# Task 1\nI configured the firewall.\n")
    (tmp_path / ".hidden").write_text("ignored")
    result = extract_paths([tmp_path])
    assert [(d.group, d.total_words()) for d in result.documents] == [("task1", 6)]
