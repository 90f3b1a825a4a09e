"""What a check returns: an outcome with measured vs expected, the rule and its source,
and located findings with excerpts, so an assessor can verify a flag in seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from extractors.model import Location


class Outcome(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Rule:
    """The published rule a check applies, and where it is published."""

    text: str
    source: str  # seed file + section, or a cited public assessment plan

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "source": self.source}


@dataclass(slots=True)
class Finding:
    message: str
    location: Location | None = None
    excerpt: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. which pattern fired

    def to_dict(self) -> dict[str, Any]:
        loc = self.location.to_dict() if self.location else {}
        if self.location and self.location.heading_path:
            loc["section"] = " › ".join(self.location.heading_path)
        d: dict[str, Any] = {"message": self.message, "location": loc, "excerpt": self.excerpt}
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass(slots=True)
class CheckResult:
    id: str
    outcome: Outcome
    summary: str
    rule: Rule
    measured: Any = None
    expected: Any = None
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": str(self.outcome),
            "summary": self.summary,
            "measured": self.measured,
            "expected": self.expected,
            "rule": self.rule.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


def excerpt(text: str, start: int = 0, width: int = 160) -> str:
    """A short, single-line quote around ``start`` for a finding."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lo = max(0, min(start, len(flat)) - width // 4)
    snippet = flat[lo : lo + width]
    return ("…" if lo else "") + snippet + ("…" if lo + width < len(flat) else "")
