"""Reflective accounts and employer opinions in a portfolio.

Seed 000: "The portfolio should not include reflective accounts or any methods of
self-assessment. Any employer contributions should focus on direct observation
of performance (for example witness statements) rather than opinions."

Both checks are rules over sentences, tuned for precision: an assessor acts on
every flag, so each one names the patterns that fired and the sentence they
fired on, and a document is condemned only by an accumulation of evidence,
never by one "I learned".

``ReflectiveAccounts`` scores each sentence by its strongest reflective pattern,
then adds the scores per document and per section. A unit is a reflective
account when the sum, the number of reflective sentences, the number of
distinct patterns and the share of reflective sentences all reach their
thresholds. A STAR(R) write-up's own Result/Reflection section is part of an
evidence piece, not a reflective account: it counts at half weight towards the
document and is never flagged on its own. Witness statements (first person, but
the employer's) are left to ``EmployerContributions``.

``EmployerContributions`` finds witness statements and employer testimony (by
role, title, headings or the opening lines) and sorts their sentences into
observations ("I observed", "on 12 March she configured ...") and opinions
("I believe", "a great asset", "I would recommend"); a sentence with an
observation marker is an observation even when it praises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any, ClassVar

from spacy.tokens import Doc

from extractors.model import Block, BlockKind, Document, SectionKind

from .. import nlp as lang
from ..base import CheckContext, counted_blocks
from ..model import CheckResult, Finding, excerpt
from ..profile import Role

# --------------------------------------------------------------------------- reflective patterns

# name -> (weight, pattern specs). Weight 2: wording that only a reflective account or
# self-assessment uses; 1.5: self-evaluation of one's development; 1: learning talk that
# also appears in ordinary evidence narrative.
_TRAITS = ("skill|confidence|knowledge|understanding|ability|communication|competence|awareness|expertise"
           "|practice|approach")
_REFLECTIVE: dict[str, tuple[float, list[lang.Spec]]] = {
    "on_reflection": (2.0, [
        "on|upon reflection", "^=looking back", "when i look back", "in|with hindsight",
        "reflect on|upon", "i _? reflect", "=having =reflected",
    ]),
    "if_again": (2.0, [
        "if i _{0,2} do _? it|this|that|things _? again", "if i be to do", "if i have to do it|this again",
        "if i have more time", "next time i _{0,2} =will|=would|='d|='ll", "=in =future i =will|=would",
        "=in =the =future i =will|=would", "=going =forward i =will|=would",
        "i _{0,2} =would|could|should|'d _{0,3} =differently", "do anything|things|something _? =differently",
        "=differently =next =time", "i =would =change",
        [{"LEMMA": "i"}, {"LOWER": {"IN": ["could", "should", "would"]}}, {"LOWER": "have"},
         {"LOWER": {"NOT_IN": ["to", "the", "a", "an"]}}],  # not "would have to", "would have a meeting"
    ]),
    "strengths_weaknesses": (2.0, [
        "my _{0,2} strength|weakness", "my _? area for|of development|improvement",
        "^area for|of development|improvement",
        "=an|a? area i _? need to", "my development goal|need|area|plan|point|objective|target",
        "something i _? =will|=need _? to? focus|work on",
    ]),
    "self_assessment": (2.0, [
        "rate|score|grade|mark|assess|evaluate|appraise myself", "i _{0,2} rate my",
        "give myself =a|an? _? score|mark|rating|grade", "evaluate|assess my own performance|progress|work",
        "my own performance", "reflective account|log|journal|diary|essay|practice|statement|summary",
    ]),
    "what_went_well": (2.0, ["^what go =well", "^=even =better =if", "^=www", "^=ebi"]),
    "self_development": (1.5, [
        f"i _{{0,2}} develop|improve|grow|build|strengthen|broaden|deepen my _{{0,2}} {_TRAITS}",
        "i _{0,2} have? grow|mature _? in|as", "i _{0,2} have? develop|improve =as =a|an",
        "i _{0,2} have? become _{0,2} =better|=more",
        "i _{0,2} feel|be _{0,2} =more =confident|=comfortable", "i be _{0,2} not _? =confident|=comfortable",
        f"my _{{0,2}} {_TRAITS}|coding|writing have? _? grow|improve|increase|develop",
        "i _{0,2} have be able to gain|learn", "my _? knowledge|skill|skills gap",
        "help me _? to? grow|develop|realise|mature|improve",
        f"improve my _{{0,2}} {_TRAITS}",
        "i be _? =proud|pleased|happy =with|of", "=valuable|rewarding|positive|great learning? experience",
        "=challenging =but =rewarding",
    ]),
    "need_to_improve": (1.5, [
        "i _? =need to improve|develop|learn|practise|practice|focus|gain|strengthen", "i _? =need to work on",
        "i =still =need to",
    ]),
    "i_learned": (1.0, [
        "i _{0,2} learn", "teach me", "lesson i _{0,2} learn|take",
        "=valuable|key|important|big|biggest|main|best lesson",
        "lesson learn", "key takeaway", "takeaway for me", "make me realise|think|appreciate|understand",
        "help me _? to? learn|understand",
        "highlight for|to me", "i _{0,2} realise that", "give me =a|an? opportunity",
        "i _{0,2} have =a|an|the opportunity to",
        "opportunity to learn|develop|grow|gain", "be =a|an? =good|great|valuable|useful opportunity",
    ]),
    "i_feel": (1.0, ["i _{0,2} =feel", "i =enjoyed|=enjoy", "i _{0,2} find _{0,3} =challenging|rewarding|difficult"]),
}
_REFLECTIVE_PHRASES = {
    "self_assessment": ["self-assessment", "self assessment", "self-evaluation", "self evaluation",
                        "self-reflection", "self reflection", "self-appraisal"],
}
# Domain uses that look reflective but are not (HMRC Self Assessment, a form for claimants).
_VETO = lang.PatternSet({"veto": ["self - assessment form|tax|return", "self assessment form|tax|return"]})
REFLECTIVE_PATTERNS = lang.PatternSet({k: v[1] for k, v in _REFLECTIVE.items()}, _REFLECTIVE_PHRASES)
WEIGHTS = {k: v[0] for k, v in _REFLECTIVE.items()}
HEADING_WEIGHT = 2.0

_REFLECTIVE_HEADING = re.compile(
    r"reflective\s+(account|log|journal|diary|statement|essay|practice|summary|piece)|self[\s-]*(assessment|evaluation"
    r"|reflection|appraisal)|personal\s+reflection|what\s+went\s+well|even\s+better\s+if|my\s+reflections?\b",
    re.IGNORECASE,
)
_STAR_ELEMENT = re.compile(r"^\W*(situation|task|actions?|results?|reflections?|outcomes?|learning|lessons?\s+learn\w*)"
                           r"\b", re.IGNORECASE)
_STAR_CORE = ("situation", "task", "action", "result")
_STAR_LATE = re.compile(r"^\W*(results?|reflections?|outcomes?|learning|lessons?\s+learn\w*|evaluation)\b",
                        re.IGNORECASE)
_SKIP_KINDS = {SectionKind.REFERENCES, SectionKind.KSB_MAPPING, SectionKind.TOC, SectionKind.GLOSSARY}
_TEXT_KINDS = {BlockKind.PARAGRAPH, BlockKind.LIST_ITEM, BlockKind.TABLE_CELL, BlockKind.TEXT_BOX,
               BlockKind.SLIDE_BODY, BlockKind.NOTES, BlockKind.CAPTION, BlockKind.FOOTNOTE, BlockKind.ENDNOTE}


def reflective_names(text: str) -> list[str]:
    """Reflective pattern names firing in ``text`` (a sentence or paragraph): the per-sentence rule."""
    doc = lang.parse([text])[0]
    return _names(_hits(doc), 0, len(doc))


def _hits(doc: Doc) -> list[lang.Hit]:
    """Reflective hits of one block, minus those inside a vetoed domain phrase (run once per block)."""
    vetoed = [(h.start_token, h.end_token) for h in _VETO.hits(doc)]
    return [h for h in REFLECTIVE_PATTERNS.hits(doc) if not any(a <= h.start_token < b for a, b in vetoed)]


def _names(hits: Sequence[lang.Hit], start: int, end: int) -> list[str]:
    return list(dict.fromkeys(h.name for h in hits if start <= h.start_token < end))


def sentence_weight(names: Iterable[str]) -> float:
    """A sentence scores its strongest pattern once: three patterns in one sentence are still one sentence."""
    return max((WEIGHTS.get(n, HEADING_WEIGHT) for n in names), default=0.0)


# --------------------------------------------------------------------------- testimony detection

_TESTIMONY = re.compile(
    r"witness\s+(statement|testimony|account)|testimon(y|ial)|employer(?:'s)?\s+(statement|reference|testimony|feedback"
    r"|contribution|observation)|observation\s+(record|report|statement|form)|observed\s+by|statement\s+(from|by)\s+"
    r"(my\s+|the\s+)?(line\s+)?manager|manager(?:'s)?\s+(statement|feedback|testimony)|feedback\s+from\s+(my\s+|the\s+)?"
    r"(line\s+)?manager|reference\s+from\s+(my\s+|the\s+)?(employer|(line\s+)?manager|supervisor)",
    re.IGNORECASE,
)
_HEAD_BLOCKS = 3  # a form's title lives in its first lines


def doc_is_testimony(doc: Document, role: Role | None = None) -> str | None:
    """Why ``doc`` is an employer's statement as a whole, or None: role, title, file name or opening lines."""
    if role is Role.EMPLOYER_REFERENCE:
        return "role employer_reference"
    title = str(doc.metadata.get("title", ""))
    for label, text in (("title", title), ("file name", re.sub(r"[-_.]+", " ", PurePosixPath(doc.file).stem))):
        m = _TESTIMONY.search(text)
        if m:
            return f"{label} says '{m.group(0)}'"
    for b in [b for b in counted_blocks(doc)][:_HEAD_BLOCKS]:
        m = _TESTIMONY.search(b.text)
        if m:
            return f"opening line says '{m.group(0)}'"
    return None


