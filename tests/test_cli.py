"""The CLI contract: JSON validated against the shipped schema, exit codes, text output."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from gatecheck.cli import main
from tests.conftest import corpus_file

SCHEMA = json.loads((resources.files("gatecheck") / "schemas" / "extract.schema.json").read_text())


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["extract", "--format", "json", *args])
    out = json.loads(capsys.readouterr().out)
    jsonschema.validate(out, SCHEMA)
    return code, out


def test_sample_report_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run_json(capsys, "--sample", "--blocks")
    assert code == 0 and out["errors"] == []
    (doc,) = out["documents"]
    assert doc["format"] == "docx"
    kinds = doc["words"]["by_section_kind"]
    assert kinds["ksb_mapping"] > 0 and kinds["references"] > 0 and kinds["toc"] > 0
    assert doc["words"]["total"] == sum(kinds.values())
    assert {s["title"] for s in doc["sections"]} >= {"Plan", "Design", "Build", "Test", "Deploy", "Maintain"}


def test_mixed_inputs_exit_1_and_errors_are_typed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = corpus_file("docx/poi_heading123_stale_wordcount.docx")
    legacy = corpus_file("bad/poi_SampleDoc_legacy_word97.doc")
    code, out = _run_json(capsys, str(good), str(legacy), str(tmp_path / "missing.docx"))
    assert code == 1
    assert [e["code"] for e in out["errors"]] == ["legacy_format", "not_found"]
    assert out["documents"][0]["words"]["total"] == 259


def test_libreoffice_mode_changes_counts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = tmp_path / "dash.md"
    text.write_text("be—one of—many\n", encoding="utf-8")
    _, word = _run_json(capsys, str(text))
    _, lo = _run_json(capsys, "--count-mode", "libreoffice", str(text))
    assert word["documents"][0]["words"]["total"] == 2
    assert lo["documents"][0]["words"]["total"] == 4
    assert lo["documents"][0]["words"]["mode"] == "libreoffice"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["extract", "--format", "yaml", "x"])
    assert info.value.code == 2


def test_text_output_reads_like_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", "--sample"]) == 0
    out = capsys.readouterr().out
    assert "words (word rules):" in out
    assert "[ksb_mapping]" in out
    assert "1 extracted, 0 with errors" in out


def test_console_script_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gatecheck", "extract", "--sample", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    jsonschema.validate(json.loads(proc.stdout), SCHEMA)
