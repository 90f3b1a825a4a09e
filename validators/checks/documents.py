"""Whole-submission checks: required documents, accepted formats, and the authenticity statement.

- ``required_documents``: every document the method requires is there (by role).
- ``file_formats``: files that could not be read, formats outside the accepted list,
  and scanned image-only pages (paper-based evidence, which ST0505 refuses).
- ``authenticity_declaration``: a statement that the evidence is the apprentice's own,
  with each party (employer, apprentice) named next to a signature, name or date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from extractors.model import Block, BlockKind, Document, Location

from ..base import CheckContext, counted_blocks
from ..model import CheckResult, Finding, Outcome, excerpt
from ..profile import Role
from ..submission import SubmittedDocument

# ---------------------------------------------------------------- required_documents


class RequiredDocuments:
    id: ClassVar[str] = "required_documents"

    def run(self, ctx: CheckContext) -> CheckResult:
        specs = ctx.method.documents
        if not specs:
            return ctx.not_applicable(f"the profile lists no documents for {ctx.method.name}")
        found = {str(s.role): [d.doc.file for d in ctx.submission.with_role(s.role)] for s in specs}
        missing = [s for s in specs if s.required and not found[str(s.role)]]
        findings = [_missing_finding(s.role, s.description, s.rule.text, s.rule.source) for s in missing]
        findings += [_present_finding(d) for s in specs for d in ctx.submission.with_role(s.role)]
        expected = {"required": [str(s.role) for s in specs if s.required],
                    "optional": [str(s.role) for s in specs if not s.required]}
        kw: dict[str, Any] = {"measured": found, "expected": expected, "findings": findings}
        if missing:
            names = ", ".join(str(s.role) for s in missing)
            return ctx.violation(f"missing required document(s): {names}", **kw)
        present = ", ".join(f"{role} ({len(files)})" for role, files in found.items() if files)
        return ctx.passed(f"every required document is present: {present}", **kw)


def _missing_finding(role: Role, description: str, rule_text: str, source: str) -> Finding:
    what = description or rule_text
    return Finding(f"missing {role}: {what}. If a submitted file is the {role}, mark it with "
                   f"--role FILE={role}", excerpt=excerpt(rule_text),
                   detail={"role": str(role), "rule": rule_text, "source": source})


def _present_finding(d: SubmittedDocument) -> Finding:
    return Finding(f"{d.role}: {d.doc.file} (role from {d.reason})", Location(d.doc.file),
                   detail={"role": str(d.role), "role_reason": d.reason})


# ---------------------------------------------------------------- file_formats

DEFAULT_ACCEPTED = ["docx", "pdf", "pptx", "media", "image", "text"]
_ALIASES = {"markdown": "text"}


def _page_ranges(pages: list[int]) -> str:
    out: list[str] = []
    for p in sorted(set(pages)):
        if out and out[-1].split("–")[-1] == str(p - 1):
            out[-1] = f"{out[-1].split('–')[0]}–{p}"
        else:
            out.append(str(p))
    return ", ".join(out)


def _error_finding(err: dict[str, str]) -> Finding:
    file = err.get("file", "")
    code = err.get("code", "error")
    return Finding(f"{file}: could not be read ({code}): {err.get('message', '')}. {err.get('remedy', '')}".strip(),
                   Location(file) if file else None, excerpt(err.get("message", "")),
                   {"code": code, "remedy": err.get("remedy", "")})


def _format_finding(doc: Document, accepted: list[str]) -> Finding:
    return Finding(f"{doc.file}: format {doc.format} is not accepted (accepted: {', '.join(accepted)})",
                   Location(doc.file), detail={"format": doc.format})


def _scanned_finding(doc: Document, paper: bool) -> Finding:
    pages = doc.scanned_pages
    of = f" of {doc.pages}" if doc.pages else ""
    what = "paper-based/scanned evidence" if paper else "scanned pages"
    return Finding(f"{what}: {doc.file} page(s) {_page_ranges(pages)}{of} are scanned images, not electronic "
                   "documents", Location(doc.file, page=min(pages)),
                   detail={"pages": sorted(pages), "total_pages": doc.pages, "all_pages": len(set(pages)) == doc.pages})


class FileFormats:
    id: ClassVar[str] = "file_formats"

    def run(self, ctx: CheckContext) -> CheckResult:
        accepted = list(ctx.param("accepted", DEFAULT_ACCEPTED))
        paper = bool(ctx.param("scanned_is_paper", True))
        docs = [d.doc for d in ctx.submission.documents]
        errors = ctx.submission.errors
        if not docs and not errors:
            return ctx.not_applicable("no files were submitted")
        bad_format = [d for d in docs if _ALIASES.get(d.format, d.format) not in accepted]
        scanned = [d for d in docs if d.scanned_pages]
        findings = [_error_finding(e) for e in errors] + [_format_finding(d, accepted) for d in bad_format]
        findings += [_scanned_finding(d, paper) for d in scanned]
        measured = {"documents": len(docs), "formats": _format_counts(docs), "errors": len(errors),
                    "not_accepted": [d.file for d in bad_format],
                    "scanned": {d.file: sorted(d.scanned_pages) for d in scanned}}
        expected = {"accepted": accepted, "errors": 0, "scanned_is_paper": paper}
        problems = _problems(len(errors), len(bad_format), len(scanned) if paper else 0)
        kw: dict[str, Any] = {"measured": measured, "expected": expected, "findings": findings}
        if problems:
            return ctx.violation("; ".join(problems), **kw)
        note = f"; {len(scanned)} file(s) with scanned pages (allowed by this profile)" if scanned else ""
        return ctx.passed(f"{len(docs)} file(s), all in accepted formats and readable{note}", **kw)


def _format_counts(docs: list[Document]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in docs:
        out[d.format] = out.get(d.format, 0) + 1
    return out


def _problems(n_errors: int, n_format: int, n_scanned: int) -> list[str]:
    out: list[str] = []
    if n_errors:
        out.append(f"{n_errors} file(s) could not be read")
    if n_format:
        out.append(f"{n_format} file(s) in a format that is not accepted")
    if n_scanned:
        out.append(f"{n_scanned} file(s) are scanned paper (paper-based evidence is not accepted)")
    return out


# ---------------------------------------------------------------- authenticity_declaration

_STRONG = re.compile(
    r"\bown\s+work\b"
    r"|\b(?:is|are|was|were)\s+(?:entirely\s+|all\s+|wholly\s+|solely\s+)?"
    r"(?:my|our|his|her|their|the\s+apprentice['’]?s?|the\s+learner['’]?s?)\s+own\b"
    r"|\bauthentic(?:ity)?\b|\battributable\s+to\b|\bgenuine\b"
    r"|\b(?:produced|completed|written|carried\s+out|undertaken)\s+(?:solely\s+|entirely\s+)?by\s+"
    r"(?:me|myself|the\s+apprentice|the\s+learner)\b",
    re.I,
)
_AFFIRM = re.compile(r"\b(?:confirm(?:s|ed)?|declar(?:e|es|ed|ation)|certif(?:y|ies|ied)|attest(?:s|ed)?)\b", re.I)
_SIGN = re.compile(r"\b(?:sign(?:ed|ature|atures)?|countersigned|name|names|print(?:ed)?\s+name|date|dated)\b", re.I)
PARTY_WORDS: dict[str, list[str]] = {
    "employer": ["employer", "line manager", "manager", "supervisor"],
    "apprentice": ["apprentice", "learner", "candidate"],
    "provider": ["training provider", "provider", "tutor"],
}
_LABEL_WORDS = 6  # a table cell or line this short is a label ("Apprentice name:")
_NEAR_CHARS = 40
_WINDOW_BEFORE, _WINDOW_AFTER = 10, 40  # blocks around a statement in a non-declaration document
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _party_pattern(words: list[str]) -> re.Pattern[str]:
    alts = "|".join(r"\s+".join(map(re.escape, w.split())) for w in sorted(words, key=len, reverse=True))
    # possessive: "the apprentice's own work" names the apprentice, it is not their signature
    return re.compile(rf"\b(?:{alts})(?:['’]s)?+(?!\w)(?!\s+own\b)", re.I)


def _parties(ctx: CheckContext) -> dict[str, re.Pattern[str]]:
    raw = ctx.param("parties", ["employer", "apprentice"])
    if isinstance(raw, dict):
        return {str(k): _party_pattern([str(w) for w in v] or [str(k)]) for k, v in raw.items()}
    return {str(p): _party_pattern(PARTY_WORDS.get(str(p).lower(), [str(p)])) for p in raw}


@dataclass(slots=True)
class _Hit:
    doc: Document
    block: Block
    how: str


def _is_statement(b: Block, is_declaration: bool) -> str | None:
    m = _STRONG.search(b.text)
    if m is None:
        return None
    a = _AFFIRM.search(b.text)
    if a is None and not is_declaration:
        return None
    return f"'{m.group(0)}'" + (f" with '{a.group(0)}'" if a else " in a declaration document")


def _signed_in_sentence(text: str, party: re.Pattern[str]) -> bool:
    """Party and a signature word close together in one sentence: 'Employer signature', 'Signed by the learner'."""
    for sentence in _SENTENCE.split(text):
        for pm in party.finditer(sentence):
            for sm in _SIGN.finditer(sentence):
                gap = sm.start() - pm.end() if sm.start() >= pm.end() else pm.start() - sm.end()
                if gap <= _NEAR_CHARS:
                    return True
    return False


def _row_mates(blocks: list[Block], b: Block) -> list[Block]:
    """Cells in the same table row as ``b``, and in that table's first (header) row."""
    if b.kind is not BlockKind.TABLE_CELL:
        return []
    cells = [x for x in blocks if x.kind is BlockKind.TABLE_CELL and x.location.table == b.location.table
             and x.location.file == b.location.file and x is not b]
    rows = [x.location.row for x in cells if x.location.row is not None]
    header = min(rows) if rows else None
    return [x for x in cells if x.location.row in {b.location.row, header}]