def testimony_headings(doc: Document) -> list[Block]:
    """Headings that open a witness statement or employer testimony inside a larger document."""
    return [b for b in doc.blocks if b.kind in (BlockKind.HEADING, BlockKind.SLIDE_TITLE) and _TESTIMONY.search(b.text)]


def _in_testimony_section(block: Block, headings: Sequence[Block]) -> bool:
    titles = {h.text.strip() for h in headings}
    return any(t.strip() in titles for t in block.location.heading_path)


# --------------------------------------------------------------------------- shared sentence walk


@dataclass(slots=True)
class ScoredSentence:
    block: Block
    sentence: lang.Sentence
    names: list[str]
    factor: float = 1.0  # STAR(R) Result/Reflection sections count less

    @property
    def weight(self) -> float:
        return sentence_weight(self.names) * self.factor


@dataclass(slots=True)
class Unit:
    """A document or one of its sections, with its sentences' reflective scores."""

    label: str
    anchor: Block | None
    sentences: list[ScoredSentence] = field(default_factory=list)
    heading_names: list[str] = field(default_factory=list)
    standalone: bool = True  # False: a STAR Result/Reflection section, judged only as part of its document
    path: tuple[str, ...] = ()  # heading path of a section; () for the whole document

    @property
    def matched(self) -> list[ScoredSentence]:
        return [s for s in self.sentences if s.names]

    @property
    def score(self) -> float:
        return sum(s.weight for s in self.matched) + HEADING_WEIGHT * bool(self.heading_names)

    @property
    def patterns(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self.heading_names)
        for s in self.matched:
            seen.update(dict.fromkeys(s.names))
        return list(seen)

    @property
    def share(self) -> float:
        total = len(self.sentences)
        return sum(s.factor for s in self.matched) / total if total else 0.0


