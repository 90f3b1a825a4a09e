"""presentation: the presentation is there, how many slides, and roughly how long it takes to deliver.

Spoken time is estimated from the speaker notes (or a slide's own text when it has
no notes) at a stated words-per-minute rate, plus the media embedded in the
slides; hidden slides are not presented, so they are reported but not timed.
The estimate is a guide for the assessor, not a measurement of the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from extractors.model import Block, BlockKind, Document, Location

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome, excerpt
from ..profile import Role
from .media import fmt_duration, is_unknown

_NOT_SPOKEN = {BlockKind.HEADER_FOOTER, BlockKind.COMMENT}


@dataclass(slots=True)
class _Slide:
    doc: Document
    number: int
    notes_words: int = 0
    text_words: int = 0
    title: str = ""
    first_text: str = ""
    media_s: float = 0.0

    @property
    def spoken_words(self) -> int:
        return self.notes_words or self.text_words

    def location(self) -> Location:
        if self.doc.slides is not None:
            return Location(self.doc.file, slide=self.number)
        return Location(self.doc.file, page=self.number)

    def label(self) -> str:
        return f"{'slide' if self.doc.slides is not None else 'page'} {self.number}"


@dataclass(slots=True)
class _Deck:
    doc: Document
    slides: list[_Slide] = field(default_factory=list)
    hidden: list[int] = field(default_factory=list)
    unknown_media: list[Finding] = field(default_factory=list)


def _slide_of(b: Block) -> int:
    return b.location.slide or b.location.page or 1


def _deck(doc: Document) -> _Deck:
    hidden = sorted(set(doc.hidden_slides))
    count = doc.slides if doc.slides is not None else (doc.pages or 1)
    slides = {n: _Slide(doc, n) for n in range(1, count + 1) if n not in hidden}
    for b in doc.blocks:
        s = slides.get(_slide_of(b))
        if s is None or b.kind in _NOT_SPOKEN or b.hidden:
            continue
        _add_block(s, b)
    deck = _Deck(doc, list(slides.values()), hidden)
    _add_media(deck, slides)
    return deck


def _add_block(s: _Slide, b: Block) -> None:
    if b.kind is BlockKind.NOTES:
        s.notes_words += b.words
        return
    s.text_words += b.words
    if b.kind is BlockKind.SLIDE_TITLE and not s.title:
        s.title = b.text
    if not s.first_text and b.text.strip():
        s.first_text = b.text


def _add_media(deck: _Deck, slides: dict[int, _Slide]) -> None:
    for m in deck.doc.media:
        s = slides.get(m.location.slide or m.location.page or 1)
        if s is None or m.linked:
            continue
        if is_unknown(m):
            deck.unknown_media.append(Finding(f"{m.kind} {m.name} on {s.label()}: duration unknown, not in the "
                                              "estimate: check by hand", m.location, m.name))
        else:
            s.media_s += m.duration_s or 0.0


@dataclass(frozen=True, slots=True)
class _Pace:
    wpm: float

    def seconds(self, s: _Slide) -> float:
        return s.spoken_words / self.wpm * 60 + s.media_s


def _no_notes_finding(s: _Slide) -> Finding:
    quote = s.title or s.first_text
    return Finding(f"{s.label()} has no speaker notes: timed from its on-slide text ({s.text_words} words)",
                   s.location(), excerpt(quote), {"text_words": s.text_words})


def _over_finding(slides: list[_Slide], pace: _Pace, limit_s: float, total_s: float) -> Finding:
    """Where the cumulative estimate passes the limit: the assessor's time runs out around there."""
    elapsed = 0.0
    at = slides[-1]
    for s in slides:
        elapsed += pace.seconds(s)
        if elapsed > limit_s:
            at = s
            break
    return Finding(f"estimated {total_s / 60:.1f} min is over the {limit_s / 60:.1f} min limit; the limit is "
                   f"reached around {at.label()} of {at.doc.file}", at.location(), excerpt(at.title or at.first_text),
                   {"estimated_s": round(total_s, 1), "limit_s": round(limit_s, 1)})


