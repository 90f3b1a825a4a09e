"""themes and starr: is each required theme / S.T.A.R.R. element covered, and where?

A theme is found by a heading naming it (strong evidence) or, failing that, by
its word or a synonym in at least ``min_sentences`` sentences of the counted
text (weak evidence: a warning, because "plan" or "support" also occur in
unrelated prose). Missing entirely is the violation. Every found element points at its
heading or first sentence so an assessor can check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from extractors.model import Block, Document, Location, SectionKind

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome, excerpt
from ..profile import Role

DEFAULT_SYNONYMS: dict[str, list[str]] = {
    "plan": ["plan", "planning", "scope", "scoping", "requirements"],
    "design": ["design"],
    "build": ["build", "built", "implement", "implementation", "develop", "development", "configure", "configuration",
              "install", "installation"],
    "test": ["test", "testing", "tested", "validation", "verification", "uat"],
    "deploy": ["deploy", "deployment", "deployed", "release", "rollout", "roll-out", "go-live"],
    "maintain": ["maintain", "maintenance", "maintaining", "support", "monitoring"],
    "situation": ["situation", "background", "context"],
    "task": ["task", "objective", "objectives", "brief"],
    "action": ["action", "actions"],
    "result": ["result", "results", "outcome", "outcomes"],
    "reflection": ["reflection", "reflections", "reflect", "reflected", "lessons learned", "lessons learnt",
                   "evaluation"],
}
STARR = ["Situation", "Task", "Action", "Result", "Reflection"]
_NOT_BODY = {SectionKind.REFERENCES, SectionKind.TOC, SectionKind.GLOSSARY, SectionKind.KSB_MAPPING}
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


@dataclass(slots=True)
class _Hit:
    how: str  # heading | content
    location: Location
    text: str
    sentences: int = 0


class Themes:
    id: ClassVar[str] = "themes"
    default_elements: ClassVar[list[str] | None] = None
    noun: ClassVar[str] = "theme"

    def run(self, ctx: CheckContext) -> CheckResult:
        elements = list(ctx.param("themes" if self.id == "themes" else "elements", self.default_elements or []))
        roles = [Role(r) for r in ctx.param("roles", ["report"])]
        docs = ctx.docs(*roles)
        if not docs:
            return ctx.not_applicable(f"no document with role {', '.join(r.value for r in roles)} was submitted")
        synonyms = {k.lower(): v for k, v in (ctx.param("synonyms") or {}).items()}
        min_sentences = int(ctx.param("min_sentences", 2))
        hits = {e: _find(e, _patterns(e, synonyms), docs, min_sentences) for e in elements}
        findings = [_describe(e, h) for e, h in hits.items()]
        missing = [e for e, h in hits.items() if h is None]
        measured = {e: (h.how if h else "missing") for e, h in hits.items()}
        if missing:
            return ctx.violation(f"{len(missing)} of {len(elements)} {self.noun}s not found: {', '.join(missing)}",
                                 measured=measured, expected=elements, findings=findings)
        weak = [e for e, h in hits.items() if h and h.how == "content"]
        if weak:  # words like "plan" or "support" also occur in unrelated prose: ask a person to look
            return ctx.result(Outcome.WARN, f"no heading for {', '.join(weak)}: only mentioned in the text; check "
                              "that each is really covered", measured=measured, expected=elements, findings=findings)
        return ctx.passed(f"all {len(elements)} {self.noun}s have a heading", measured=measured, expected=elements,
                          findings=findings)


class Starr(Themes):
    id: ClassVar[str] = "starr"
    default_elements: ClassVar[list[str] | None] = STARR
    noun: ClassVar[str] = "S.T.A.R.R. element"


def _patterns(element: str, synonyms: dict[str, list[str]]) -> re.Pattern[str]:
    words = synonyms.get(element.lower()) or DEFAULT_SYNONYMS.get(element.lower()) or [element.lower()]
    suffix = r"(?:s|es|d|ed|ing|ned|ning|ted|ting|ment|ments)?"  # planned, testing, deployment
    alts = "|".join(re.escape(w) + suffix for w in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"\b(?:{alts})\b", re.IGNORECASE)


def _find(element: str, pattern: re.Pattern[str], docs: list[Document], min_sentences: int) -> _Hit | None:
    for doc in docs:
        for s in doc.sections:
            if s.kind not in _NOT_BODY and s.detected_by != "preamble" and pattern.search(s.title):
                return _Hit("heading", s.location, s.title)
    first: Block | None = None
    count = 0
    for doc in docs:
        for b in doc.blocks:
            if b.part is None or b.section_kind in _NOT_BODY or b.kind.value == "header_footer":
                continue
            n = sum(1 for sent in _SENTENCE.findall(b.text) if pattern.search(sent))
            if n and first is None:
                first = b
            count += n
    if first is not None and count >= min_sentences:
        m = pattern.search(first.text)
        return _Hit("content", first.location, excerpt(first.text, m.start() if m else 0), count)
    return None


def _describe(element: str, hit: _Hit | None) -> Finding:
    if hit is None:
        return Finding(f"{element}: not found as a heading or in the text")
    if hit.how == "heading":
        return Finding(f"{element}: heading '{hit.text}'", hit.location, hit.text, {"found_by": "heading"})
    return Finding(f"{element}: no heading, mentioned in {hit.sentences} sentences (first shown)", hit.location,
                   hit.text, {"found_by": "content", "sentences": hit.sentences})
