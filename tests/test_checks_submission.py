"""Submission-level checks: media, presentation, documents, formats, declaration and gateway.

Real corpus files where they exist (media with known durations, decks with notes,
scanned PDFs, a legacy .doc); docgen for declarations and links, whose content
the tests must know exactly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from extractors import extract_paths
from extractors.model import Document, Link, Location, Media
from tests.checkkit import ctx, doc, run
from tests.conftest import corpus_file
from tests.docgen import Docx, p, r, table
from validators.model import CheckResult, Outcome
from validators.profile import Role

pytestmark = pytest.mark.corpus


def media(rel: str) -> Document:
    return doc(corpus_file(f"media/{rel}"))


def pptx(rel: str) -> Document:
    return doc(corpus_file(f"pptx/{rel}"))


def messages(result: CheckResult) -> list[str]:
    return [f.message for f in result.findings]


def docx(tmp_path: Path, name: str, *body: str, links: dict[str, str] | None = None) -> Document:
    return doc(Docx(links=links or {}).add(*body).save(tmp_path / name))


def hyperlink(rid: str, text: str) -> str:
    return p(runs=f'<w:hyperlink r:id="{rid}">' + r(text) + "</w:hyperlink>")


# ---------------------------------------------------------------- media_duration

ST0505_MEDIA = {"total_max_s": 600}


def test_media_total_over_ten_minutes_fails_and_lists_every_clip() -> None:
    flac, mp3, m4a = media("tinytag_flac453sStereo.flac"), media("mdn_viper.mp3"), media("tinytag_test.m4a")
    c = ctx("media_duration", [(flac, Role.MEDIA), (mp3, Role.MEDIA), (m4a, Role.MEDIA)], ST0505_MEDIA)
    res = run("media_duration", c)
    assert res.outcome is Outcome.FAIL
    assert res.measured["clips"] == 3
    assert res.measured["total_s"] == pytest.approx(453.5 + 41.0 + 315.0, abs=1)
    assert "over the 10:00 (600 s) maximum" in res.summary
    assert [f.location.file for f in res.findings] == [flac.file, mp3.file, m4a.file]
    assert "7:33.5" in res.findings[0].message
    assert res.findings[2].detail["warnings"]  # truncated m4a: its duration is only the header's claim


def test_media_within_ten_minutes_passes() -> None:
    flac, mp3 = media("tinytag_flac453sStereo.flac"), media("mdn_viper.mp3")
    res = run("media_duration", ctx("media_duration", [(flac, Role.MEDIA), (mp3, Role.MEDIA)], ST0505_MEDIA))
    assert res.outcome is Outcome.PASS
    assert res.measured["total_s"] == pytest.approx(494.5, abs=0.5)
    assert res.expected == {"total_max_s": 600.0, "per_clip_max_s": None}


def test_media_per_clip_limit_flags_the_long_clip_only() -> None:
    flac, mp3 = media("tinytag_flac453sStereo.flac"), media("mdn_viper.mp3")
    c = ctx("media_duration", [(flac, Role.MEDIA), (mp3, Role.MEDIA)], {"total_max_s": 600, "per_clip_max_s": 300})
    res = run("media_duration", c)
    assert res.outcome is Outcome.FAIL
    assert "1 clip(s) longer than 300 s" in res.summary
    over = [f for f in res.findings if f.detail.get("over_per_clip_max")]
    assert [f.location.file for f in over] == [flac.file]


def test_media_embedded_in_slides_is_counted_with_its_slide() -> None:
    deck, flac = pptx("poi_EmbeddedVideo.pptx"), media("tinytag_flac453sStereo.flac")
    res = run("media_duration", ctx("media_duration", [(deck, Role.PRESENTATION), (flac, Role.MEDIA)], ST0505_MEDIA))
    assert res.outcome is Outcome.PASS
    assert res.measured["total_s"] == pytest.approx(453.5 + 3.2, abs=0.2)
    slide = res.findings[0]
    assert (slide.location.file, slide.location.slide, slide.location.part) == (deck.file, 1, "ppt/media/media1.mp4")
    assert "slide 1" in slide.message


def test_media_without_a_header_duration_is_timed_by_packet_scan() -> None:
    webm = media("moviepy_no_duration.webm")
    res = run("media_duration", ctx("media_duration", [(webm, Role.MEDIA)], ST0505_MEDIA))
    assert res.outcome is Outcome.PASS
    assert res.findings[0].detail["duration_source"] == "packet_scan"
    assert res.measured["total_s"] == pytest.approx(4.9, abs=0.1)


def test_unknown_duration_is_at_least_a_warning() -> None:
    deck = pptx("poi_EmbeddedVideo.pptx")
    deck.media[0] = replace(deck.media[0], duration_s=None, duration_source="unknown")  # probe failed
    res = run("media_duration", ctx("media_duration", [(deck, Role.PRESENTATION)], ST0505_MEDIA))
    assert res.outcome is Outcome.WARN
    assert res.measured["unknown"] == 1
    assert "duration unknown: check by hand" in res.findings[0].message
    assert res.findings[0].location.slide == 1


def test_unknown_duration_does_not_soften_a_failure() -> None:
    deck, flac, m4a = pptx("poi_EmbeddedVideo.pptx"), media("tinytag_flac453sStereo.flac"), media("tinytag_test.m4a")
    deck.media[0] = replace(deck.media[0], duration_s=None, duration_source="unknown")
    docs = [(deck, Role.PRESENTATION), (flac, Role.MEDIA), (m4a, Role.MEDIA)]
    res = run("media_duration", ctx("media_duration", docs, ST0505_MEDIA))
    assert res.outcome is Outcome.FAIL
    assert "unknown duration" in res.summary


def test_linked_media_is_left_to_media_links() -> None:
    flac = media("tinytag_flac453sStereo.flac")
    deck = pptx("poi_HowWeRefactor_28slides_27notes.pptx")
    deck.media.append(Media("https://youtu.be/xyz", "video", None, Location(deck.file, slide=3), "unknown",
                            linked=True))
    res = run("media_duration", ctx("media_duration", [(flac, Role.MEDIA), (deck, Role.PRESENTATION)], ST0505_MEDIA))
    assert res.outcome is Outcome.PASS
    assert res.measured == {"total_s": pytest.approx(453.5, abs=0.1), "clips": 1, "unknown": 0, "linked": 1}
    assert "see media_links" in res.findings[-1].message


def test_media_over_limit_is_a_warning_when_the_profile_says_so() -> None:
    flac, m4a = media("tinytag_flac453sStereo.flac"), media("tinytag_test.m4a")
    c = ctx("media_duration", [(flac, Role.MEDIA), (m4a, Role.MEDIA)], ST0505_MEDIA, severity="warn")
    assert run("media_duration", c).outcome is Outcome.WARN


def test_no_media_is_not_applicable() -> None:
    deck = pptx("poi_HowWeRefactor_28slides_27notes.pptx")
    res = run("media_duration", ctx("media_duration", [(deck, Role.PRESENTATION)], ST0505_MEDIA))
    assert res.outcome is Outcome.NOT_APPLICABLE


# ---------------------------------------------------------------- media_links

LINKS = {
    "rId1": "https://www.youtube.com/watch?v=abc123",
    "rId2": "https://contoso.sharepoint.com/:v:/s/team/EaBcDeF?e=1",
    "rId3": "https://contoso.sharepoint.com/:w:/s/team/Doc1",  # a Word document: not video
    "rId4": "https://www.dropbox.com/s/abc/switch-config.mp4?dl=0",
    "rId5": "https://www.dropbox.com/s/abc/network-diagram.pdf?dl=0",  # not video
    "rId6": "https://drive.google.com/file/d/1AbC/view",
    "rId7": "https://www.gov.uk/guidance/apprenticeship-funding-rules",
    "rId8": "https://m.facebook.com/watch/?v=42",
    "rId9": "https://www.facebook.com/ourcompany",  # a page, not a video
    "rId10": "https://contoso.sharepoint.com/sites/team/_layouts/15/stream.aspx?id=x",
    "rId11": "https://vimeo.com/123456",
    "rId12": "mailto:assessor@example.org",
}
TEXTS = {"rId6": "video of the server install", "rId1": "Demo of my deployment"}


@pytest.fixture
def linked_doc(tmp_path: Path) -> Document:
    body = [hyperlink(rid, TEXTS.get(rid, f"link {rid}")) for rid in LINKS]
    return docx(tmp_path, "portfolio-index.docx", *body, links=LINKS)


def test_links_to_video_hosting_fail_with_each_link_located(linked_doc: Document) -> None:
    res = run("media_links", ctx("media_links", [(linked_doc, Role.EVIDENCE)]))
    assert res.outcome is Outcome.FAIL
    flagged = {f.detail["url"]: f.location.paragraph for f in res.findings}
    assert flagged == {LINKS["rId1"]: 1, LINKS["rId2"]: 2, LINKS["rId4"]: 4, LINKS["rId6"]: 6, LINKS["rId8"]: 8,
                       LINKS["rId10"]: 10, LINKS["rId11"]: 11}
    assert res.measured["links_checked"] == 12 and res.measured["video_links"] == 7
    youtube = res.findings[0]
    assert youtube.excerpt == "Demo of my deployment"
    assert youtube.location.file == linked_doc.file
    assert "upload the file instead" in youtube.message
    by_url = {f.detail["url"]: f.detail["why"] for f in res.findings}
    assert "share link of type video" in by_url[LINKS["rId2"]]
    assert "link text says 'video'" in by_url[LINKS["rId6"]]


def test_no_video_links_passes() -> None:
    deck = pptx("poi_conference_talk_Maloney_28slides_22notes.pptx")  # two mailto: links
    res = run("media_links", ctx("media_links", [(deck, Role.PRESENTATION)]))
    assert res.outcome is Outcome.PASS
    assert res.measured["links_checked"] == 2


def test_hosts_param_overrides_the_default_list(linked_doc: Document) -> None:
    c = ctx("media_links", [(linked_doc, Role.EVIDENCE)], {"hosts": ["gov.uk/guidance"], "file_share_hosts": []})
    res = run("media_links", c)
    assert [f.detail["url"] for f in res.findings] == [LINKS["rId7"]]


def test_linked_media_is_one_finding_with_its_url() -> None:
    deck = pptx("poi_EmbeddedVideo.pptx")
    loc = Location(deck.file, slide=1)
    deck.media.append(Media("https://intranet.example.org/clip", "video", None, loc, "unknown", linked=True))
    deck.links.append(Link("https://intranet.example.org/clip", "My clip", replace(loc)))
    res = run("media_links", ctx("media_links", [(deck, Role.PRESENTATION)]))
    assert res.outcome is Outcome.FAIL
    assert len(res.findings) == 1
    assert res.findings[0].location.slide == 1
    assert "linked (not embedded) video" in res.findings[0].message


# ---------------------------------------------------------------- presentation

ST0505_TALK = {"minutes": 20, "tolerance_pct": 10}


def test_presentation_within_time_passes_and_states_the_assumption() -> None:
    deck = pptx("poi_HowWeRefactor_28slides_27notes.pptx")
    res = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], ST0505_TALK))
    assert res.outcome is Outcome.PASS
    m = res.measured
    assert (m["slides"], m["hidden_slides"], m["notes_words"], m["media_s"]) == (28, 0, 303, 0.0)
    assert m["estimated_minutes"] == pytest.approx((303 + m["slide_text_words_used"]) / 130, abs=0.1)
    assert "130 words per minute" in res.summary and "22.0 min" in res.summary
    no_notes = [f for f in res.findings if "no speaker notes" in f.message]
    assert len(no_notes) == m["slides_without_notes"] == 16
    assert no_notes[0].location.slide == 5


def test_presentation_over_time_fails_at_the_slide_where_time_runs_out() -> None:
    deck = pptx("poi_conference_talk_Maloney_28slides_22notes.pptx")
    res = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], {"minutes": 5}))
    assert res.outcome is Outcome.FAIL
    assert res.measured["estimated_minutes"] == pytest.approx(10.2, abs=0.2)
    assert res.expected["max_minutes"] == 5.5
    over = res.findings[0]
    assert "over the 5.5 min limit" in over.message
    assert over.location.file == deck.file and 1 < over.location.slide < 28


def test_presentation_words_per_minute_is_a_parameter() -> None:
    deck = pptx("poi_conference_talk_Maloney_28slides_22notes.pptx")
    fast = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], {"minutes": 10}))
    slow = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)],
                                   {"minutes": 10, "words_per_minute": 100}))
    assert fast.outcome is Outcome.PASS
    assert slow.outcome is Outcome.FAIL
    assert "100 words per minute" in slow.summary


def test_hidden_slides_are_reported_but_not_counted() -> None:
    deck = pptx("poi_2411-Performance_Up_48slides.pptx")
    res = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], ST0505_TALK))
    assert (res.measured["slides"], res.measured["hidden_slides"]) == (46, 2)
    assert res.findings[0].detail["hidden_slides"] == [13, 48]
    assert all(f.location.slide not in {13, 48} for f in res.findings[1:])


def test_embedded_video_adds_to_the_estimate() -> None:
    deck = pptx("poi_EmbeddedVideo.pptx")
    res = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], ST0505_TALK))
    assert res.outcome is Outcome.PASS
    assert res.measured["media_s"] == pytest.approx(3.2, abs=0.05)
    assert "embedded media" in res.summary


def test_too_many_slides() -> None:
    deck = pptx("poi_HowWeRefactor_28slides_27notes.pptx")
    res = run("presentation", ctx("presentation", [(deck, Role.PRESENTATION)], {**ST0505_TALK, "max_slides": 20}))
    assert res.outcome is Outcome.FAIL
    assert "28 slides, more than the 20 allowed" in res.summary


def test_no_presentation_is_a_violation() -> None:
    res = run("presentation", ctx("presentation", [(media("mdn_viper.mp3"), Role.MEDIA)], ST0505_TALK))
    assert res.outcome is Outcome.FAIL
    assert "no presentation" in res.summary


# ---------------------------------------------------------------- required_documents


def _spec(role: str, required: bool = True, description: str = "") -> dict[str, object]:
    return {"role": role, "required": required, "description": description,
            "rule": {"text": f"the {role} must be submitted", "source": "seed 000 §AM1"}}


AM1_DOCS = [_spec("report", description="project report (2,000 words ± 10%)"),
            _spec("presentation", description="presentation materials, with the report"),
            _spec("mapping", required=False)]


def test_missing_required_document_fails_naming_the_rule() -> None:
    report = pptx("poi_HowWeRefactor_28slides_27notes.pptx")  # role is what matters here
    res = run("required_documents", ctx("required_documents", [(report, Role.REPORT)], documents=AM1_DOCS))
    assert res.outcome is Outcome.FAIL
    assert res.measured == {"report": [report.file], "presentation": [], "mapping": []}
    missing = res.findings[0]
    assert missing.detail == {"role": "presentation", "rule": "the presentation must be submitted",
                              "source": "seed 000 §AM1"}
    assert "presentation materials, with the report" in missing.message
    assert "--role FILE=presentation" in missing.message
    assert res.findings[1].location.file == report.file


def test_all_required_documents_present_passes() -> None:
    deck, report = pptx("poi_EmbeddedVideo.pptx"), pptx("poi_HowWeRefactor_28slides_27notes.pptx")
    c = ctx("required_documents", [(report, Role.REPORT), (deck, Role.PRESENTATION)], documents=AM1_DOCS)
    res = run("required_documents", c)
    assert res.outcome is Outcome.PASS
    assert res.expected == {"required": ["report", "presentation"], "optional": ["mapping"]}


def test_no_document_list_is_not_applicable() -> None:
    res = run("required_documents", ctx("required_documents", [(media("mdn_viper.mp3"), Role.MEDIA)]))
    assert res.outcome is Outcome.NOT_APPLICABLE


# ---------------------------------------------------------------- file_formats


def test_extraction_errors_are_violations_with_the_remedy(tmp_path: Path) -> None:
    good = Docx().add(p("A readable report.")).save(tmp_path / "report.docx")
    result = extract_paths([corpus_file("bad/poi_SampleDoc_legacy_word97.doc"), good])
    c = ctx("file_formats", [(d, Role.REPORT) for d in result.documents], errors=result.errors)
    res = run("file_formats", c)
    assert res.outcome is Outcome.FAIL
    assert res.measured["errors"] == 1 and res.measured["documents"] == 1
    f = res.findings[0]
    assert f.detail["code"] == "legacy_format"
    assert f.location.file.endswith("poi_SampleDoc_legacy_word97.doc")
    assert "Save as" in f.message


def test_scanned_pdf_is_paper_based_evidence() -> None:
    scan = doc(corpus_file("pdf/ocrmypdf_multipage_6p_IMAGE_ONLY.pdf"))
    res = run("file_formats", ctx("file_formats", [(scan, Role.EVIDENCE)]))
    assert res.outcome is Outcome.FAIL
    f = res.findings[0]
    assert f.message.startswith("paper-based/scanned evidence")
    assert "page(s) 1–6 of 6" in f.message
    assert (f.location.file, f.location.page) == (scan.file, 1)
    assert f.detail["pages"] == [1, 2, 3, 4, 5, 6] and f.detail["all_pages"]
    assert res.measured["scanned"] == {scan.file: [1, 2, 3, 4, 5, 6]}


def test_scanned_pages_allowed_when_profile_says_so() -> None:
    scan = doc(corpus_file("pdf/ocrmypdf_ccitt_IMAGE_ONLY_fax.pdf"))
    res = run("file_formats", ctx("file_formats", [(scan, Role.EVIDENCE)], {"scanned_is_paper": False}))
    assert res.outcome is Outcome.PASS
    assert res.findings[0].message.startswith("scanned pages")


def test_format_outside_the_accepted_list() -> None:
    mp3, deck = media("mdn_viper.mp3"), pptx("poi_EmbeddedVideo.pptx")
    c = ctx("file_formats", [(mp3, Role.MEDIA), (deck, Role.PRESENTATION)], {"accepted": ["docx", "pdf", "pptx"]})
    res = run("file_formats", c)
    assert res.outcome is Outcome.FAIL
    assert res.measured["not_accepted"] == [mp3.file]
    assert res.findings[0].location.file == mp3.file


def test_readable_electronic_files_pass() -> None:
    mp3, deck = media("mdn_viper.mp3"), pptx("poi_EmbeddedVideo.pptx")
    res = run("file_formats", ctx("file_formats", [(mp3, Role.MEDIA), (deck, Role.PRESENTATION)]))
    assert res.outcome is Outcome.PASS
    assert res.measured["formats"] == {"media": 1, "pptx": 1}


# ---------------------------------------------------------------- authenticity_declaration

STATEMENT = "I confirm that the evidence in this portfolio is my own work and is authentic."
SIGN_TABLE = [["Role", "Name", "Signature", "Date"], ["Apprentice", "J Smith", "JS", "2025-03-01"],
              ["Employer", "A Boss", "AB", "2025-03-01"]]


def test_declaration_signed_by_both_parties_passes(tmp_path: Path) -> None:
    decl = docx(tmp_path, "declaration.docx", p("Declaration", style="Heading1"), p(STATEMENT), table(SIGN_TABLE))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(decl, Role.DECLARATION)]))
    assert res.outcome is Outcome.PASS
    assert res.measured["parties_missing"] == []
    assert res.findings[0].location.paragraph == 2 and "own" in res.findings[0].detail["pattern"]
    parties = {f.detail["party"]: f.location for f in res.findings if "party" in f.detail}
    assert (parties["apprentice"].table, parties["apprentice"].row) == (1, 2)
    assert (parties["employer"].table, parties["employer"].row) == (1, 3)


def test_missing_employer_signature_fails(tmp_path: Path) -> None:
    decl = docx(tmp_path, "declaration.docx", p(STATEMENT), p("Apprentice signature: ________"),
                p("Date: ________"))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(decl, Role.DECLARATION)]))
    assert res.outcome is Outcome.FAIL
    assert "not signed/confirmed by: employer" in res.summary
    assert res.measured["parties_found"] == {"apprentice": f"{decl.file}, paragraph 2"}


def test_the_apprentices_own_work_does_not_count_as_the_apprentice_signing(tmp_path: Path) -> None:
    decl = docx(tmp_path, "declaration.docx",
                p("I confirm that this portfolio is the apprentice's own work. Signed: ________"),
                p("Employer name: A Boss"))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(decl, Role.DECLARATION)]))
    assert res.outcome is Outcome.FAIL
    assert res.measured["parties_missing"] == ["apprentice"]


def test_declaration_at_the_end_of_a_report_is_found(tmp_path: Path) -> None:
    body = [p(f"Paragraph {i} about the network upgrade project and its testing.") for i in range(30)]
    report = docx(tmp_path, "report.docx", *body, p("Declaration", style="Heading1"),
                  p("We declare that the evidence is attributable to the apprentice."),
                  p("Signed by the learner: J Smith"), p("Line manager signature: A Boss"))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(report, Role.REPORT)]))
    assert res.outcome is Outcome.PASS
    found = res.measured["parties_found"]
    assert found == {"employer": f"{report.file}, paragraph 34", "apprentice": f"{report.file}, paragraph 33"}


def test_no_statement_fails(tmp_path: Path) -> None:
    report = docx(tmp_path, "report.docx", p("The apprentice configured the firewall."),
                  p("Signed off by the manager."))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(report, Role.REPORT)]))
    assert res.outcome is Outcome.FAIL
    assert res.measured["statements"] == 0


def test_scanned_declaration_asks_for_a_check_by_hand() -> None:
    scan = doc(corpus_file("pdf/ocrmypdf_ccitt_IMAGE_ONLY_fax.pdf"))
    res = run("authenticity_declaration", ctx("authenticity_declaration", [(scan, Role.DECLARATION)]))
    assert res.outcome is Outcome.WARN
    assert "check it by hand" in res.findings[-1].message


def test_parties_can_be_configured(tmp_path: Path) -> None:
    decl = docx(tmp_path, "declaration.docx", p(STATEMENT), table(SIGN_TABLE))
    c = ctx("authenticity_declaration", [(decl, Role.DECLARATION)],
            {"parties": {"employer": ["employer"], "assessor": ["independent assessor"]}})
    res = run("authenticity_declaration", c)
    assert res.outcome is Outcome.FAIL
    assert res.measured["parties_missing"] == ["assessor"]


# ---------------------------------------------------------------- gateway

ST0505_GATEWAY = {"min_months_on_programme": 12, "min_off_the_job_pct": 20, "english_maths_required": True,
                  "deadlines": [{"role": "report", "after": "epa_start_date", "within_weeks": 4}]}
IMI_GATEWAY = {"min_months_on_programme": 15, "min_off_the_job_pct": 20,
               "deadlines": [{"role": "report", "before": "interview_date", "weeks": 2},
                             {"role": "evidence", "before": "professional_discussion_date", "weeks": 2}]}


def gateway(params: dict[str, object], meta: dict[str, str]) -> CheckResult:
    return run("gateway", ctx("gateway", [], params, meta=meta))


def test_gateway_met_passes_with_each_figure() -> None:
    meta = {"months_on_programme": "14", "off_the_job_pct": "22%", "english_maths": "Exempt",
            "submission_date": "2025-03-28", "epa_start_date": "2025-03-03"}
    res = gateway(ST0505_GATEWAY, meta)
    assert res.outcome is Outcome.PASS
    assert res.measured["months_on_programme"] == 14 and res.measured["off_the_job_pct"] == 22
    assert res.measured["english_maths"] == "exempt"
    assert res.measured["deadlines"] == [{"role": "report", "submission_date": "2025-03-28",
                                          "epa_start_date": "2025-03-03", "latest": "2025-03-31", "met": True}]


def test_gateway_short_on_programme_and_late_report_fails() -> None:
    meta = {"months_on_programme": "14", "off_the_job_pct": "20", "submission_date": "2025-06-05",
            "interview_date": "2025-06-16", "professional_discussion_date": "2025-07-01"}
    res = gateway(IMI_GATEWAY, meta)
    assert res.outcome is Outcome.FAIL
    assert "time on programme 14 months is below 15 months" in res.summary
    late = next(f for f in res.findings if f.detail.get("role") == "report")
    assert "must be on or before 2025-06-02" in late.message and "3 day(s) late" in late.message
    evidence = next(f for f in res.findings if f.detail.get("role") == "evidence")
    assert evidence.detail["met"] is True


def test_missing_meta_is_not_applicable_and_says_what_to_supply() -> None:
    res = gateway(ST0505_GATEWAY, {"months_on_programme": "13"})
    assert res.outcome is Outcome.NOT_APPLICABLE
    for hint in ("--meta off_the_job_pct=20", "--meta english_maths=achieved",
                 "--meta epa_start_date=YYYY-MM-DD", "--meta submission_date=YYYY-MM-DD"):
        assert hint in res.summary
    assert "--meta months_on_programme" not in res.summary
    assert res.measured["months_on_programme"] == 13


def test_bad_values_explain_the_format() -> None:
    meta = {"months_on_programme": "fourteen", "off_the_job_pct": "20", "english_maths": "yes",
            "submission_date": "28/03/2025", "epa_start_date": "2025-03-03"}
    res = gateway(ST0505_GATEWAY, meta)
    assert res.outcome is Outcome.FAIL
    text = "\n".join(messages(res))
    assert "'fourteen' is not a number of months: give it as --meta months_on_programme=14" in text
    assert "not one of achieved, exempt, missing" in text
    assert "'28/03/2025' is not a date in ISO form YYYY-MM-DD" in text


def test_english_maths_missing_fails() -> None:
    res = gateway({"english_maths_required": True}, {"english_maths": "missing"})
    assert res.outcome is Outcome.FAIL
    assert "English and maths missing" in res.summary


def test_malformed_deadline_is_a_profile_error() -> None:
    res = gateway({"deadlines": [{"role": "report", "weeks": 2}]}, {})
    assert res.outcome is Outcome.ERROR
    assert "needs 'before' or 'after'" in res.summary


def test_no_gateway_rules_is_not_applicable() -> None:
    assert gateway({}, {"months_on_programme": "14"}).outcome is Outcome.NOT_APPLICABLE