def block_sentences(blocks: Sequence[Block]) -> Iterator[tuple[Block, Doc, list[lang.Sentence]]]:
    """Each block with its parse and sentences; all blocks go through ``nlp.pipe`` in one batch."""
    docs = lang.parse([b.text for b in blocks])
    for b, d in zip(blocks, docs, strict=True):
        yield b, d, lang.sentences(d)


def is_star(doc: Document) -> bool:
    """A STAR(R) write-up: at least three of Situation/Task/Action/Result as headings."""
    found = set()
    for b in doc.blocks:
        if b.kind in (BlockKind.HEADING, BlockKind.SLIDE_TITLE):
            m = _STAR_ELEMENT.match(b.text.strip())
            if m:
                found.add(m.group(1).lower().rstrip("s"))
    return sum(1 for e in _STAR_CORE if e in found) >= 3


def _star_late(path: Sequence[str]) -> bool:
    """Inside a Result/Reflection/Learning element of a STAR(R) write-up (at any depth)."""
    return any(_STAR_LATE.match(h) for h in path)


def flat(text: str, width: int = 300) -> str:
    return excerpt(text, 0, width)


# --------------------------------------------------------------------------- reflective accounts


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_score: float = 4.0
    min_sentences: int = 3  # reflective sentences (a reflective heading counts as one)
    min_patterns: int = 2
    min_share: float = 0.2
    star_weight: float = 0.5

    @classmethod
    def from_ctx(cls, ctx: CheckContext) -> Thresholds:
        d = cls()
        return cls(**{f.name: type(getattr(d, f.name))(ctx.param(f.name, getattr(d, f.name))) for f in fields(cls)})

    def crossed(self, unit: Unit) -> bool:
        items = len(unit.matched) + bool(unit.heading_names)
        return (unit.score >= self.min_score and items >= self.min_sentences
                and len(unit.patterns) >= self.min_patterns and unit.share >= self.min_share)


