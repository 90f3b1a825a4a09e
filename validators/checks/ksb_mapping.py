"""ksb_mapping: is there a mapping, does it cover the method's KSBs, and does it hold up?

Looks for KSB mapping sections/tables (kind ``ksb_mapping``) in the report and
for separate mapping documents. Reports: KSBs of the method that are missing;
codes unknown to the standard; codes that belong only to another method;
references to sections or pages that do not exist; KSBs mapped but never
discussed in the body (no reference that resolves and no mention in the text).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

from extractors.model import Block, Document, SectionKind

from ..base import CheckContext
from ..model import CheckResult, Finding, Outcome, excerpt
from ..profile import Role

_CODE = re.compile(r"\b([KSB])\s?(\d{1,2})(?:\.\d+)?\b")
_SECTION_REF = re.compile(r"\b(?:section|sect\.|§)\s*(\d+(?:\.\d+)*)", re.IGNORECASE)
_PAGE_REF = re.compile(r"\b(?:page|pages|pg\.?|p\.|pp\.)\s*(\d{1,4})(?:\s*[-–]\s*(\d{1,4}))?", re.IGNORECASE)
_NUMBERED_TITLE = re.compile(r"^\s*(\d+(?:\.\d+)*)[.)]?\s")


@dataclass(slots=True)
class _Row:
    codes: list[str]
    text: str
    block: Block
    doc: Document


@dataclass(slots=True)
class _Mapping:
    rows: list[_Row] = field(default_factory=list)
    where: list[Block] = field(default_factory=list)
    in_appendix: bool = False


class KsbMapping:
    id: ClassVar[str] = "ksb_mapping"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", ["mapping", "report"])]
        docs = ctx.docs(*roles)
        required = list(ctx.method.ksbs)
        if not docs:
            return ctx.violation("no KSB mapping was found: no report or mapping document was submitted",
                                 measured={"found": False}, expected={"ksbs": required})
        mapping = _collect(ctx, docs)
        if not mapping.rows:
            return ctx.violation("no KSB mapping was found (no section or table listing KSB codes)",
                                 measured={"found": False}, expected={"ksbs": required})
        return _assess(ctx, mapping, required, docs)


def _collect(ctx: CheckContext, docs: list[Document]) -> _Mapping:
    out = _Mapping()
    for sd in ctx.submission.with_role(*[Role(r) for r in ctx.param("roles", ["mapping", "report"])]):
        whole_doc = sd.role is Role.MAPPING
        blocks = [b for b in sd.doc.blocks if whole_doc or b.section_kind is SectionKind.KSB_MAPPING]
        if not blocks:
            continue
        out.where.append(blocks[0])
        out.in_appendix |= whole_doc or any(_under_appendix(b) for b in blocks)
        out.rows.extend(_rows(sd.doc, blocks))
    return out


def _under_appendix(block: Block) -> bool:
    return any(re.match(r"\s*(appendix|annex)", h, re.IGNORECASE) for h in block.location.heading_path)


def _rows(doc: Document, blocks: list[Block]) -> list[_Row]:
    """Table rows become one row each; other blocks are rows of their own."""
    grouped: dict[tuple[int | None, int | None, str | None], list[Block]] = defaultdict(list)
    order: list[tuple[int | None, int | None, str | None]] = []
    for b in blocks:
        key = (b.location.table, b.location.row, None) if b.location.table else (None, None, str(id(b)))
        if key not in grouped:
            order.append(key)
        grouped[key].append(b)
    rows = []
    for key in order:
        cells = grouped[key]
        text = " | ".join(c.text for c in cells)
        first_cell = cells[0].text if cells[0].location.table else text
        codes = [f"{m.group(1)}{int(m.group(2))}" for m in _CODE.finditer(first_cell)]
        if codes:
            rows.append(_Row(codes, text, cells[0], doc))
    return rows


def _assess(ctx: CheckContext, mapping: _Mapping, required: list[str], docs: list[Document]) -> CheckResult:
    catalogue = set(ctx.profile.ksbs)
    mapped = {c for r in mapping.rows for c in r.codes}
    findings: list[Finding] = []
    missing = [k for k in required if k not in mapped]
    for k in missing:
        findings.append(Finding(f"{k} is not in the mapping: {ctx.profile.ksbs.get(k, '')[:120]}".rstrip(": "),
                                mapping.where[0].location, detail={"ksb": k, "problem": "missing"}))
    findings += _code_problems(ctx, mapping, catalogue, set(required))
    findings += _reference_problems(mapping, docs)
    if ctx.param("require_appendix", True) and not mapping.in_appendix:
        findings.append(Finding("the mapping is not in an appendix", mapping.where[0].location,
                                excerpt(mapping.where[0].text), {"problem": "not_in_appendix"}))
    coverage = (len(required) - len(missing)) / len(required) if required else 1.0
    measured = {"mapped": sorted(mapped, key=_order), "missing": missing, "coverage": round(coverage, 3),
                "in_appendix": mapping.in_appendix, "rows": len(mapping.rows)}
    expected = {"ksbs": required, "min_coverage": ctx.param("min_coverage", 1.0),
                "require_appendix": ctx.param("require_appendix", True)}
    problems = [f for f in findings if f.detail.get("problem") != "missing"]
    if coverage < float(ctx.param("min_coverage", 1.0)) or any(
            f.detail.get("problem") == "not_in_appendix" for f in findings):
        return ctx.violation(f"mapping covers {len(required) - len(missing)} of {len(required)} KSBs"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + ("; not in an appendix" if not mapping.in_appendix and
                                ctx.param("require_appendix", True) else ""),
                             measured=measured, expected=expected, findings=findings)
    if not required:
        summary = f"mapping found ({len(mapped)} codes); the profile lists no KSBs to check coverage against"
        outcome = Outcome.WARN if problems else Outcome.PASS
        return ctx.result(outcome, summary, measured=measured, expected=expected, findings=findings)
    if problems:
        return ctx.result(Outcome.WARN, f"all {len(required)} KSBs mapped; {len(problems)} problem(s) to check",
                          measured=measured, expected=expected, findings=findings)
    return ctx.passed(f"all {len(required)} KSBs of the method are mapped", measured=measured, expected=expected,
                      findings=findings)


def _code_problems(ctx: CheckContext, mapping: _Mapping, catalogue: set[str], required: set[str]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for row in mapping.rows:
        for code in row.codes:
            if code in seen:
                continue
            seen.add(code)
            if catalogue and code not in catalogue:
                out.append(Finding(f"{code} is not a KSB of {ctx.profile.standard.code}", row.block.location,
                                   excerpt(row.text), {"ksb": code, "problem": "unknown_code"}))
            elif required and code not in required:
                owners = [m for m, spec in ctx.profile.methods.items() if code in spec.ksbs]
                where = f" (mapped to {', '.join(owners)})" if owners else ""
                out.append(Finding(f"{code} is not assessed by {ctx.method_id}{where}", row.block.location,
                                   excerpt(row.text), {"ksb": code, "problem": "other_method", "methods": owners}))
    return out


def _reference_problems(mapping: _Mapping, docs: list[Document]) -> list[Finding]:
    numbers = {m.group(1) for d in docs for s in d.sections if (m := _NUMBERED_TITLE.match(s.title))}
    pages = max((d.pages or 0 for d in docs), default=0) or max(
        (int(d.metadata.get("app", {}).get("pages", 0) or 0) for d in docs), default=0)
    body = " ".join(b.text for d in docs for b in d.blocks if b.section_kind is SectionKind.MAIN)
    titles = {s.title.lower() for d in docs for s in d.sections
              if s.kind is SectionKind.MAIN and len(s.title) >= 3 and s.detected_by != "preamble"}
    out: list[Finding] = []
    for row in mapping.rows:
        lowered = row.text.lower()
        refs_ok = any(t in lowered for t in titles)
        for m in _SECTION_REF.finditer(row.text):
            if m.group(1) not in numbers:
                why = "no such numbered section" if numbers else "the document has no numbered sections"
                out.append(_ref_finding(row, f"section {m.group(1)}", why))
            else:
                refs_ok = True
        for m in _PAGE_REF.finditer(row.text):
            last = int(m.group(2) or m.group(1))
            if pages and last > pages:
                out.append(_ref_finding(row, f"page {last}", f"the document has {pages} pages"))
            else:
                refs_ok = True
        if not refs_ok and not any(re.search(rf"\b{c}\b", body) for c in row.codes):
            out.append(Finding(f"{', '.join(row.codes)} mapped but not discussed: no resolvable reference and no "
                               "mention in the body", row.block.location, excerpt(row.text),
                               {"ksb": row.codes, "problem": "not_discussed"}))
    return out


def _ref_finding(row: _Row, ref: str, why: str) -> Finding:
    return Finding(f"{', '.join(row.codes)} refers to {ref}: {why}", row.block.location, excerpt(row.text),
                   {"ksb": row.codes, "problem": "bad_reference", "reference": ref})


def _order(code: str) -> tuple[int, int]:
    return ("KSB".index(code[0]), int(code[1:]))
