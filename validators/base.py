"""The check contract: one small class per check id, returning a CheckResult.

A check never raises for bad input: it returns ``not_applicable`` when its
documents are absent and a finding for each problem. The profile's severity
decides whether a violation is a ``fail`` or a ``warn``; checks call
``ctx.violation`` and never hard-code that choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from extractors.model import Block, Document

from .model import CheckResult, Finding, Outcome
from .profile import CheckSpec, MethodSpec, Profile, Role
from .submission import Submission


@dataclass(frozen=True, slots=True)
class CheckContext:
    submission: Submission
    profile: Profile
    method_id: str
    method: MethodSpec
    spec: CheckSpec
    check_id: str

    def param(self, name: str, default: Any = None) -> Any:
        return self.spec.params.get(name, default)

    def result(
        self,
        outcome: Outcome,
        summary: str,
        *,
        measured: Any = None,
        expected: Any = None,
        findings: list[Finding] | None = None,
    ) -> CheckResult:
        return CheckResult(self.check_id, outcome, summary, self.spec.rule.rule(), measured, expected, findings or [])

    def violation(self, summary: str, **kw: Any) -> CheckResult:
        outcome = Outcome.FAIL if self.spec.severity == "fail" else Outcome.WARN
        return self.result(outcome, summary, **kw)

    def passed(self, summary: str, **kw: Any) -> CheckResult:
        return self.result(Outcome.PASS, summary, **kw)

    def not_applicable(self, summary: str, **kw: Any) -> CheckResult:
        return self.result(Outcome.NOT_APPLICABLE, summary, **kw)

    def docs(self, *roles: Role) -> list[Document]:
        return self.submission.docs(*roles)


@runtime_checkable
class Check(Protocol):
    id: ClassVar[str]

    def run(self, ctx: CheckContext) -> CheckResult: ...


def counted_blocks(doc: Document) -> Iterator[Block]:
    """Blocks that carry readable content (not headers/footers or comments)."""
    for b in doc.blocks:
        if b.kind.value not in {"header_footer", "comment"} and b.text.strip():
            yield b