def reflective_units(doc: Document, thresholds: Thresholds) -> list[Unit]:
    """The document, then every section with its sub-sections: the units the threshold is applied to."""
    star = is_star(doc)
    testimony = testimony_headings(doc)
    name = PurePosixPath(doc.file).name
    whole = Unit(name, None, heading_names=_title_names(doc))
    sections: dict[tuple[str, ...], Unit] = {}

    def section(path: tuple[str, ...]) -> Unit:
        if path not in sections:  # a STAR(R) Result/Reflection is weighed with its document, never alone
            sections[path] = Unit(f"{name} › {' › '.join(path)}", None, standalone=not (star and _star_late(path)),
                                  path=path)
        return sections[path]

    blocks = [b for b in counted_blocks(doc) if b.section_kind not in _SKIP_KINDS
              and not _in_testimony_section(b, testimony)]
    for b in blocks:
        if b.kind in (BlockKind.HEADING, BlockKind.SLIDE_TITLE) and b.location.heading_path:
            unit = section(b.location.heading_path)  # a heading's own path ends with itself
            unit.anchor = unit.anchor or b
            if unit.standalone and _REFLECTIVE_HEADING.search(b.text):
                unit.heading_names = ["reflective_heading"]
    for b, d, sents in block_sentences([b for b in blocks if b.kind in _TEXT_KINDS]):
        path = b.location.heading_path
        factor = thresholds.star_weight if star and _star_late(path) else 1.0
        hits = _hits(d)
        for s in sents:
            scored = ScoredSentence(b, s, _names(hits, s.first_token, s.end_token), factor)
            whole.sentences.append(scored)
            for depth in range(1, len(path) + 1):
                section(path[:depth]).sentences.append(scored)
    return [whole, *sections.values()]


def flagged_units(units: Sequence[Unit], thresholds: Thresholds) -> list[Unit]:
    """Units over the threshold; of nested sections only the innermost, which points closest to the text."""
    crossed = [u for u in units if u.standalone and thresholds.crossed(u)]
    paths = [u.path for u in crossed if u.path]
    return [u for u in crossed if not u.path
            or not any(len(p) > len(u.path) and p[: len(u.path)] == u.path for p in paths)]


def _title_names(doc: Document) -> list[str]:
    title = f"{doc.metadata.get('title', '')} {re.sub(r'[-_.]+', ' ', PurePosixPath(doc.file).stem)}"
    return ["reflective_heading"] if _REFLECTIVE_HEADING.search(title) else []


