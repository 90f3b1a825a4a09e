"""`gatecheck check` end to end, per profile: a realistic submission that passes, and
variants that each break one rule, through the real CLI, validated against the schema.

Submissions are built from real material: reports written from a real apprentice's
evidence write-ups (tests/reports.py), real decks with speaker notes, the real DevOps
portfolio pieces and real media from the shared corpus.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from gatecheck.cli import main
from tests.conftest import CORPUS, corpus_file
from tests.docgen import Docx, p, table
from tests.reports import report

pytestmark = pytest.mark.corpus

_SCHEMAS = resources.files("gatecheck") / "schemas"
_EXTRACT = json.loads((_SCHEMAS / "extract.schema.json").read_text())
_REPORT = json.loads((_SCHEMAS / "report.schema.json").read_text())
_REGISTRY = Registry().with_resources(
    [(s["$id"], Resource.from_contents(s)) for s in (_EXTRACT, _REPORT)]
)
AM1_KSBS = "K3 S2 S3 B3 K4 K5 S5 S6 B1 K6 S7 K15 K16 S9 K17 S10 K22 S14 B2".split()  # the seed's AM1 list
THEME_OF = dict(zip(AM1_KSBS, ["Plan", "Plan", "Plan", "Plan", "Design", "Design", "Design", "Design", "Build",
                               "Build", "Build", "Test", "Test", "Test", "Deploy", "Deploy", "Maintain", "Maintain",
                               "Maintain"], strict=True))
GATEWAY_OK = ["months_on_programme=14", "off_the_job_pct=22", "english_maths=achieved",
              "epa_start_date=2026-10-01", "submission_date=2026-10-20"]


def check(capsys: pytest.CaptureFixture[str], standard: str, method: str, paths: list[Path],
          meta: list[str] | None = None, extra: list[str] | None = None) -> tuple[int, dict]:
    args = ["check", "--standard", standard, "--method", method, "--format", "json", *map(str, paths)]
    for m in meta or []:
        args += ["--meta", m]
    code = main(args + (extra or []))
    out = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(_REPORT, registry=_REGISTRY).validate(out)
    return code, out


def apprentice_pieces() -> list[Path]:
    """The real apprentice's evidence write-ups (not the mapping, skills list or reference list)."""
    return [*sorted((CORPUS / "epa").glob("benfielding74_evidence_*.md")), CORPUS / "epa" / "benfielding74_release0.md"]


def outcomes(rep: dict) -> dict[str, str]:
    return {c["id"]: c["outcome"] for c in rep["checks"]}


# -- ST0505 AM1: project report + presentation -------------------------------------------------
def am1(tmp: Path, *, words: int = 2000, themes: list[str] | None = None, ksbs: list[str] = AM1_KSBS,
        deck: str | None = "poi_HowWeRefactor_28slides_27notes.pptx") -> list[Path]:
    rows = [["KSB", "Where evidenced"]] + [[k, THEME_OF.get(k, "Plan")] for k in ksbs]
    kw = {"themes": themes} if themes else {}
    paths = [report(tmp / "project_report.docx", words, mapping=rows, source="apprentice", starr=True, **kw)]
    if deck:
        paths.append(tmp / "presentation.pptx")
        shutil.copy(corpus_file(f"pptx/{deck}"), paths[-1])
    return paths


def test_st0505_am1_realistic_submission_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, rep = check(capsys, "ST0505", "AM1", am1(tmp_path), GATEWAY_OK)
    got = outcomes(rep)
    assert code == 0, got
    for must_pass in ("word_count", "themes", "starr", "ksb_mapping", "required_documents", "gateway",
                      "presentation", "file_formats"):
        assert got[must_pass] == "pass", (must_pass, rep["checks"])
    assert rep["standard"]["profile"] == "st0505-accelerate-people"
    assert {d["role"] for d in rep["documents"]} == {"report", "presentation"}