def _signed_label(blocks: list[Block], i: int) -> bool:
    """A short label naming the party with a signature word beside it, in its table row or header row."""
    b = blocks[i]
    if len(b.text.split()) > _LABEL_WORDS:
        return False
    near = [blocks[j] for j in range(max(0, i - 2), min(len(blocks), i + 3)) if j != i]
    near += _row_mates(blocks, b)
    return any(_SIGN.search(x.text) and len(x.text.split()) <= _LABEL_WORDS for x in near)


def _find_party(doc: Document, blocks: list[Block], party: re.Pattern[str]) -> _Hit | None:
    for i, b in enumerate(blocks):
        if not party.search(b.text):
            continue
        if _SIGN.search(b.text) and _signed_in_sentence(b.text, party):
            return _Hit(doc, b, "named beside a signature/name/date")
        if _signed_label(blocks, i):
            return _Hit(doc, b, "label next to a signature/name/date field")
    return None


def _loc_label(loc: Location) -> str:
    bits = [loc.file]
    for key in ("page", "slide", "table", "row", "paragraph"):
        v = getattr(loc, key)
        if v is not None:
            bits.append(f"{key} {v}")
    return ", ".join(bits)


class _Search:
    """Statements first, then each party in the declaration documents (or around each statement)."""

    def __init__(self, ctx: CheckContext, docs: list[SubmittedDocument]) -> None:
        self.docs = docs
        self.parties = _parties(ctx)
        self.statements: list[_Hit] = []
        self.scopes: list[tuple[Document, list[Block]]] = []
        for d in docs:
            self._scan(d)
        self.found: dict[str, _Hit] = {}
        for name, pattern in self.parties.items():
            hit = next((h for doc, blocks in self.scopes if (h := _find_party(doc, blocks, pattern))), None)
            if hit is not None:
                self.found[name] = hit

    def _scan(self, d: SubmittedDocument) -> None:
        blocks = list(counted_blocks(d.doc))
        is_decl = d.role is Role.DECLARATION
        hits = [(i, how) for i, b in enumerate(blocks) if (how := _is_statement(b, is_decl))]
        self.statements += [_Hit(d.doc, blocks[i], how) for i, how in hits]
        if hits and is_decl:
            self.scopes.append((d.doc, blocks))
        for i, _ in hits if not is_decl else []:
            self.scopes.append((d.doc, blocks[max(0, i - _WINDOW_BEFORE): i + _WINDOW_AFTER]))

    def findings(self) -> list[Finding]:
        out = [Finding(f"authenticity statement ({h.how}) in {_loc_label(h.block.location)}", h.block.location,
                       excerpt(h.block.text), {"pattern": h.how}) for h in self.statements[:5]]
        for name in self.parties:
            hit = self.found.get(name)
            if hit is None:
                out.append(Finding(f"{name}: not named as signing or confirming the statement", None,
                                   detail={"party": name, "found": False}))
            else:
                out.append(Finding(f"{name}: {hit.how} in {_loc_label(hit.block.location)}", hit.block.location,
                                   excerpt(hit.block.text), {"party": name, "found": True}))
        return out


