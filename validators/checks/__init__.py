"""Check registry: stable check ids -> implementing class, imported on first use.

Ids are part of the report contract (``checks[].id``) and never renamed.
Parameters for each check are documented in validators/CHECKS.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from ..base import Check

CHECKS: dict[str, str] = {
    "word_count": "word_count:WordCount",
    "themes": "themes:Themes",
    "starr": "themes:Starr",
    "ksb_mapping": "ksb_mapping:KsbMapping",
    "evidence_count": "evidence_count:EvidenceCount",
    "media_duration": "media:MediaDuration",
    "media_links": "media:MediaLinks",
    "presentation": "presentation:Presentation",
    "required_documents": "documents:RequiredDocuments",
    "file_formats": "documents:FileFormats",
    "authenticity_declaration": "documents:AuthenticityDeclaration",
    "gateway": "gateway:Gateway",
    "reflective_accounts": "reflective:ReflectiveAccounts",
    "employer_contributions": "reflective:EmployerContributions",
    "attribution": "attribution:Attribution",
    "sensitive_data": "sensitive:SensitiveData",
}


class _Registry(Mapping[str, Check]):
    def __init__(self) -> None:
        self._loaded: dict[str, Check] = {}

    def __getitem__(self, check_id: str) -> Check:
        if check_id not in self._loaded:
            module, cls = CHECKS[check_id].split(":")
            self._loaded[check_id] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
        return self._loaded[check_id]

    def __iter__(self) -> Iterator[str]:
        return iter(CHECKS)

    def __len__(self) -> int:
        return len(CHECKS)

    def __contains__(self, key: object) -> bool:
        return key in CHECKS


REGISTRY = _Registry()