AM1_BREAKS: dict[str, tuple[Callable[[Path], list[Path]], list[str], str]] = {
    "under_length": (lambda t: am1(t, words=1500), GATEWAY_OK, "word_count"),
    "over_length": (lambda t: am1(t, words=2600), GATEWAY_OK, "word_count"),
    "ksb_missing": (lambda t: am1(t, ksbs=AM1_KSBS[:-3]), GATEWAY_OK, "ksb_mapping"),
    "no_presentation": (lambda t: am1(t, deck=None), GATEWAY_OK, "required_documents"),
    "late_submission": (lambda t: am1(t), [*GATEWAY_OK[:-1], "submission_date=2026-11-20"], "gateway"),
    "too_few_months": (lambda t: am1(t), ["months_on_programme=9", *GATEWAY_OK[1:]], "gateway"),
}


@pytest.mark.parametrize("case", sorted(AM1_BREAKS))
def test_st0505_am1_each_rule_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    build, meta, failing = AM1_BREAKS[case]
    code, rep = check(capsys, "ST0505", "AM1", build(tmp_path), meta)
    got = outcomes(rep)
    assert code == 1 and rep["outcome"] == "fail"
    assert got[failing] == "fail", rep["checks"]
    bad = next(c for c in rep["checks"] if c["id"] == failing)
    assert bad["rule"]["source"].startswith("000_eca4b4d044bee7e1.txt")
    assert bad["findings"] or failing == "gateway"


