"""gateway: caller-supplied figures (``--meta key=value``) against the gateway minimums and deadlines.

Time on programme, off-the-job training and English/maths cannot be read from the
documents, so the caller states them; submission deadlines are worked out from
the dates the caller gives. Anything not supplied is listed with the exact
``--meta`` to add, and a value in the wrong format says what format is expected.

``deadlines`` entries:

- ``{role, before: <meta date key>, weeks: n}`` (or ``days``): the ``role`` must be
  submitted at least n weeks before that date (IMI: report 2 weeks before the interview);
- ``{role, after: <meta date key>, within_weeks: n}`` (or ``within_days``): submitted no later
  than n weeks after that date (ST0505: by the end of week four of the EPA period);
- optional ``date``: the meta key holding the submission date (default ``submission_date``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:%|percent|months?)?\s*$", re.I)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXAMPLES = {"months_on_programme": "14", "off_the_job_pct": "20", "english_maths": "achieved"}
_EM_OK = {"achieved", "exempt"}
_EM_ALL = (*sorted(_EM_OK), "missing")
_LABEL = {"months_on_programme": "time on programme", "off_the_job_pct": "off-the-job training"}


class SpecError(ValueError):
    """A profile's gateway parameters are malformed."""


@dataclass(slots=True)
class _Outcome:
    findings: list[Finding] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # short reasons, for the summary
    measured: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    dates: dict[str, date | None] = field(default_factory=dict)  # each meta date read (and reported) once
    met: int = 0

    def ok(self, message: str, **detail: Any) -> None:
        self.met += 1
        self.findings.append(Finding(message, detail={"met": True, **detail}))

    def fail(self, short: str, message: str, **detail: Any) -> None:
        self.failed.append(short)
        self.findings.append(Finding(message, detail={"met": False, **detail}))

    def need(self, key: str) -> None:
        if key not in self.missing:
            self.missing.append(key)


def _hint(key: str) -> str:
    return f"--meta {key}={_EXAMPLES.get(key, 'YYYY-MM-DD')}"


def _number(out: _Outcome, meta: dict[str, Any], key: str, unit: str) -> float | None:
    raw = meta.get(key)
    if raw is None or str(raw).strip() == "":
        out.need(key)
        return None
    m = _NUMBER.match(str(raw))
    if m is None:
        out.fail(f"{key} unreadable", f"{key}={raw!r} is not a number of {unit}: give it as {_hint(key)}",
                 meta=key, value=str(raw))
        return None
    return float(m.group(1))


def _date(out: _Outcome, meta: dict[str, Any], key: str) -> date | None:
    if key not in out.dates:
        out.dates[key] = _read_date(out, meta, key)
    return out.dates[key]


def _read_date(out: _Outcome, meta: dict[str, Any], key: str) -> date | None:
    raw = meta.get(key)
    if raw is None or str(raw).strip() == "":
        out.need(key)
        return None
    text = str(raw).strip()
    try:
        if not _ISO_DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        out.fail(f"{key} unreadable", f"{key}={raw!r} is not a date in ISO form YYYY-MM-DD: give it as "
                 f"--meta {key}=2025-03-31", meta=key, value=str(raw))
        return None


def _minimum(out: _Outcome, meta: dict[str, Any], key: str, minimum: Any, unit: str) -> None:
    value = _number(out, meta, key, unit)
    out.expected[f"min_{key}"] = minimum
    if value is None:
        return
    out.measured[key] = value
    label, sep = _LABEL.get(key, key), "" if unit == "%" else " "
    if value >= float(minimum):
        out.ok(f"{label}: {value:g}{sep}{unit} meets the minimum of {minimum}{sep}{unit}", meta=key, value=value)
    else:
        out.fail(f"{label} {value:g}{sep}{unit} is below {minimum}{sep}{unit}",
                 f"{label}: {value:g}{sep}{unit}, below the minimum of {minimum}{sep}{unit}", meta=key, value=value)


def _english_maths(out: _Outcome, meta: dict[str, Any]) -> None:
    out.expected["english_maths"] = sorted(_EM_OK)
    raw = meta.get("english_maths")
    if raw is None or str(raw).strip() == "":
        out.need("english_maths")
        return
    value = str(raw).strip().lower()
    if value not in _EM_ALL:
        out.fail("english_maths unreadable", f"english_maths={raw!r} is not one of {', '.join(_EM_ALL)}: give it "
                 "as --meta english_maths=achieved (or exempt, or missing)", meta="english_maths", value=str(raw))
        return
    out.measured["english_maths"] = value
    if value in _EM_OK:
        out.ok(f"English and maths: {value}", meta="english_maths")
    else:
        out.fail("English and maths missing", "English and maths: missing; they must be achieved (or the "
                 "apprentice exempt) before the EPA", meta="english_maths")