class ReflectiveAccounts:
    id: ClassVar[str] = "reflective_accounts"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", [Role.EVIDENCE])]
        submitted = ctx.submission.with_role(*roles)
        if not submitted:
            return ctx.not_applicable(f"no documents with role {', '.join(map(str, roles))}")
        th = Thresholds.from_ctx(ctx)
        flagged: list[Unit] = []
        considered = skipped = matched = 0
        for sd in submitted:
            if doc_is_testimony(sd.doc, sd.role):
                skipped += 1  # an employer's statement: EmployerContributions judges it
                continue
            considered += 1
            units = reflective_units(sd.doc, th)
            matched += len(units[0].matched)
            flagged += flagged_units(units, th)
        measured = {"documents": considered, "witness_statements_skipped": skipped, "reflective_sentences": matched,
                    "units_flagged": [u.label for u in flagged], "pipeline": lang.pipeline_name()}
        expected = {f.name: getattr(th, f.name) for f in fields(Thresholds)}
        if not flagged:
            return ctx.passed(f"no reflective account or self-assessment: {matched} reflective sentence(s) in "
                              f"{considered} document(s), none reaching the threshold",
                              measured=measured, expected=expected)
        findings = _unit_findings(flagged, int(ctx.param("max_findings", 60)))
        return ctx.violation(f"{len(flagged)} document(s)/section(s) read as reflective accounts or "
                             f"self-assessment: {', '.join(u.label for u in flagged[:5])}",
                             measured=measured, expected=expected, findings=findings)


def _unit_findings(units: Sequence[Unit], limit: int) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    for u in units:
        best = max(u.matched, key=lambda s: s.weight, default=None)
        loc = u.anchor.location if u.anchor else (best.block.location if best else None)
        out.append(Finding(
            f"'{u.label}' reads as a reflective account/self-assessment: {len(u.matched)} of {len(u.sentences)} "
            f"sentences reflective, score {u.score:g}",
            loc, flat(u.anchor.text if u.anchor else best.sentence.text if best else ""),
            {"scope": "section" if u.path else "document", "patterns": u.patterns,
             "sentence": flat(best.sentence.text) if best else "", "unit": u.label, "score": round(u.score, 2)},
        ))
        for s in u.matched:
            key = (id(s.block), s.sentence.start)
            if key in seen:
                continue
            seen.add(key)
            out.append(Finding(f"reflective wording ({', '.join(s.names)})", s.block.location, flat(s.sentence.text),
                               {"scope": "sentence", "patterns": s.names, "sentence": flat(s.sentence.text),
                                "unit": u.label, "weight": s.weight}))
    return out[:limit]


# --------------------------------------------------------------------------- employer contributions

