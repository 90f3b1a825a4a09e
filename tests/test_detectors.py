"""Language detectors: reflective accounts, employer opinions, attribution, sensitive data.

Two kinds of evidence: the labelled sets in tests/data/detectors (real sentences
from the corpus portfolio plus hand-written ones, provenance on every line) give
precision and recall for the sentence rules; whole documents built from the
corpus markdown and from docgen show each check's outcome, the located findings
and the patterns named in them. Everything runs on the blank spaCy pipeline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extractors.model import Document
from tests.checkkit import ctx, doc, run
from tests.conftest import CORPUS, corpus_file
from tests.docgen import Docx, p, table
from validators import nlp as lang
from validators.checks.attribution import count_text
from validators.checks.reflective import classify_text, reflective_names
from validators.checks.sensitive import mask, masked_text, normalise_kinds, scan
from validators.model import CheckResult, Outcome
from validators.profile import Role

DATA = Path(__file__).parent / "data" / "detectors"
EPA = "epa/benfielding74_"


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def precision_recall(items: list[dict[str, Any]], positive: str, predict: Callable[[str], bool]) -> tuple[float, float]:
    tp = fp = fn = 0
    for r in items:
        pred, gold = predict(r["text"]), r["label"] == positive
        tp += pred and gold
        fp += pred and not gold
        fn += gold and not pred
    return tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0


def md(tmp_path: Path, name: str, text: str) -> Document:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return doc(path, name)


def docx(tmp_path: Path, name: str, *xml: str, headers: list[str] | None = None) -> Document:
    return doc(Docx(headers=headers or []).add(*xml).save(tmp_path / name), name)


def corpus_md(name: str) -> str:
    return corpus_file(f"epa/benfielding74_{name}").read_text(encoding="utf-8")


def check(check_id: str, docs: list[tuple[Document, Role]], params: dict[str, Any] | None = None) -> CheckResult:
    return run(check_id, ctx(check_id, docs, params or {}, severity="warn"))


# --------------------------------------------------------------------------- pipeline and helpers


@pytest.fixture
def fresh_pipeline() -> Iterator[None]:
    lang.reset()
    yield
    lang.reset()


def test_blank_pipeline_is_used_and_named(monkeypatch: pytest.MonkeyPatch, fresh_pipeline: None) -> None:
    monkeypatch.delenv(lang.MODEL_ENV, raising=False)
    assert lang.pipeline_name() == "blank:en+sentencizer+lemmatizer(lookup)"
    tokens = lang.parse(["Looking back, I developed and learnt a lot."])[0]
    assert [t.lemma_ for t in tokens][:5] == ["look", "back", ",", "i", "develop"]


def test_a_model_that_is_not_installed_falls_back_without_network(monkeypatch: pytest.MonkeyPatch,
                                                                  fresh_pipeline: None) -> None:
    monkeypatch.setenv(lang.MODEL_ENV, "en_gatecheck_missing_model")
    assert lang.pipeline_name().startswith("blank:en")
    assert "en_gatecheck_missing_model not installed" in lang.pipeline_name()
    assert reflective_names("On reflection, I should have asked sooner.")  # the rules still work


def test_an_installed_pipeline_named_in_the_environment_is_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   fresh_pipeline: None) -> None:
    import spacy

    saved = spacy.blank("en")
    saved.add_pipe("lemmatizer", config={"mode": "lookup"})
    saved.initialize()
    saved.meta["name"] = "gatecheck_test"
    saved.to_disk(tmp_path / "model")  # stands in for an installed package such as en_core_web_sm
    monkeypatch.setenv(lang.MODEL_ENV, str(tmp_path / "model"))
    assert lang.pipeline_name() == "en_gatecheck_test-0.0.0"
    assert "sentencizer" in lang.nlp().pipe_names  # added: the saved pipeline had no sentence boundaries
    assert reflective_names("Looking back, I learnt a lot.") == ["on_reflection", "i_learned"]


def test_a_broken_model_directory_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          fresh_pipeline: None) -> None:
    (tmp_path / "broken").mkdir()
    monkeypatch.setenv(lang.MODEL_ENV, str(tmp_path / "broken"))
    assert lang.pipeline_name().startswith("blank:en") and "could not be loaded" in lang.pipeline_name()


def test_sentences_carry_offsets_into_the_block_text() -> None:
    text = "I configured the receiver. Looking back, I would test first!  Done."
    sents = lang.sentences(lang.parse([text])[0])
    assert [s.text for s in sents] == ["I configured the receiver.", "Looking back, I would test first!", "Done."]
    assert all(text[s.start : s.end] == s.text for s in sents)


def test_pattern_language_compiles_to_matcher_tokens() -> None:
    assert lang.compile_pattern("^=looking back") == [{"IS_SENT_START": True, "LOWER": "looking"}, {"LEMMA": "back"}]
    assert lang.compile_pattern("i _{0,2} learn|teach") == [
        {"LEMMA": "i"}, {"OP": "{0,2}"}, {"LEMMA": {"IN": ["learn", "teach"]}}]
    assert lang.compile_pattern("=could|should have?") == [{"LOWER": {"IN": ["could", "should"]}},
                                                           {"LEMMA": "have", "OP": "?"}]
    ps = lang.PatternSet({"learned": ["i _{0,2} learn"]}, {"phrase": ["self-assessment"]})
    d = lang.parse(["My self-assessment is done. I quickly learnt it."])[0]
    assert ps.names_in(d) == ["phrase", "learned"]
    assert lang.names_by_sentence(ps.hits(d), lang.sentences(d)) == {0: ["phrase"], 1: ["learned"]}


# --------------------------------------------------------------------------- labelled sets


def test_labelled_sets_are_large_enough_and_every_line_has_provenance() -> None:
    refl, op = rows("reflective"), rows("opinion")
    assert len(refl) >= 60 and len(op) >= 40
    assert {r["label"] for r in refl} == {"reflective", "not_reflective"}
    assert {r["label"] for r in op} == {"opinion", "observation"}
    for name in ("reflective", "opinion", "attribution", "sensitive"):
        for r in rows(name):
            assert r["text"].strip() and r["source"].strip(), r
    real = [r for r in refl if r["source"].startswith("corpus:")]
    assert len(real) >= 40, "most reflective-set lines are real portfolio sentences"


@pytest.mark.corpus
def test_corpus_lines_really_are_in_the_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    cited = [r for name in ("reflective", "attribution", "sensitive") for r in rows(name)
             if r["source"].startswith("corpus:")]
    docs: dict[str, Document] = {}
    for r in cited:
        m = re.match(r"corpus:(\S+)#([LS])(\d+)", r["source"])  # L: markdown line, S: slide
        assert m, r["source"]
        rel, unit, n = m.group(1), m.group(2), int(m.group(3))
        if rel not in docs:
            docs[rel] = doc(corpus_file(rel), rel)
        blocks = [b.text for b in docs[rel].blocks
                  if (b.location.paragraph if unit == "L" else b.location.slide) == n]
        assert any(r["text"] in b for b in blocks), (r["source"], r["text"][:60])


def test_reflective_sentence_rule_precision_and_recall() -> None:
    data = rows("reflective")
    prec, rec = precision_recall(data, "reflective", lambda t: bool(reflective_names(t)))
    assert prec >= 0.9 and rec >= 0.7, (prec, rec)
    hold = [r for r in data if r["split"] == "holdout"]
    h_prec, h_rec = precision_recall(hold, "reflective", lambda t: bool(reflective_names(t)))
    assert h_prec >= 0.9 and h_rec >= 0.7, (h_prec, h_rec)
    real = [r for r in data if r["source"].startswith("corpus:")]
    r_prec, r_rec = precision_recall(real, "reflective", lambda t: bool(reflective_names(t)))
    assert r_prec >= 0.9 and r_rec >= 0.7, (r_prec, r_rec)


def test_opinion_sentence_rule_precision_and_recall() -> None:
    prec, rec = precision_recall(rows("opinion"), "opinion", lambda t: classify_text(t).label == "opinion")
    assert prec >= 0.9 and rec >= 0.7, (prec, rec)


def test_sentence_rules_name_their_patterns() -> None:
    assert reflective_names("If I did this project again, I would write the tests first.") == ["if_again"]
    assert reflective_names("My main weakness is estimating how long a ticket will take.") == ["strengths_weaknesses"]
    assert reflective_names("I observed Ben configure the receivers on 14 October 2022.") == []
    assert reflective_names("Claimants complete a self-assessment form online.") == []  # vetoed domain use
    praise = classify_text("He is hard-working and a pleasure to work with.")
    assert praise.label == "opinion" and praise.opinion == ["praise_phrase", "praise"]
    seen = classify_text("I observed Ben deliver an excellent presentation on 22 August.")
    assert seen.label == "observation" and "i_observed" in seen.observation and "praise" in seen.opinion


def test_attribution_counts_match_the_labelled_counts() -> None:
    for r in rows("attribution"):
        assert count_text(r["text"]) == r["counts"], r["text"]


@pytest.mark.parametrize("row", rows("sensitive"), ids=lambda r: r["text"][:40])
def test_sensitive_labelled_lines(row: dict[str, Any]) -> None:
    kinds = sorted({m.kind for m in scan(row["text"])})
    assert kinds == ([] if row["label"] == "none" else [row["label"]])


# --------------------------------------------------------------------------- reflective_accounts on documents

REFLECTIONS = (
    "Looking back, I would have asked for help sooner when the alerts fired in the wrong channel.",
    "I learned that PromQL queries should be tested in the Prometheus UI before they are deployed.",
    "My main weakness is estimating how long a ticket will take, and this is an area I need to improve.",
    "If I did this ticket again, I would abstract the bucket names into variables from the start.",
    "I feel I have developed my confidence when explaining technical problems to developers.",
)


@pytest.mark.corpus
def test_real_portfolio_evidence_is_not_a_reflective_account() -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    docs = [(doc(f, f"epa/{f.name}"), Role.EVIDENCE) for f in sorted((CORPUS / "epa").glob("*.md"))]
    r = check("reflective_accounts", docs)
    assert r.outcome is Outcome.PASS, r.summary
    # hack-3975's Result paragraph is genuinely reflective (8 sentences) but it is a STAR element
    assert r.measured["reflective_sentences"] == 15 and r.measured["units_flagged"] == []
    assert r.measured["pipeline"] == lang.pipeline_name()


def test_a_reflective_account_document_is_flagged_with_located_sentences(tmp_path: Path) -> None:
    d = docx(tmp_path, "placement.docx", p("Reflective account: platform placement", "Title"),
             p("During my placement I worked on the alerting tickets with the HACK team."), *map(p, REFLECTIONS))
    r = check("reflective_accounts", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert r.measured["units_flagged"] == ["placement.docx", "placement.docx › Reflective account: platform placement"]
    whole, section = (f for f in r.findings if f.detail["scope"] != "sentence")
    assert whole.detail["unit"] == "placement.docx" and whole.location and whole.location.paragraph == 3  # strongest
    assert section.location and section.location.paragraph == 1 and "reflective_heading" in section.detail["patterns"]
    sentences = [f for f in r.findings if f.detail["scope"] == "sentence"]
    by_para = {f.location.paragraph: f.detail["patterns"] for f in sentences if f.location}
    assert by_para == {3: ["on_reflection", "if_again"], 4: ["i_learned"],
                       5: ["strengths_weaknesses", "need_to_improve"], 6: ["if_again"],
                       7: ["i_feel", "self_development"]}
    assert all(f.detail["sentence"] for f in r.findings)
    assert sentences[0].excerpt == REFLECTIONS[0]


def test_one_reflective_sentence_does_not_condemn_a_document(tmp_path: Path) -> None:
    d = docx(tmp_path, "ticket.docx", p("Ticket HW-98", "Heading1"),
             p("I wrote a scrape configuration for s3_exporter."),
             p("I deployed it to the sandbox and then to production."), p(REFLECTIONS[1]))
    r = check("reflective_accounts", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS and r.measured["reflective_sentences"] == 1


def test_a_self_assessment_section_appended_to_real_evidence_is_flagged(tmp_path: Path) -> None:
    text = corpus_md("evidence_hack-HW98.md") + (
        "\n## Self-assessment\n\nI would rate myself 4 out of 5 for K6 problem solving.\n\n"
        "My strengths are documentation and persistence.\n")
    d = md(tmp_path, "hw98.md", text)
    r = check("reflective_accounts", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert r.measured["units_flagged"] == ["hw98.md › Self-assessment"]
    head, *sentences = r.findings
    assert head.excerpt == "Self-assessment" and head.location and head.location.heading_path == ("Self-assessment",)
    assert [f.detail["patterns"] for f in sentences] == [["self_assessment"], ["strengths_weaknesses"]]
    line_of = {w: text.count("\n", 0, text.index(w)) + 1 for w in ("I would rate", "My strengths")}
    assert [f.location.paragraph for f in sentences if f.location] == list(line_of.values())


def test_a_starr_reflection_section_weighs_less_than_a_reflective_account(tmp_path: Path) -> None:
    reflection = "\n\n".join(REFLECTIONS)
    star = md(tmp_path, "star.md", corpus_md("evidence_hack-HW98.md") + f"\n### Reflection\n\n{reflection}\n")
    r = check("reflective_accounts", [(star, Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS and r.measured["reflective_sentences"] == 7  # 2 real + 5 added
    plain = md(tmp_path, "log.md", f"# Learning log\n\nI worked on alerting tickets this month.\n\n"
                                   f"## Reflective account\n\n{reflection}\n")
    r = check("reflective_accounts", [(plain, Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert r.measured["units_flagged"] == ["log.md", "log.md › Learning log › Reflective account"]


def test_reflection_split_over_sub_sections_is_caught_at_their_parent(tmp_path: Path) -> None:
    text = corpus_md("evidence_hack-HW98.md") + (
        "\n## Reflective account\n\n### Strengths\n\nMy strengths are persistence and documentation.\n\n"
        "Looking back, affinity mapping was the right call.\n\n### Weaknesses\n\n"
        "My main weakness is PromQL.\n\nNext time I would test each query in the Prometheus UI first.\n")
    r = check("reflective_accounts", [(md(tmp_path, "hw98.md", text), Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert r.measured["units_flagged"] == ["hw98.md › Reflective account"]  # neither sub-section crosses alone


def test_a_starr_reflection_with_sub_headings_still_weighs_less(tmp_path: Path) -> None:
    reflection = "\n\n".join(REFLECTIONS)
    extra = f"\n### Reflection\n\n#### What I would do differently\n\n{reflection}\n"
    text = corpus_md("evidence_hack-HW98.md") + extra
    r = check("reflective_accounts", [(md(tmp_path, "star.md", text), Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS and r.measured["reflective_sentences"] == 7


def test_witness_statements_and_reference_lists_are_not_reflective(tmp_path: Path) -> None:
    ws = md(tmp_path, "witness-statement.md", "# Witness statement\n\n" + WITNESS)
    refs = doc(corpus_file("epa/benfielding74_reference-list.md"), "reference-list.md")
    r = check("reflective_accounts", [(ws, Role.EVIDENCE), (refs, Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS and r.measured["witness_statements_skipped"] == 1


def test_reflective_accounts_not_applicable_without_evidence(tmp_path: Path) -> None:
    d = docx(tmp_path, "report.docx", p(REFLECTIONS[0]))
    assert check("reflective_accounts", [(d, Role.REPORT)]).outcome is Outcome.NOT_APPLICABLE


# --------------------------------------------------------------------------- employer_contributions

WITNESS = (
    "Observed by: Jane Smith, Platform Lead\n\n"
    "On 14 October 2022 I observed Ben configure the Alertmanager receivers for the Find and Refer service.\n\n"
    "I watched him test each alert rule in the Prometheus UI before applying the Terraform.\n\n"
    "I can confirm that he updated the s3_exporter documentation and talked the team through it at Show and Tell.\n\n"
    "He is an excellent apprentice and a pleasure to work with.\n"
)


def test_an_observation_led_witness_statement_passes_but_lists_its_opinion(tmp_path: Path) -> None:
    d = md(tmp_path, "witness-statement-hw98.md", "# Witness statement\n\n" + WITNESS)
    r = check("employer_contributions", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS, r.summary
    assert r.measured["observation"] == 3 and r.measured["opinion"] == 1
    (f,) = r.findings
    assert f.location and f.location.paragraph == 11 and f.detail["patterns"] == ["praise", "praise_phrase"]


def test_a_witness_statement_is_recognised_by_its_file_name(tmp_path: Path) -> None:
    d = md(tmp_path, "witness_statement_jane-smith.md", WITNESS.split("\n\n", 1)[1])
    r = check("employer_contributions", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.PASS and "file name says 'witness statement'" in r.summary


def test_an_opinion_only_employer_reference_is_a_violation(tmp_path: Path) -> None:
    d = docx(tmp_path, "employer_reference.docx", p("Employer reference", "Title"),
             p("Ben is an excellent apprentice and a great asset to the team."),
             p("I believe he is one of the best apprentices we have had. He works well in a team."),
             p("I would highly recommend Ben for any future DevOps role."))
    r = check("employer_contributions", [(d, Role.EMPLOYER_REFERENCE)])
    assert r.outcome is Outcome.WARN and "role employer_reference" in r.summary
    assert [(f.location.paragraph if f.location else None, f.detail["patterns"]) for f in r.findings] == [
        (2, ["praise", "praise_phrase"]), (3, ["i_think", "praise_phrase"]), (4, ["recommend"])]
    assert r.measured["opinion_share"] == 1.0


def test_a_manager_feedback_section_inside_evidence_is_judged_alone(tmp_path: Path) -> None:
    text = corpus_md("evidence_hack-3975.md") + (
        "\n## Feedback from my line manager\n\nI think Ben did a great job on this ticket.\n\n"
        "He is hard-working and always willing to help.\n")
    d = md(tmp_path, "hack-3975.md", text)
    r = check("employer_contributions", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert "'hack-3975.md › Feedback from my line manager' (heading" in r.summary
    assert {f.location.heading_path for f in r.findings if f.location} == {("Feedback from my line manager",)}
    assert len(r.findings) == 2  # the apprentice's own "I feel this was a really good first ticket" is not testimony


def test_employer_contributions_not_applicable_without_testimony(tmp_path: Path) -> None:
    d = md(tmp_path, "hack.md", corpus_md("evidence_hack-HW98.md"))
    assert check("employer_contributions", [(d, Role.EVIDENCE)]).outcome is Outcome.NOT_APPLICABLE
    assert check("employer_contributions", [(d, Role.REPORT)]).outcome is Outcome.NOT_APPLICABLE


# --------------------------------------------------------------------------- attribution


def test_a_team_voiced_report_warns_with_the_we_sentences(tmp_path: Path) -> None:
    d = docx(tmp_path, "report.docx", p("Introduction", "Heading1"),
             p("We built the pipeline and we tested it in our sandbox."),
             p("I wrote the alert rules."), p("Our team then deployed it. We monitored it for a week."),
             p("References", "Heading1"), p("We Are Developers (2022) Why we use Terraform. Blog post."))
    r = check("attribution", [(d, Role.REPORT)])
    assert r.outcome is Outcome.WARN
    assert (r.measured["i"], r.measured["we"], r.measured["we_share"]) == (1, 5, 0.833)  # References not counted
    assert [(f.location.paragraph, f.detail["patterns"]) for f in r.findings if f.location] == [
        (2, ["we", "our"]), (4, ["our"]), (4, ["we"])]
    assert r.findings[2].excerpt == "We monitored it for a week."


def test_an_apprentice_voiced_report_passes(tmp_path: Path) -> None:
    d = md(tmp_path, "report.md", corpus_md("evidence_hack-3975.md"))
    r = check("attribution", [(d, Role.REPORT)])
    assert r.outcome is Outcome.PASS and r.measured["i"] > 2 * r.measured["we"]
    assert check("attribution", [(d, Role.EVIDENCE)]).outcome is Outcome.NOT_APPLICABLE


def test_attribution_threshold_is_a_parameter(tmp_path: Path) -> None:
    d = md(tmp_path, "ami.md", corpus_md("evidence_AMI-refresh-project.md"))
    assert check("attribution", [(d, Role.REPORT)]).outcome is Outcome.WARN  # 58 we / 30 I
    assert check("attribution", [(d, Role.REPORT)], {"max_we_share": 0.7}).outcome is Outcome.PASS


# --------------------------------------------------------------------------- sensitive_data

SECRET = "Tr0ub4dor&3x"


def test_sensitive_data_is_located_and_never_echoed(tmp_path: Path) -> None:
    d = docx(tmp_path, "evidence.docx", p("Deployment notes", "Heading1"),
             p(f"I exported DB_PASSWORD={SECRET} and connected to 10.20.4.17 for the migration."),
             table([["Owner", "ben.fielding@dwp.gov.uk"], ["Mobile", "07911 123456"]]),
             headers=["Claimant JK 98 76 54 D"])
    r = check("sensitive_data", [(d, Role.EVIDENCE)])
    assert r.outcome is Outcome.WARN
    assert r.measured["by_kind"] == {"credential": 1, "private_key": 0, "ip_address": 1, "ni_number": 1,
                                     "email": 1, "phone": 1}
    where = {f.detail["kind"]: f.location for f in r.findings if f.location}
    assert where["credential"].paragraph == 2 and where["ip_address"].paragraph == 2
    assert (where["email"].table, where["email"].row, where["email"].col) == (1, 1, 2)
    assert (where["phone"].row, where["phone"].col) == (2, 2)
    assert where["ni_number"].part == "word/header1.xml"
    text = json.dumps([f.to_dict() for f in r.findings])
    for secret in (SECRET, "10.20.4.17", "ben.fielding@dwp.gov.uk", "07911 123456", "98 76 54"):
        assert secret not in text
    cred = next(f for f in r.findings if f.detail["kind"] == "credential")
    assert cred.detail["masked"] == "Tr********3x" and "DB_PASSWORD=Tr********3x" in cred.excerpt
    assert cred.detail["patterns"] == ["secret_assignment"]


@pytest.mark.corpus
def test_real_portfolio_has_nothing_to_redact() -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    docs = [(doc(f, f.name), Role.EVIDENCE) for f in sorted((CORPUS / "epa").glob("*.md"))]
    r = check("sensitive_data", docs)
    assert r.outcome is Outcome.PASS, [f.to_dict() for f in r.findings]  # its Slack webhooks are already XXXX-masked


def test_kinds_parameter_selects_and_accepts_plain_names(tmp_path: Path) -> None:
    d = md(tmp_path, "n.md", "Call 07911 123456 or mail ben.fielding@dwp.gov.uk\n")
    r = check("sensitive_data", [(d, Role.EVIDENCE)], {"kinds": ["phone numbers"]})
    assert r.outcome is Outcome.WARN and [f.detail["kind"] for f in r.findings] == ["phone"]
    assert "be" in r.findings[0].excerpt and "ben.fielding" not in r.findings[0].excerpt  # other kinds masked too
    assert normalise_kinds("all") == normalise_kinds(None) and normalise_kinds(["IP addresses"]) == ["ip_address"]
    with pytest.raises(ValueError, match="unknown sensitive_data kind"):
        normalise_kinds(["passport numbers"])


def test_masking_keeps_length_and_private_key_armour() -> None:
    assert mask("hunter2") == "h*****2" and mask("abc") == "***" and len(mask(SECRET)) == len(SECRET)
    key = "-----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA7bq9-----END RSA PRIVATE KEY-----"
    assert masked_text(key) == "-----BEGIN RSA PRIVATE KEY-----" + "*" * 20 + "-----END RSA PRIVATE KEY-----"


def test_sensitive_data_not_applicable_without_documents() -> None:
    assert check("sensitive_data", []).outcome is Outcome.NOT_APPLICABLE
