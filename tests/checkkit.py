"""Build check contexts in tests without a profile file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extractors import extract_file
from extractors.model import Document
from validators.base import CheckContext
from validators.profile import Profile, Role
from validators.submission import Submission, SubmittedDocument

SOURCE = "test fixture"


def profile(check_id: str, params: dict[str, Any], severity: str = "fail", ksbs: dict[str, str] | None = None,
            method_ksbs: list[str] | None = None, documents: list[dict[str, Any]] | None = None) -> Profile:
    rule = {"text": f"rule for {check_id}", "source": SOURCE}
    return Profile.model_validate({
        "id": "test-profile",
        "standard": {"code": "ST9999", "title": "Test standard"},
        "epao": "Test EPAO",
        "sources": [{"id": "t", "title": "test"}],
        "ksbs": ksbs or {},
        "methods": {"M1": {
            "name": "Method one",
            "ksbs": method_ksbs or [],
            "documents": documents or [],
            "checks": {check_id: {"severity": severity, "rule": rule, "params": params}},
        }},
    })


def ctx(check_id: str, docs: list[tuple[Document, Role]], params: dict[str, Any] | None = None, *,
        severity: str = "fail", meta: dict[str, str] | None = None, errors: list[dict[str, str]] | None = None,
        **profile_kw: Any) -> CheckContext:
    prof = profile(check_id, params or {}, severity, **profile_kw)
    sub = Submission([SubmittedDocument(d, r, "test") for d, r in docs], errors or [], meta or {})
    method = prof.methods["M1"]
    return CheckContext(sub, prof, "M1", method, method.checks[check_id], check_id)


def doc(path: Path, name: str | None = None) -> Document:
    return extract_file(path, name)


def run(check_id: str, c: CheckContext):
    from validators.checks import REGISTRY

    return REGISTRY[check_id].run(c)