def test_theme_without_heading_is_a_located_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The apprentice's real text talks about deploying, so a missing "Deploy" heading is a warning
    pointing at the first mention, and the mapping rows citing "Deploy" no longer resolve."""
    _, rep = check(capsys, "ST0505", "AM1", am1(tmp_path, themes=["Plan", "Design", "Build", "Test", "Maintain"]),
                   GATEWAY_OK)
    got = outcomes(rep)
    assert got["themes"] == "warn" and got["ksb_mapping"] == "warn"
    themes = next(c for c in rep["checks"] if c["id"] == "themes")
    deploy = next(f for f in themes["findings"] if f["message"].startswith("Deploy"))
    assert "deploy" in deploy["excerpt"].lower() and deploy["location"]["paragraph"]
    mapping = next(c for c in rep["checks"] if c["id"] == "ksb_mapping")
    assert {tuple(f["detail"]["ksb"]) for f in mapping["findings"]} == {("K17",), ("S10",)}


def test_over_length_report_points_at_the_word_where_marking_stops(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    _, rep = check(capsys, "ST0505", "AM1", am1(tmp_path, words=2600), GATEWAY_OK)
    wc = next(c for c in rep["checks"] if c["id"] == "word_count")
    stop = wc["findings"][0]
    assert stop["message"].startswith("marking stops here")
    assert stop["location"]["file"].endswith("project_report.docx") and stop["location"]["paragraph"]
    assert stop["location"]["section"]  # which heading it sits under


def test_html_report_is_self_contained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["check", "--standard", "ST0505", "--method", "AM1", "--format", "html",
                 *map(str, am1(tmp_path, words=2600))])
    page = capsys.readouterr().out
    assert code == 1
    assert page.startswith("<!doctype html>") and "marking stops here" in page
    assert "<script" not in page and "http" not in page.split("<body>")[0]


# -- ST0505 AM2: portfolio ----------------------------------------------------------------------
def portfolio(tmp: Path, *, reflective: bool = False, video_link: bool = False, long_media: bool = False,
              declaration: bool = True, scanned: bool = False) -> Path:
    root = tmp / "portfolio"
    pieces = apprentice_pieces()
    for n, src in enumerate(pieces, start=1):
        (root / f"task{n}").mkdir(parents=True)
        shutil.copy(src, root / f"task{n}" / src.name)
    media = ["media/mdn_rabbit320.mp4", "media/mdn_viper.mp3"] + (["media/tinytag_flac453sStereo.flac",
                                                                    "media/tinytag_test.m4a"] if long_media else [])
    for n, m in enumerate(media, start=len(pieces) + 1):
        (root / f"task{n}").mkdir()
        shutil.copy(corpus_file(m), root / f"task{n}" / Path(m).name)
    (root / f"task{len(pieces) + len(media) + 1}").mkdir()  # a slide exported as an image: image-only evidence
    shutil.copy(corpus_file("epa/benfielding74_devops-presentation_Slide3.jpeg"),
                root / f"task{len(pieces) + len(media) + 1}" / "slide3.jpeg")
    shutil.copy(corpus_file("epa/benfielding74_DevOps_work-mapping-table_KSB.md"), root / "ksb_mapping.md")
    if reflective:  # written for this test: a typical reflective log, which AM2 portfolios must not contain
        (root / "task2" / "reflective-log.md").write_text(
            "# My reflective log\n\nLooking back on the migration, I feel I have developed a lot as an engineer. "
            "On reflection, my main weakness was planning the rollback. I learned that I should test the "
            "backups first. If I did it again, I would involve the service desk earlier. Next time I would "
            "write the runbook before the change window. I rate myself as competent at scripting now.\n")
    if video_link:
        (root / "task3" / "demo-link.md").write_text(
            "# Demo\nThe recording of the deployment is here: https://www.youtube.com/watch?v=dQw4w9WgXcQ\n")
    if scanned:
        shutil.copy(corpus_file("pdf/ocrmypdf_multipage_6p_IMAGE_ONLY.pdf"), root / "task4" / "signed-form.pdf")
    if declaration:
        Docx().add(
            p("Authenticity declaration", style="Heading1"),
            p("We confirm that the evidence in this portfolio is the apprentice's own work and is attributable "
              "to them."),
            table([["Role", "Name", "Signed", "Date"], ["Apprentice", "A. Learner", "A. Learner", "2026-10-01"],
                   ["Employer (line manager)", "B. Manager", "B. Manager", "2026-10-01"]]),
        ).save(root / "declaration.docx")
    return root


def test_st0505_am2_realistic_portfolio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, rep = check(capsys, "ST0505", "AM2", [portfolio(tmp_path)])
    got = outcomes(rep)
    assert code == 0, rep["checks"]
    for must_pass in ("evidence_count", "media_duration", "media_links", "authenticity_declaration",
                      "file_formats", "required_documents"):
        assert got[must_pass] == "pass", (must_pass, rep["checks"])
    ev = next(c for c in rep["checks"] if c["id"] == "evidence_count")
    assert ev["measured"]["count"] == 8 and ev["measured"]["counted_by"] == "one per task folder"


AM2_BREAKS = {
    "reflective_account": ({"reflective": True}, "reflective_accounts"),
    "video_link": ({"video_link": True}, "media_links"),
    "media_over_ten_minutes": ({"long_media": True}, "media_duration"),
    "no_declaration": ({"declaration": False}, "authenticity_declaration"),
    "scanned_paper": ({"scanned": True}, "file_formats"),
}


@pytest.mark.parametrize("case", sorted(AM2_BREAKS))
def test_st0505_am2_each_rule_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    kwargs, failing = AM2_BREAKS[case]
    code, rep = check(capsys, "ST0505", "AM2", [portfolio(tmp_path, **kwargs)])
    assert code == 1 and outcomes(rep)[failing] == "fail", rep["checks"]
    bad = next(c for c in rep["checks"] if c["id"] == failing)
    assert bad["findings"] and all(f["location"].get("file") for f in bad["findings"] if f["location"])


# -- the other profiles -------------------------------------------------------------------------
def test_st0071_innovate_project_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [["Criteria", "Evidence location"], ["Customer journey", "Plan"]]
    rep_path = report(tmp_path / "project_report.docx", 2500, mapping=rows, source="apprentice")
    synopsis = Docx().add(p("Project synopsis", style="Heading1"), p("I will improve the complaints process.")
                          ).save(tmp_path / "project_synopsis.docx")
    locator = Docx().add(p("Project Evidence Locator", style="Heading1"),
                         table([["KSB", "Evidence"], ["K1", "Plan"]])).save(tmp_path / "evidence_locator.docx")
    meta = ["submission_date=2026-10-01", "interview_date=2026-10-20"]
    _code, rep = check(capsys, "st0071-innovate", "AM2", [rep_path, synopsis, locator], meta)
    got = outcomes(rep)
    assert got["word_count"] == "pass" and got["required_documents"] == "pass" and got["gateway"] == "pass", got
    late = ["submission_date=2026-10-15", "interview_date=2026-10-20"]
    _, rep = check(capsys, "st0071-innovate", "AM2", [rep_path, synopsis, locator], late)
    assert outcomes(rep)["gateway"] == "fail"
    _, rep = check(capsys, "st0071-innovate", "AM2", [rep_path, locator], meta)
    assert outcomes(rep)["required_documents"] == "fail"  # no synopsis


@pytest.mark.parametrize(("pieces", "outcome"), [(12, "pass"), (9, "fail"), (16, "fail")])
def test_st0071_imi_portfolio_count_and_gateway(capsys: pytest.CaptureFixture[str], tmp_path: Path, pieces: int,
                                                outcome: str) -> None:
    root = tmp_path / "portfolio"
    texts = apprentice_pieces()
    for n in range(pieces):
        (root / f"piece{n + 1:02d}").mkdir(parents=True)
        shutil.copy(texts[n % len(texts)], root / f"piece{n + 1:02d}" / texts[n % len(texts)].name)
    meta = ["months_on_programme=16", "off_the_job_pct=21", "english_maths=achieved",
            "submission_date=2026-10-01", "professional_discussion_date=2026-10-20"]
    _, rep = check(capsys, "st0071-imi", "AM3", [root], meta)
    assert outcomes(rep)["evidence_count"] == outcome
    _, rep = check(capsys, "st0071-imi", "AM3", [root], ["months_on_programme=14", *meta[1:]])
    assert outcomes(rep)["gateway"] == "fail"  # IMI: 15 months on programme


def test_st0949_mapping_coverage_and_what_it_cannot_check(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    codes = [f"K{i}" for i in range(1, 21)] + [f"S{i}" for i in range(1, 16)] + [f"B{i}" for i in range(1, 5)]
    full = Docx().add(p("KSB mapping", style="Heading1"), table([["KSB", "Evidence"]] + [[c, "Ticket log"]
                                                                                        for c in codes]))
    _, rep = check(capsys, "ST0949", "portfolio", [full.save(tmp_path / "ksb_mapping.docx")],
                   extra=["--role", "ksb_mapping.docx=mapping"])
    assert outcomes(rep)["ksb_mapping"] in ("pass", "warn")
    assert rep["cannot_check"]  # the seed has no EPA method detail, and the report says so
    part = Docx().add(p("KSB mapping", style="Heading1"), table([["KSB", "Evidence"]] + [[c, "x"] for c in codes[:20]]))
    _, rep = check(capsys, "ST0949", "portfolio", [part.save(tmp_path / "partial_mapping.docx")],
                   extra=["--role", "partial_mapping.docx=mapping"])
    mapping = next(c for c in rep["checks"] if c["id"] == "ksb_mapping")
    assert mapping["outcome"] == "warn" and len(mapping["measured"]["missing"]) == 19


def test_software_development_technician_needs_an_employer_reference(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    profile_id = "software-development-technician"
    ref = Docx().add(p("Employer reference", style="Heading1"), p("I have supervised the apprentice since 2025."))
    ref_path = ref.save(tmp_path / "employer_reference.docx")
    _, ok = check(capsys, profile_id, "employer_reference", [ref_path])
    assert outcomes(ok)["required_documents"] == "pass"
    other = Docx().add(p("Notes")).save(tmp_path / "notes.docx")
    _, bad = check(capsys, profile_id, "employer_reference", [other])
    assert outcomes(bad)["required_documents"] == "fail"


@pytest.mark.parametrize(("standard", "target"), [("st0119-ifate-plan", 6000), ("st0116-provider-guidance", 4500)])
def test_cited_plan_profiles_apply_their_word_targets(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      standard: str, target: int) -> None:
    ok = report(tmp_path / "report_ok.docx", target, source="apprentice")
    short = report(tmp_path / "report_short.docx", int(target * 0.8), source="apprentice")
    _, rep = check(capsys, standard, "AM1", [ok])
    assert outcomes(rep)["word_count"] == "pass"
    _, rep = check(capsys, standard, "AM1", [short])
    assert outcomes(rep)["word_count"] == "fail"


def test_unknown_standard_and_method_are_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = Docx().add(p("x")).save(tmp_path / "r.docx")
    assert main(["check", "--standard", "ST0000", "--method", "AM1", str(path)]) == 2
    assert main(["check", "--standard", "ST0071", "--method", "AM2", str(path)]) == 2  # two EPAO profiles
    assert main(["check", "--standard", "ST0505", "--method", "AM9", str(path)]) == 2
    assert "several profiles match" in capsys.readouterr().err


def test_standards_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["standards", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    ids = {s["profile"] for s in listing["standards"]}
    assert {"st0505-accelerate-people", "st0071-innovate", "st0071-imi", "st0949-generic",
            "software-development-technician", "st0119-ifate-plan", "st0116-provider-guidance"} <= ids


def _pieces(tmp: Path, n: int) -> Path:
    root = tmp / "portfolio"
    texts = apprentice_pieces()
    for i in range(n):
        (root / f"evidence{i + 1:02d}").mkdir(parents=True)
        shutil.copy(texts[i % len(texts)], root / f"evidence{i + 1:02d}" / texts[i % len(texts)].name)
    return root


@pytest.mark.parametrize(("standard", "method", "good", "bad", "bad_outcome"), [
    ("st0119-ifate-plan", "AM2", 6, 3, "warn"),  # "typically 6": a warning, not a fail
    ("st0116-provider-guidance", "AM2", 10, 4, "warn"),  # "typically 10"
    ("st0071-innovate", "AM3", 12, 8, "fail"),  # "10-15 discrete pieces": a must
])
def test_portfolio_evidence_counts_per_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path, standard: str,
                                               method: str, good: int, bad: int, bad_outcome: str) -> None:
    _, rep = check(capsys, standard, method, [_pieces(tmp_path / "good", good)])
    assert outcomes(rep)["evidence_count"] == "pass", rep["checks"]
    _, rep = check(capsys, standard, method, [_pieces(tmp_path / "bad", bad)])
    ev = next(c for c in rep["checks"] if c["id"] == "evidence_count")
    assert ev["outcome"] == bad_outcome and ev["measured"]["count"] == bad
    assert ev["rule"]["source"]


def test_st0119_media_total_applies_to_the_portfolio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _pieces(tmp_path, 6)
    shutil.copy(corpus_file("media/tinytag_flac453sStereo.flac"), root / "evidence01" / "walkthrough.flac")
    _, rep = check(capsys, "st0119-ifate-plan", "AM2", [root])
    assert outcomes(rep)["media_duration"] == "pass"
    shutil.copy(corpus_file("media/tinytag_test.m4a"), root / "evidence02" / "interview.m4a")
    _, rep = check(capsys, "st0119-ifate-plan", "AM2", [root])
    media = next(c for c in rep["checks"] if c["id"] == "media_duration")
    assert media["outcome"] == "fail" and media["measured"]["total_s"] > 600
