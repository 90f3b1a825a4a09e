"""evidence_count: how many discrete pieces of evidence the portfolio holds.

Pieces are counted the way providers organise them: one folder per task when
the portfolio has task folders; otherwise one file per piece; or, for a single
portfolio document, its "Task n" / "Evidence n" sections. Index, mapping and
declaration documents are never pieces. The list is shown so the count can be
checked by eye.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from extractors.model import Document, Location

from ..base import CheckContext
from ..model import CheckResult, Finding
from ..profile import Role

_INDEX_NAME = re.compile(r"(^|[^a-z])(index|contents|readme|cover|checklist)([^a-z]|$)", re.IGNORECASE)
_PIECE_HEADING = re.compile(r"^\s*(task|evidence|piece|artefact|artifact|item)\s*(no\.?\s*)?\d+\b", re.IGNORECASE)


@dataclass(slots=True)
class _Piece:
    name: str
    location: Location
    files: int = 1


class EvidenceCount:
    id: ClassVar[str] = "evidence_count"

    def run(self, ctx: CheckContext) -> CheckResult:
        roles = [Role(r) for r in ctx.param("roles", ["evidence"])]
        docs = [d for d in ctx.docs(*roles) if not _INDEX_NAME.search(PurePosixPath(d.file).stem)]
        if not docs:
            return ctx.violation("no portfolio evidence was submitted", measured={"count": 0},
                                 expected=_expected(ctx))
        pieces, how = _pieces(docs)
        n = len(pieces)
        findings = [Finding(f"piece {i}: {p.name}" + (f" ({p.files} files)" if p.files > 1 else ""), p.location)
                    for i, p in enumerate(pieces, start=1)]
        measured = {"count": n, "counted_by": how}
        problem = _problem(ctx, n)
        if problem:
            return ctx.violation(f"{n} pieces of evidence ({how}): {problem}", measured=measured,
                                 expected=_expected(ctx), findings=findings)
        return ctx.passed(f"{n} pieces of evidence ({how})", measured=measured, expected=_expected(ctx),
                          findings=findings)


def _expected(ctx: CheckContext) -> dict[str, int]:
    return {k: int(ctx.param(k)) for k in ("min", "max", "typical") if ctx.param(k) is not None}


def _problem(ctx: CheckContext, n: int) -> str:
    lo, hi, typical = ctx.param("min"), ctx.param("max"), ctx.param("typical")
    if lo is not None and n < int(lo):
        return f"fewer than the minimum of {lo}"
    if hi is not None and n > int(hi):
        return f"more than the maximum of {hi}"
    if typical is not None and lo is None and hi is None and n != int(typical):
        return f"the standard expects typically {typical}"
    return ""


def _pieces(docs: list[Document]) -> tuple[list[_Piece], str]:
    groups = {d.group for d in docs if d.group}
    if len(groups) >= 2:
        return _by_folder(docs), "one per task folder"
    if len(docs) == 1:
        sections = [s for s in docs[0].sections if _PIECE_HEADING.match(s.title)]
        if len(sections) >= 2:
            return [_Piece(s.title, s.location) for s in sections], "Task/Evidence sections in one document"
    return [_Piece(PurePosixPath(d.file).name, _loc(d)) for d in docs], "one per file"


def _by_folder(docs: list[Document]) -> list[_Piece]:
    pieces: dict[str, _Piece] = {}
    for d in docs:
        key = d.group or PurePosixPath(d.file).name
        if key in pieces:
            pieces[key].files += 1
        else:
            pieces[key] = _Piece(key, _loc(d))
    return list(pieces.values())


def _loc(doc: Document) -> Location:
    return Location(file=doc.file)