def _unreadable_declarations(docs: list[SubmittedDocument]) -> list[Finding]:
    out: list[Finding] = []
    for d in docs:
        if d.role is Role.DECLARATION and (d.doc.scanned_pages or not any(counted_blocks(d.doc))):
            out.append(Finding(f"{d.doc.file}: the declaration is a scanned image or has no text: check it by hand",
                               Location(d.doc.file), detail={"scanned_pages": list(d.doc.scanned_pages)}))
    return out


class AuthenticityDeclaration:
    id: ClassVar[str] = "authenticity_declaration"

    def run(self, ctx: CheckContext) -> CheckResult:
        docs = _ordered(ctx)
        if not docs:
            return ctx.not_applicable("no documents to search for an authenticity declaration")
        search = _Search(ctx, docs)
        missing = [p for p in search.parties if p not in search.found]
        measured = {"statements": len(search.statements),
                    "statement_files": sorted({h.doc.file for h in search.statements}),
                    "parties_found": {p: _loc_label(h.block.location) for p, h in search.found.items()},
                    "parties_missing": missing}
        expected = {"statement": True, "parties": list(search.parties)}
        findings = search.findings() + _unreadable_declarations(docs)
        kw: dict[str, Any] = {"measured": measured, "expected": expected, "findings": findings}
        if not search.statements:
            return _no_statement(ctx, docs, kw)
        if missing:
            return ctx.violation(f"authenticity statement found, but not signed/confirmed by: {', '.join(missing)}",
                                 **kw)
        return ctx.passed(f"authenticity statement found, confirmed by {', '.join(search.found)}", **kw)


def _ordered(ctx: CheckContext) -> list[SubmittedDocument]:
    roles = ctx.param("roles")
    docs = ctx.submission.with_role(*[Role(r) for r in roles]) if roles else list(ctx.submission.documents)
    return sorted(docs, key=lambda d: d.role is not Role.DECLARATION)  # stable: declarations first


def _no_statement(ctx: CheckContext, docs: list[SubmittedDocument], kw: dict[str, Any]) -> CheckResult:
    if _unreadable_declarations(docs):
        return ctx.result(Outcome.WARN, "no authenticity statement found in the text, but a declaration document "
                          "is a scanned image or has no text: check it by hand", **kw)
    return ctx.violation("no statement that the evidence is the apprentice's own work / authentic was found "
                         "(searched for 'own work', 'authentic', 'attributable to' with 'confirm'/'declare')", **kw)
