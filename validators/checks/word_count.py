"""word_count: counted words against the target ± tolerance, with every exclusion shown.

EPAOs enforce both ends: under the minimum fails, and words past the maximum are
not marked, so an over-long report is located at the word where marking stops.
Near a bound, Word, LibreOffice and PDF tools disagree by a few percent, so a
count within ``borderline_pct`` of a bound is a warning even when inside.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, ClassVar

from extractors.model import Block, Document, SectionKind
from extractors.wordcount import CountMode, count_words, word_spans

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome, excerpt
from ..profile import Role

DEFAULT_EXCLUDED = ["appendix", "references", "ksb_mapping", "toc", "front_matter", "glossary"]
_WHY = {
    "appendix": "appendices are not counted",
    "references": "references are not counted",
    "ksb_mapping": "the KSB mapping is an appendix",
    "toc": "contents pages are not counted",
    "front_matter": "title page / front matter",
    "glossary": "glossary",
}


class WordCount:
    id: ClassVar[str] = "word_count"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", ["report"])]
        docs = ctx.docs(*roles)
        if not docs:
            return ctx.not_applicable(f"no document with role {', '.join(r.value for r in roles)} was submitted")
        target = int(ctx.param("target"))
        tol = float(ctx.param("tolerance_pct", 10))
        lo, hi = math.ceil(target * (1 - tol / 100)), math.floor(target * (1 + tol / 100))
        tally = _Tally(ctx, docs)
        expected = {"target": target, "tolerance_pct": tol, "min": lo, "max": hi, "parts": sorted(tally.parts),
                    "excluded_section_kinds": sorted(tally.excluded), "count_mode": tally.mode.value}
        measured = tally.measured()
        findings = tally.exclusion_findings()
        n = tally.counted
        if n < lo:
            return ctx.violation(f"{n:,} counted words: {lo - n:,} below the minimum of {lo:,}",
                                 measured=measured, expected=expected, findings=findings)
        if n > hi:
            findings.insert(0, tally.locate(hi + 1))
            return ctx.violation(f"{n:,} counted words: {n - hi:,} over the maximum of {hi:,}; "
                                 "words past the maximum will not be marked", measured=measured,
                                 expected=expected, findings=findings)
        margin = float(ctx.param("borderline_pct", 2)) / 100 * target
        if n - lo <= margin or hi - n <= margin:
            bound = "minimum" if n - lo <= margin else "maximum"
            return ctx.result(Outcome.WARN, f"{n:,} counted words is within {ctx.param('borderline_pct', 2)}% of the "
                              f"{bound}: other word counters may disagree", measured=measured, expected=expected,
                              findings=findings)
        return ctx.passed(f"{n:,} counted words, within {lo:,}–{hi:,}", measured=measured, expected=expected,
                          findings=findings)


class _Tally:
    """Which blocks count, recounted in the profile's counting mode if it differs."""

    def __init__(self, ctx: CheckContext, docs: list[Document]) -> None:
        self.docs = docs
        self.parts = set(ctx.param("parts", ["body", "tables"]))
        self.excluded = set(ctx.param("exclude_section_kinds", DEFAULT_EXCLUDED))
        self.mode = CountMode(ctx.param("count_mode", CountMode.WORD.value))
        self.kept: list[tuple[Block, int]] = []
        self.by_kind: Counter[str] = Counter()
        self.by_part_left_out: Counter[str] = Counter()
        for doc in docs:
            for b in doc.blocks:
                self._add(doc, b)
        self.counted = sum(n for _, n in self.kept)

    def _words(self, doc: Document, b: Block) -> int:
        return b.words if doc.count_mode == self.mode.value else count_words(b.text, self.mode)

    def _add(self, doc: Document, b: Block) -> None:
        part = b.part
        if part is None:
            return
        n = self._words(doc, b)
        if part.value not in self.parts:
            self.by_part_left_out[part.value] += n
        elif b.section_kind.value in self.excluded:
            self.by_kind[b.section_kind.value] += n
        else:
            self.kept.append((b, n))

    def measured(self) -> dict[str, Any]:
        return {
            "counted": self.counted,
            "excluded_by_section_kind": dict(self.by_kind),
            "parts_not_counted": dict(self.by_part_left_out),
            "documents": {d.file: d.total_words() for d in self.docs},
        }

    def exclusion_findings(self) -> list[Finding]:
        out: list[Finding] = []
        for doc in self.docs:
            for s in doc.sections:
                if s.kind.value in self.excluded and s.words and s.kind is not SectionKind.MAIN:
                    why = _WHY.get(s.kind.value, s.kind.value)
                    out.append(Finding(f"excluded: '{s.title}' ({s.kind.value}, {s.words:,} words): {why}",
                                       s.location, detail={"section_kind": s.kind.value, "words": s.words,
                                                           "detected_by": s.detected_by}))
        for part, n in sorted(self.by_part_left_out.items()):
            if n:
                out.append(Finding(f"not counted: {n:,} words in {part.replace('_', ' ')} "
                                   f"(this profile counts {', '.join(sorted(self.parts))})", detail={"part": part}))
        return out

    def locate(self, word_no: int) -> Finding:
        """The block holding counted word ``word_no``: where marking stops."""
        seen = 0
        for b, n in self.kept:
            if seen + n >= word_no:
                spans = word_spans(b.text, self.mode)
                start = spans[word_no - seen - 1][0] if word_no - seen - 1 < len(spans) else 0
                return Finding(f"marking stops here: counted word {word_no - 1:,} is the last within the maximum",
                               b.location, excerpt(b.text[start:], 0), detail={"word_number": word_no})
            seen += n
        return Finding("marking stops at the end of the counted text")
