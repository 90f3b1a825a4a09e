"""Whose work is the report describing: "I" or "we"?

The report must be attributable to the apprentice; a report written mostly as
"we did ..." leaves the assessor unable to tell the apprentice's part from the
team's. This check counts first-person singular against plural pronouns in the
report's main sections (appendices, references and mapping tables are not the
apprentice's narrative) and warns when the plural share passes
``max_we_share``. Findings quote the first "we" sentences so the writer can see
the pattern.

Counting is by token, after spaCy's tokenizer splits contractions ("we're",
"I've", "let's" -> "let" + "'s" = us). Not counted: "US" in capitals (the
country), a Roman numeral "I" after Phase/Part/Appendix/..., and quoted lines
(markdown "> ..."), which are someone else's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import ClassVar

from spacy.tokens import Doc

from extractors.model import Block, BlockKind, Document, SectionKind

from .. import nlp as lang
from ..base import CheckContext, counted_blocks
from ..model import CheckResult, Finding, excerpt
from ..profile import Role

SINGULAR = frozenset({"i", "me", "my", "mine", "myself"})
PLURAL = frozenset({"we", "us", "our", "ours", "ourselves"})
_NUMERAL_BEFORE = frozenset({
    "phase", "part", "appendix", "section", "stage", "chapter", "level", "type", "tier", "grade", "volume", "book",
    "war", "figure", "table", "annex", "schedule", "class", "step", "release", "option", "category", "article",
})
_BODY_KINDS = frozenset({BlockKind.PARAGRAPH, BlockKind.LIST_ITEM, BlockKind.TABLE_CELL, BlockKind.TEXT_BOX,
                         BlockKind.SLIDE_BODY})


def pronoun(doc: Doc, i: int) -> str | None:
    """``"i"``, ``"we"`` or None for token ``i``: the whole counting rule in one place."""
    tok = doc[i]
    low = tok.lower_
    prev = doc[i - 1].lower_ if i else ""
    if low == "'s" and prev == "let":
        return "we"
    if low in PLURAL:
        return None if tok.text == "US" else "we"  # capital US is the country
    if low in SINGULAR:
        if tok.text == "I" and prev in _NUMERAL_BEFORE:
            return None
        return "i"
    return None


def count(doc: Doc, start: int = 0, end: int | None = None) -> tuple[int, int, list[str]]:
    """(I count, we count, the plural forms seen) for tokens ``start:end``."""
    i_n = we_n = 0
    forms: dict[str, None] = {}
    for k in range(start, len(doc) if end is None else end):
        p = pronoun(doc, k)
        if p == "i":
            i_n += 1
        elif p == "we":
            we_n += 1
            forms.setdefault(doc[k].lower_ if doc[k].lower_ != "'s" else "let's", None)
    return i_n, we_n, list(forms)


def count_text(text: str) -> dict[str, int]:
    i_n, we_n, _ = count(lang.parse([text])[0])
    return {"i": i_n, "we": we_n}


@dataclass(slots=True)
class Tally:
    i: int = 0
    we: int = 0
    we_sentences: list[tuple[Block, lang.Sentence, list[str]]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.we / (self.i + self.we) if self.i + self.we else 0.0


def main_blocks(doc: Document) -> list[Block]:
    """The apprentice's narrative: main-section body text, not quotations."""
    return [b for b in counted_blocks(doc) if b.section_kind is SectionKind.MAIN and b.kind in _BODY_KINDS
            and not b.text.lstrip().startswith(">")]


def tally(blocks: Sequence[Block], into: Tally | None = None) -> Tally:
    t = into or Tally()
    for b, d in zip(blocks, lang.parse([b.text for b in blocks]), strict=True):
        for s in lang.sentences(d):
            i_n, we_n, forms = count(d, s.first_token, s.end_token)
            t.i += i_n
            t.we += we_n
            if we_n:
                t.we_sentences.append((b, s, forms))
    return t


class Attribution:
    id: ClassVar[str] = "attribution"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", [Role.REPORT])]
        docs = ctx.docs(*roles)
        if not docs:
            return ctx.not_applicable(f"no documents with role {', '.join(map(str, roles))}")
        max_share = float(ctx.param("max_we_share", 0.5))
        total, per_doc = Tally(), {}
        for d in docs:
            t = tally(main_blocks(d))
            per_doc[PurePosixPath(d.file).name] = {"i": t.i, "we": t.we, "we_share": round(t.share, 3)}
            total.i, total.we = total.i + t.i, total.we + t.we
            total.we_sentences += t.we_sentences
        measured = {"i": total.i, "we": total.we, "we_share": round(total.share, 3), "documents": per_doc}
        expected = {"max_we_share": max_share}
        if total.i + total.we == 0:
            return ctx.passed("no first-person pronouns in the report's main sections", measured=measured,
                              expected=expected)
        if total.share <= max_share:
            return ctx.passed(f"the report is written as the apprentice's own work: 'we' is {total.share:.0%} of "
                              f"first-person pronouns ({total.we} we / {total.i} I)", measured=measured,
                              expected=expected)
        findings = _findings(total.we_sentences, int(ctx.param("max_findings", 10)))
        return ctx.violation(f"'we/our' is {total.share:.0%} of first-person pronouns ({total.we} we / {total.i} I), "
                             f"above {max_share:.0%}: the apprentice's own contribution may be hard to attribute",
                             measured=measured, expected=expected, findings=findings)


def _findings(rows: Iterable[tuple[Block, lang.Sentence, list[str]]], limit: int) -> list[Finding]:
    out: list[Finding] = []
    for b, s, forms in rows:
        if len(out) >= limit:
            break
        text = excerpt(s.text, 0, 300)
        out.append(Finding(f"team voice ({', '.join(forms)}) rather than the apprentice's own", b.location, text,
                           {"patterns": forms, "sentence": text}))
    return out