def _hidden_finding(deck: _Deck) -> Finding:
    nums = ", ".join(str(n) for n in deck.hidden)
    return Finding(f"hidden slide(s) {nums}: not presented, so not counted or timed", Location(deck.doc.file),
                   detail={"hidden_slides": deck.hidden})


class Presentation:
    id: ClassVar[str] = "presentation"

    def run(self, ctx: CheckContext) -> CheckResult:
        docs = ctx.docs(Role.PRESENTATION)
        if not docs:
            return ctx.violation("no presentation: no document with role presentation was submitted",
                                 measured={"slides": 0}, expected={"presentation": "present"})
        pace = _Pace(float(ctx.param("words_per_minute", 130)))
        decks = [_deck(d) for d in docs]
        slides = [s for d in decks for s in d.slides]
        total_s = sum(pace.seconds(s) for s in slides)
        measured = _measured(decks, slides, total_s)
        expected, limit_s = _expected(ctx, pace)
        findings = [_hidden_finding(d) for d in decks if d.hidden]
        findings += [f for d in decks for f in d.unknown_media]
        findings += [_no_notes_finding(s) for s in slides if not s.notes_words]
        problems = _problems(ctx, measured, total_s, limit_s)
        if limit_s is not None and total_s > limit_s:
            findings.insert(0, _over_finding(slides, pace, limit_s, total_s))
        summary = _summary(measured, pace, limit_s, expected)
        kw: dict[str, Any] = {"measured": measured, "expected": expected, "findings": findings}
        if problems:
            return ctx.violation("; ".join(problems) + f" ({summary})", **kw)
        if any(d.unknown_media for d in decks):
            return ctx.result(Outcome.WARN, summary + "; some embedded media have no known duration", **kw)
        return ctx.passed(summary, **kw)


def _measured(decks: list[_Deck], slides: list[_Slide], total_s: float) -> dict[str, Any]:
    return {
        "slides": len(slides),
        "hidden_slides": sum(len(d.hidden) for d in decks),
        "estimated_minutes": round(total_s / 60, 1),
        "notes_words": sum(s.notes_words for s in slides),
        "slide_text_words_used": sum(s.text_words for s in slides if not s.notes_words),
        "slides_without_notes": sum(1 for s in slides if not s.notes_words),
        "media_s": round(sum(s.media_s for s in slides), 3),
        "documents": [d.doc.file for d in decks],
    }


def _expected(ctx: CheckContext, pace: _Pace) -> tuple[dict[str, Any], float | None]:
    minutes = ctx.param("minutes")
    tol = float(ctx.param("tolerance_pct", 10))
    max_slides = ctx.param("max_slides")
    limit_s = None if minutes is None else float(minutes) * (1 + tol / 100) * 60
    expected = {"minutes": minutes, "tolerance_pct": tol, "max_minutes": None if limit_s is None else
                round(limit_s / 60, 2), "words_per_minute": pace.wpm, "max_slides": max_slides}
    return expected, limit_s


def _problems(ctx: CheckContext, measured: dict[str, Any], total_s: float, limit_s: float | None) -> list[str]:
    problems: list[str] = []
    if limit_s is not None and total_s > limit_s:
        problems.append(f"estimated {total_s / 60:.1f} min is over the {limit_s / 60:.1f} min limit")
    max_slides = ctx.param("max_slides")
    if max_slides is not None and measured["slides"] > int(max_slides):
        problems.append(f"{measured['slides']} slides, more than the {int(max_slides)} allowed")
    return problems


def _summary(measured: dict[str, Any], pace: _Pace, limit_s: float | None, expected: dict[str, Any]) -> str:
    media = f" + {fmt_duration(measured['media_s'])} of embedded media" if measured["media_s"] else ""
    limit = (f"; limit {expected['minutes']:g} min + {expected['tolerance_pct']:g}% = {limit_s / 60:.1f} min"
             if limit_s is not None else "")
    hidden = f" (+{measured['hidden_slides']} hidden)" if measured["hidden_slides"] else ""
    return (f"{measured['slides']} slides{hidden}; estimated {measured['estimated_minutes']:.1f} min: speaker notes "
            f"(or slide text where a slide has none) at an assumed {pace.wpm:g} words per minute{media}{limit}")
