"""A submission: extracted documents, each with a role, plus caller metadata.

Roles are detected from format, file name and content, and can be overridden
(``--role PATH=ROLE``). Each document records why it got its role, so an
assessor can see (and a provider can correct) a wrong guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from extractors.model import Document

from .profile import Role

_NAME_RULES: list[tuple[Role, re.Pattern[str]]] = [
    (Role.DECLARATION, re.compile(r"declar|authentic|attestation", re.I)),
    (Role.MAPPING, re.compile(r"mapping|ksb|evidence[ _-]?locator|matrix|tracker", re.I)),
    (Role.SYNOPSIS, re.compile(r"synopsis|proposal|scope", re.I)),
    (Role.EMPLOYER_REFERENCE, re.compile(r"employer[ _-]?ref|reference[ _-]?from|referee|testimonial", re.I)),
    (Role.PRESENTATION, re.compile(r"presentation|slides|deck", re.I)),
    (Role.REPORT, re.compile(r"report|project", re.I)),
]
_DECLARATION_TEXT = re.compile(
    r"\b(declar\w*|confirm)\b.{0,120}\b(own work|authentic|attributable|genuine)\b", re.I | re.S
)


@dataclass(slots=True)
class SubmittedDocument:
    doc: Document
    role: Role
    reason: str  # why this role: "override", "format pptx", "name matches 'mapping'", ...
    in_portfolio: bool = False

    def to_dict(self) -> dict[str, object]:
        d = self.doc.to_dict()
        d["role"] = str(self.role)
        d["role_reason"] = self.reason
        return d


@dataclass(slots=True)
class Submission:
    documents: list[SubmittedDocument] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    def with_role(self, *roles: Role) -> list[SubmittedDocument]:
        return [d for d in self.documents if d.role in roles]

    def docs(self, *roles: Role) -> list[Document]:
        return [d.doc for d in self.with_role(*roles)]


# Inside a portfolio every file is evidence unless it is one of these supporting documents.
_PORTFOLIO_SUPPORT = {Role.DECLARATION, Role.MAPPING, Role.SYNOPSIS, Role.EMPLOYER_REFERENCE}


def detect_role(doc: Document, in_portfolio: bool) -> tuple[Role, str]:
    """Best guess of a document's role from its format, name and first words."""
    if doc.format == "media" and not in_portfolio:
        return Role.MEDIA, "format media"
    name = PurePosixPath(doc.file).name
    for role, pattern in _NAME_RULES:
        m = pattern.search(name)
        if m and (not in_portfolio or role in _PORTFOLIO_SUPPORT):
            return role, f"file name matches '{m.group(0)}'"
    head = " ".join(b.text for b in doc.blocks[:40])
    if _DECLARATION_TEXT.search(head) and doc.total_words() < 600:
        return Role.DECLARATION, "short document declaring the work authentic"
    if doc.format == "pptx" and not in_portfolio:
        return Role.PRESENTATION, "format pptx"
    if in_portfolio or doc.format in {"image", "text"}:
        return Role.EVIDENCE, "portfolio item" if in_portfolio else f"format {doc.format}"
    return Role.REPORT, f"{doc.format} document outside a portfolio"


def build(
    docs: list[tuple[Document, bool]],
    errors: list[dict[str, str]],
    overrides: dict[str, Role],
    meta: dict[str, str],
) -> Submission:
    """``docs`` pairs each document with whether it came from a zip or folder."""
    sub = Submission(errors=list(errors), meta=dict(meta))
    for doc, in_portfolio in docs:
        role = _override(doc.file, overrides)
        if role is not None:
            sub.documents.append(SubmittedDocument(doc, role, "override", in_portfolio))
        else:
            guessed, reason = detect_role(doc, in_portfolio)
            sub.documents.append(SubmittedDocument(doc, guessed, reason, in_portfolio))
    _one_report(sub)
    return sub


def _override(file: str, overrides: dict[str, Role]) -> Role | None:
    for key, role in overrides.items():
        if file == key or file.endswith("/" + key) or PurePosixPath(file).name == key:
            return role
    return None


def _one_report(sub: Submission) -> None:
    """Several auto-detected 'reports': the longest is the report, the rest evidence."""
    reports = [d for d in sub.documents if d.role is Role.REPORT and d.reason != "override"]
    if len(reports) < 2:
        return
    keep = max(reports, key=lambda d: d.doc.total_words())
    for d in reports:
        if d is not keep:
            d.role, d.reason = Role.EVIDENCE, "shorter than the main report"