@dataclass(frozen=True, slots=True)
class _Deadline:
    role: str
    anchor: str  # meta key of the reference date
    offset: timedelta  # latest submission = anchor + offset (negative for "before")
    date_key: str
    wording: str

    @classmethod
    def parse(cls, raw: Any) -> _Deadline:
        if not isinstance(raw, dict):
            raise SpecError(f"deadline {raw!r} is not a mapping")
        role = str(raw.get("role", "submission"))
        date_key = str(raw.get("date", "submission_date"))
        if "before" in raw:
            days = _span(raw, "weeks", "days")
            return cls(role, str(raw["before"]), -timedelta(days=days), date_key,
                       f"{_weeks(days)} before {raw['before']}")
        if "after" in raw:
            days = _span(raw, "within_weeks", "within_days")
            return cls(role, str(raw["after"]), timedelta(days=days), date_key,
                       f"within {_weeks(days)} after {raw['after']}")
        raise SpecError(f"deadline for {role} needs 'before' or 'after' (a meta date key)")

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "rule": self.wording, "date": self.date_key}


def _span(raw: dict[str, Any], weeks_key: str, days_key: str) -> float:
    try:
        if weeks_key in raw:
            return float(raw[weeks_key]) * 7
        if days_key in raw:
            return float(raw[days_key])
    except (TypeError, ValueError) as exc:
        raise SpecError(f"deadline {raw!r}: '{weeks_key}'/'{days_key}' must be a number") from exc
    raise SpecError(f"deadline {raw!r} needs '{weeks_key}' (or '{days_key}')")


def _weeks(days: float) -> str:
    return f"{days / 7:g} week(s)" if days % 7 == 0 else f"{days:g} day(s)"


def _deadline(out: _Outcome, meta: dict[str, Any], d: _Deadline) -> dict[str, Any] | None:
    anchor = _date(out, meta, d.anchor)
    submitted = _date(out, meta, d.date_key)
    if anchor is None or submitted is None:
        return None
    latest = anchor + d.offset
    row = {"role": d.role, d.date_key: submitted.isoformat(), d.anchor: anchor.isoformat(),
           "latest": latest.isoformat(), "met": submitted <= latest}
    what = f"{d.role}: {d.date_key} {submitted.isoformat()}; must be on or before {latest.isoformat()} " \
           f"({d.wording} {anchor.isoformat()})"
    if submitted <= latest:
        out.ok(what, role=d.role, latest=latest.isoformat())
    else:
        late = (submitted - latest).days
        out.fail(f"{d.role} {late} day(s) late", f"{what}: {late} day(s) late", role=d.role,
                 latest=latest.isoformat())
    return row


class Gateway:
    id: ClassVar[str] = "gateway"

    def run(self, ctx: CheckContext) -> CheckResult:
        try:
            deadlines = [_Deadline.parse(x) for x in ctx.param("deadlines", []) or []]
        except SpecError as exc:
            return ctx.result(Outcome.ERROR, f"the profile's gateway deadlines are malformed: {exc}")
        out = _evaluate(ctx, deadlines)
        if out is None:
            return ctx.not_applicable("this profile sets no gateway minimums or deadlines")
        kw: dict[str, Any] = {"measured": out.measured, "expected": out.expected, "findings": out.findings}
        supply = " ".join(_hint(k) for k in out.missing)
        if out.failed:
            more = f"; not checked until supplied: {supply}" if out.missing else ""
            return ctx.violation("gateway not met: " + "; ".join(out.failed) + more, **kw)
        if out.missing:
            for key in out.missing:
                out.findings.append(Finding(f"not supplied: {key}: add {_hint(key)}", detail={"meta": key}))
            checked = f"{out.met} requirement(s) met; " if out.met else ""
            return ctx.not_applicable(f"{checked}gateway figures not supplied: add {supply}", **kw)
        return ctx.passed(f"all {out.met} gateway requirement(s) met", **kw)


def _evaluate(ctx: CheckContext, deadlines: list[_Deadline]) -> _Outcome | None:
    meta: dict[str, Any] = dict(ctx.submission.meta)
    out = _Outcome()
    any_rule = False
    if (months := ctx.param("min_months_on_programme")) is not None:
        any_rule = True
        _minimum(out, meta, "months_on_programme", months, "months")
    if (otj := ctx.param("min_off_the_job_pct")) is not None:
        any_rule = True
        _minimum(out, meta, "off_the_job_pct", otj, "%")
    if ctx.param("english_maths_required", False):
        any_rule = True
        _english_maths(out, meta)
    if deadlines:
        any_rule = True
        out.expected["deadlines"] = [d.to_dict() for d in deadlines]
        rows = [_deadline(out, meta, d) for d in deadlines]
        out.measured["deadlines"] = [r for r in rows if r is not None]
    return out if any_rule else None
