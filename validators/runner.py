"""Run a method's checks over a submission and assemble the report.

The runner is the validators' boundary: a check that raises (a bug) becomes an
``error`` outcome naming the exception, never a crash of the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import CheckContext
from .checks import REGISTRY
from .model import CheckResult, Outcome, Rule
from .profile import Profile
from .submission import Submission

REPORT_SCHEMA = "gatecheck.report/1"


@dataclass(slots=True)
class Report:
    profile: Profile
    method_id: str
    submission: Submission
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        outcomes = {c.outcome for c in self.checks}
        if not self.checks:  # e.g. an observation: nothing in the documents to check, so never "pass"
            return "attention"
        if Outcome.FAIL in outcomes:
            return "fail"
        if outcomes & {Outcome.WARN, Outcome.ERROR} or self.submission.errors:
            return "attention"
        return "pass"

    def to_dict(self) -> dict[str, Any]:
        p = self.profile
        return {
            "schema": REPORT_SCHEMA,
            "standard": {
                "code": p.standard.code,
                "title": p.standard.title,
                "epao": p.epao,
                "method": self.method_id,
                "method_name": p.methods[self.method_id].name,
                "profile": p.id,
            },
            "outcome": self.outcome,
            "checks": [c.to_dict() for c in self.checks],
            "documents": [d.to_dict() for d in self.submission.documents],
            "errors": list(self.submission.errors),
            "meta": dict(self.submission.meta),
            "cannot_check": list(p.methods[self.method_id].cannot_check),
        }


def run(submission: Submission, profile: Profile, method_id: str) -> Report:
    method = profile.methods[method_id]
    report = Report(profile, method_id, submission)
    for check_id, spec in method.checks.items():
        ctx = CheckContext(submission, profile, method_id, method, spec, check_id)
        report.checks.append(_run_one(ctx))
    return report


def _run_one(ctx: CheckContext) -> CheckResult:
    try:
        return REGISTRY[ctx.check_id].run(ctx)
    except Exception as exc:  # the boundary: a check bug must not lose the report
        return CheckResult(
            ctx.check_id,
            Outcome.ERROR,
            f"check could not run ({type(exc).__name__}); the other checks are unaffected",
            Rule(ctx.spec.rule.text, ctx.spec.rule.source),
        )