_PRAISE_WORDS = [
    "excellent", "outstanding", "exceptional", "fantastic", "brilliant", "superb", "amazing", "wonderful",
    "dedicated", "enthusiastic", "reliable", "talented", "hardworking", "diligent", "conscientious", "promising",
    "asset", "credit", "pleasure", "invaluable", "exemplary", "impressive",
]
_OPINION: dict[str, list[lang.Spec]] = {
    "i_think": ["i _? =think|=believe|=feel|=felt|=consider|=reckon|=thought|=believed|=considered",
                "in my opinion|view|experience", "from what i have =seen|=heard", "i =find|=found him|her|them"],
    "certainty": ["i have no doubt", "without =a? doubt", "i be confident that|he|she|they",
                  "i be sure that|he|she|they"],
    "recommend": ["i _{0,2} recommend", "=highly =recommend|=recommended", "can not|cannot praise",
                  "deserve =a|an? _? distinction|merit|pass"],
    "praise": [f"={w}" for w in _PRAISE_WORDS],
    "praise_phrase": [
        "=great|real|valuable asset", "asset to", "pleasure to work|supervise|manage", "=hard - =working",
        "natural leader|talent", "team player", "credit to", "=valued|valuable member", "=well =liked",
        "bright future", "above and beyond", "one of the =best", "the =best|=most _? apprentice|engineer|colleague",
        "quick learner", "=very capable|knowledgeable|professional|talented|skilled|good|able",
        "=high|highest standard", "=great|positive|fantastic|excellent attitude", "keen to learn",
        "=fully =competent", "=always =willing|keen|happy|eager",
    ],
}
_ACTION_PAST = [
    "configured", "deployed", "implemented", "wrote", "built", "created", "presented", "delivered", "led", "resolved",
    "fixed", "tested", "demonstrated", "explained", "raised", "migrated", "documented", "updated", "designed", "ran",
    "completed", "produced", "identified", "diagnosed", "analysed", "analyzed", "trained", "facilitated", "reviewed",
    "merged", "automated", "monitored", "refactored", "rebased", "debugged", "renewed", "took", "agreed", "added",
    "paired", "walked", "answered", "shared", "planned", "prepared", "organised", "organized", "chaired", "coached",
    "mentored", "escalated", "investigated", "installed", "upgraded", "patched", "restored", "recovered", "scripted",
    "coded", "handled", "drafted", "published", "wrote", "set", "showed", "replaced", "removed", "rolled",
]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DAY_NUM: dict[str, Any] = {"TEXT": {"REGEX": r"^\d{1,2}(st|nd|rd|th)?$"}}
_OBSERVATION: dict[str, list[lang.Spec]] = {
    "i_observed": ["i _{0,2} =observed|=witnessed|=watched|=saw|=attended|=sat|=reviewed|=checked|=inspected"
                   "|=supervised|=listened|=joined", "i _? =was =present", "in my presence",
                   "i have =observed|=witnessed",
                   "i _? =can|=could confirm|verify", "i be able to confirm|verify", "show|demonstrate to me"],
    "dated": [[{"LOWER": "on"}, _DAY_NUM, {"LOWER": {"IN": _MONTHS}}],
              [{"LOWER": "on"}, {"LOWER": {"IN": _MONTHS}}, _DAY_NUM],
              [{"LOWER": "on"}, {"LOWER": {"IN": _DAYS}}],
              "=during the _{0,3} meeting|session|call|incident|sprint|review|presentation|demo|tell|stand|standup"],
    "did_action": [[{"LOWER": {"IN": ["he", "she", "they"]}}, {"OP": "{0,2}", "IS_ALPHA": True},
                    {"LOWER": {"IN": _ACTION_PAST}}],
                   [{"IS_TITLE": True, "LOWER": {"NOT_IN": ["i", "the", "this", "that", "it", "on", "during", "in"]}},
                    {"OP": "?", "IS_ALPHA": True, "IS_LOWER": True}, {"LOWER": {"IN": _ACTION_PAST}}]],
}
OPINION_PATTERNS = lang.PatternSet(_OPINION)
OBSERVATION_PATTERNS = lang.PatternSet(_OBSERVATION)


@dataclass(frozen=True, slots=True)
class Statement:
    label: str  # opinion | observation | neutral
    opinion: list[str]
    observation: list[str]


def classify(op_hits: Sequence[lang.Hit], ob_hits: Sequence[lang.Hit], start: int, end: int) -> Statement:
    """Opinion only when opinion patterns fire and no observation marker does (precision first)."""
    op = _names_between(op_hits, start, end)
    ob = _names_between(ob_hits, start, end)
    label = "observation" if ob else "opinion" if op else "neutral"
    return Statement(label, op, ob)


def classify_sentences(doc: Doc, sents: Sequence[lang.Sentence]) -> list[Statement]:
    """One statement per sentence of a block; the matchers run once per block."""
    op, ob = OPINION_PATTERNS.hits(doc), OBSERVATION_PATTERNS.hits(doc)
    return [classify(op, ob, s.first_token, s.end_token) for s in sents]


def classify_text(text: str) -> Statement:
    """The per-sentence rule applied to ``text`` as a whole (labelled-set evaluation)."""
    doc = lang.parse([text])[0]
    return classify(OPINION_PATTERNS.hits(doc), OBSERVATION_PATTERNS.hits(doc), 0, len(doc))


