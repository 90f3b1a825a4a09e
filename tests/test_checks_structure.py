"""word_count, themes, starr, ksb_mapping and evidence_count on realistic reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractors import extract_file, extract_paths
from tests.checkkit import ctx, run
from tests.docgen import Docx, p
from tests.reports import THEMES, report
from validators.model import Outcome
from validators.profile import Role

WC = {"target": 2000, "tolerance_pct": 10}
KSBS = {"K3": "plan", "S2": "design", "S3": "build", "K4": "test", "K9": "AM2 only", "B1": "behaviour"}


def _wc(path: Path, **params: object):
    doc = extract_file(path)
    return run("word_count", ctx("word_count", [(doc, Role.REPORT)], {**WC, **params}))


@pytest.mark.parametrize(("body", "outcome"), [(2000, Outcome.PASS), (1700, Outcome.FAIL), (2350, Outcome.FAIL),
                                               (1810, Outcome.WARN), (2180, Outcome.WARN)])
def test_word_count_band(tmp_path: Path, body: int, outcome: Outcome) -> None:
    result = _wc(report(tmp_path / "r.docx", body))
    assert result.outcome is outcome, result.summary
    # headings count as body text, as they do in Word
    assert result.measured["counted"] == body + 7


def test_word_count_lists_every_exclusion(tmp_path: Path) -> None:
    result = _wc(report(tmp_path / "r.docx", 2000, appendix_words=300))
    messages = " | ".join(f.message for f in result.findings)
    assert "Appendix A: Screenshots and logs' (appendix, 305 words)" in messages
    assert "'Appendix B: KSB mapping' (ksb_mapping" in messages
    assert "'References' (references" in messages
    assert result.measured["excluded_by_section_kind"]["appendix"] == 305


def test_over_length_report_locates_where_marking_stops(tmp_path: Path) -> None:
    path = report(tmp_path / "long.docx", 2400)
    result = _wc(path)
    stop = result.findings[0]
    assert stop.message.startswith("marking stops here")
    assert stop.detail["word_number"] == 2201
    doc = extract_file(path)
    counted = 0
    for b in doc.blocks:  # recount independently up to the located block
        if b.location.paragraph == stop.location.paragraph:
            break
        if b.part and b.part.value in ("body", "tables") and b.section_kind.value == "main":
            counted += b.words
    assert counted < 2201 <= counted + next(b.words for b in doc.blocks
                                            if b.location.paragraph == stop.location.paragraph)
    assert stop.excerpt and stop.location.heading_path


def test_word_count_not_applicable_without_report(tmp_path: Path) -> None:
    doc = extract_file(Docx().add(p("x")).save(tmp_path / "e.docx"))
    assert run("word_count", ctx("word_count", [(doc, Role.EVIDENCE)], WC)).outcome is Outcome.NOT_APPLICABLE


def test_themes_by_heading_and_weak_content(tmp_path: Path) -> None:
    doc = extract_file(report(tmp_path / "r.docx", 1400, themes=["Plan", "Design", "Build", "Test"]))
    result = run("themes", ctx("themes", [(doc, Role.REPORT)], {"themes": THEMES}))
    # The real prose says "maintain" and "release" in other senses: weak evidence, so a warning, not a pass.
    assert result.outcome is Outcome.WARN
    assert result.measured == {"Plan": "heading", "Design": "heading", "Build": "heading", "Test": "heading",
                               "Deploy": "content", "Maintain": "content"}
    plan = result.findings[0]
    assert plan.location and plan.location.paragraph and plan.excerpt == "Plan"


def test_theme_missing_everywhere_fails(tmp_path: Path) -> None:
    doc = extract_file(Docx().add(p("Plan", style="Heading1"), p("We agreed the scope with the client.")).save(
        tmp_path / "m.docx"))
    result = run("themes", ctx("themes", [(doc, Role.REPORT)], {"themes": ["Plan", "Deploy"]}))
    assert result.outcome is Outcome.FAIL and result.measured["Deploy"] == "missing"
    assert "Deploy" in result.summary


def test_themes_found_in_content_without_heading(tmp_path: Path) -> None:
    doc = extract_file(Docx().add(
        p("Project", style="Heading1"),
        p("We planned the migration carefully. The plan covered three sites."),
        p("Maintenance was handed to the service desk. Ongoing maintenance is scheduled monthly."),
    ).save(tmp_path / "c.docx"))
    result = run("themes", ctx("themes", [(doc, Role.REPORT)], {"themes": ["Plan", "Maintain"]}))
    assert result.outcome is Outcome.WARN
    assert result.measured == {"Plan": "content", "Maintain": "content"}


def test_starr_on_real_portfolio_star_headings() -> None:
    from tests.conftest import corpus_file

    doc = extract_file(corpus_file("epa/benfielding74_evidence_AMI-refresh-project.md"))
    result = run("starr", ctx("starr", [(doc, Role.EVIDENCE)], {"roles": ["evidence"]}, severity="warn"))
    # The catalogue: STAR headings (Situation/Task/Action/Result) and no Reflection heading.
    assert {k for k, v in result.measured.items() if v == "heading"} >= {"Situation", "Task", "Action", "Result"}
    assert result.outcome in (Outcome.PASS, Outcome.WARN)


def _mapping(tmp_path: Path, rows: list[list[str]], **kw: object):
    doc = extract_file(report(tmp_path / "m.docx", 1500, mapping=rows, **kw))
    c = ctx("ksb_mapping", [(doc, Role.REPORT)], {}, ksbs=KSBS, method_ksbs=["K3", "S2", "S3", "K4", "B1"])
    return run("ksb_mapping", c)


def test_ksb_mapping_complete(tmp_path: Path) -> None:
    rows = [["KSB", "Evidence"], ["K3", "Plan"], ["S2", "Design"], ["S3", "Build"], ["K4", "Test"], ["B1", "Maintain"]]
    result = _mapping(tmp_path, rows)
    assert result.outcome is Outcome.PASS, [f.message for f in result.findings]
    assert result.measured["coverage"] == 1.0


def test_ksb_mapping_missing_unknown_other_method_and_bad_refs(tmp_path: Path) -> None:
    rows = [["KSB", "Evidence"], ["K3", "Plan, page 2"], ["S2", "section 9.4"], ["K9", "Design"], ["K77", "Build"],
            ["K4", "Test"]]
    result = _mapping(tmp_path, rows)
    assert result.outcome is Outcome.FAIL
    assert result.measured["missing"] == ["S3", "B1"]
    problems = {(f.detail.get("problem"), str(f.detail.get("ksb"))) for f in result.findings}
    assert ("unknown_code", "K77") in problems
    assert ("other_method", "K9") in problems
    assert ("bad_reference", "['S2']") in problems
    s2 = next(f for f in result.findings if f.detail.get("problem") == "bad_reference")
    assert s2.location and s2.location.table and s2.location.row == 3


def test_ksb_mapping_must_be_in_an_appendix(tmp_path: Path) -> None:
    rows = [["KSB", "Evidence"], ["K3", "Plan"], ["S2", "Design"], ["S3", "Build"], ["K4", "Test"], ["B1", "Plan"]]
    result = _mapping(tmp_path, rows, mapping_in_appendix=False)
    assert result.outcome is Outcome.FAIL
    assert any(f.detail.get("problem") == "not_in_appendix" for f in result.findings)


def test_ksb_mapping_absent(tmp_path: Path) -> None:
    doc = extract_file(Docx().add(p("Intro", style="Heading1"), p("text")).save(tmp_path / "n.docx"))
    c = ctx("ksb_mapping", [(doc, Role.REPORT)], {}, ksbs=KSBS, method_ksbs=["K3"])
    assert run("ksb_mapping", c).outcome is Outcome.FAIL


def test_real_portfolio_mapping_table_is_read() -> None:
    from tests.conftest import corpus_file

    doc = extract_file(corpus_file("epa/benfielding74_DevOps_work-mapping-table_KSB.md"))
    c = ctx("ksb_mapping", [(doc, Role.MAPPING)], {"require_appendix": False}, ksbs={}, method_ksbs=[])
    result = run("ksb_mapping", c)
    assert result.measured["rows"] >= 15  # the real table maps ~20 KSBs (with repeats like K6, K18.1)
    assert {"K6", "S1"} <= set(result.measured["mapped"])


def _portfolio(tmp_path: Path, layout: dict[str, str]) -> list:
    root = tmp_path / "portfolio"
    for rel, text in layout.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return [(d, Role.EVIDENCE) for d in extract_paths([root]).documents]


def test_evidence_counted_per_task_folder_excluding_index(tmp_path: Path) -> None:
    docs = _portfolio(tmp_path, {**{f"task{i}/notes.md": f"# Task {i}\nI did it." for i in range(1, 8)},
                                 "task1/extra.md": "more", "index.md": "# Index"})
    result = run("evidence_count", ctx("evidence_count", docs, {"typical": 8}, severity="warn"))
    assert result.outcome is Outcome.WARN and result.measured["count"] == 7
    assert "typically 8" in result.summary
    assert result.findings[0].message == "piece 1: task1 (2 files)"


def test_evidence_min_max_must(tmp_path: Path) -> None:
    docs = _portfolio(tmp_path, {f"piece{i}.md": f"Evidence {i}" for i in range(1, 17)})
    result = run("evidence_count", ctx("evidence_count", docs, {"min": 10, "max": 15}))
    assert result.outcome is Outcome.FAIL and "more than the maximum of 15" in result.summary
    docs12 = docs[:12]
    assert run("evidence_count", ctx("evidence_count", docs12, {"min": 10, "max": 15})).outcome is Outcome.PASS


def test_evidence_sections_in_one_portfolio_document(tmp_path: Path) -> None:
    body = [x for i in range(1, 9) for x in (p(f"Task {i}: change request", style="Heading1"), p("Did the work."))]
    doc = extract_file(Docx().add(*body).save(tmp_path / "portfolio.docx"))
    result = run("evidence_count", ctx("evidence_count", [(doc, Role.EVIDENCE)], {"typical": 8}, severity="warn"))
    assert result.outcome is Outcome.PASS and result.measured["counted_by"].startswith("Task/Evidence sections")