def _names_between(hits: Iterable[lang.Hit], start: int, end: int) -> list[str]:
    return list(dict.fromkeys(h.name for h in hits if start <= h.start_token < end))


@dataclass(slots=True)
class Testimony:
    label: str
    why: str
    blocks: list[Block]
    statements: list[tuple[Block, lang.Sentence, Statement]] = field(default_factory=list)

    def count(self, label: str) -> int:
        return sum(1 for _, _, s in self.statements if s.label == label)


def testimonies(doc: Document, role: Role) -> list[Testimony]:
    """The whole document when it is a statement, else each section under a testimony heading."""
    name = PurePosixPath(doc.file).name
    body = [b for b in counted_blocks(doc) if b.kind in _TEXT_KINDS]
    why = doc_is_testimony(doc, role)
    if why:
        return [Testimony(name, why, body)]
    out = []
    for h in testimony_headings(doc):
        inside = [b for b in body if h.text.strip() in {t.strip() for t in b.location.heading_path}]
        if inside:
            out.append(Testimony(f"{name} › {h.text.strip()}", f"heading '{h.text.strip()}'", inside))
    return out


def _classify_testimony(t: Testimony) -> None:
    for b, d, sents in block_sentences(t.blocks):
        t.statements += [(b, s, st) for s, st in zip(sents, classify_sentences(d, sents), strict=True)]


class EmployerContributions:
    id: ClassVar[str] = "employer_contributions"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", [Role.EMPLOYER_REFERENCE, Role.EVIDENCE])]
        submitted = ctx.submission.with_role(*roles)
        if not submitted:
            return ctx.not_applicable(f"no documents with role {', '.join(map(str, roles))}")
        found = [t for sd in submitted for t in testimonies(sd.doc, sd.role)]
        if not found:
            return ctx.not_applicable(f"no witness statement or employer testimony found in {len(submitted)} "
                                      "document(s) (looked for the role, titles, headings and opening lines)",
                                      measured={"documents": len(submitted), "pipeline": lang.pipeline_name()})
        for t in found:
            _classify_testimony(t)
        max_share = float(ctx.param("max_opinion_share", 0.5))
        bad = [t for t in found if _opinion_heavy(t, max_share)]
        findings = _opinion_findings(found, int(ctx.param("max_findings", 60)))
        measured = _testimony_measures(found)
        expected = {"max_opinion_share": max_share, "opinion_only_statement": False}
        if bad:
            return ctx.violation(f"{len(bad)} employer statement(s) give opinions rather than observed performance: "
                                 + "; ".join(_describe(t) for t in bad), measured=measured, expected=expected,
                                 findings=findings)
        return ctx.passed(f"{len(found)} employer statement(s) focus on observed performance: "
                          + "; ".join(_describe(t) for t in found), measured=measured, expected=expected,
                          findings=findings)


def _opinion_heavy(t: Testimony, max_share: float) -> bool:
    op, ob = t.count("opinion"), t.count("observation")
    return op > 0 and (ob == 0 or op / (op + ob) > max_share)


def _describe(t: Testimony) -> str:
    return (f"'{t.label}' ({t.why}): {t.count('opinion')} opinion, {t.count('observation')} observation, "
            f"{t.count('neutral')} other sentence(s)")


def _testimony_measures(found: Sequence[Testimony]) -> dict[str, object]:
    op = sum(t.count("opinion") for t in found)
    ob = sum(t.count("observation") for t in found)
    return {"statements": len(found), "sentences": sum(len(t.statements) for t in found), "opinion": op,
            "observation": ob, "opinion_share": round(op / (op + ob), 3) if op + ob else 0.0,
            "pipeline": lang.pipeline_name()}


def _opinion_findings(found: Sequence[Testimony], limit: int) -> list[Finding]:
    out = []
    for t in found:
        for b, s, st in t.statements:
            if st.label == "opinion":
                out.append(Finding(f"opinion rather than observed performance ({', '.join(st.opinion)}) in '{t.label}'",
                                   b.location, flat(s.text),
                                   {"patterns": st.opinion, "sentence": flat(s.text), "statement": t.label}))
    return out[:limit]
