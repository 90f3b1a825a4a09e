"""Standards as data: one YAML profile per standard and EPAO, validated on load.

A profile lists the assessment methods, the documents each takes, the KSBs
mapped to each, and the checks to run with their parameters, severity and the
published rule (text, source, and a verbatim quote from the source so a test
can prove every number traces to a seed or a cited plan). Adding a standard
is adding a file: no code.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .model import Rule

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class Role(StrEnum):
    REPORT = "report"
    PRESENTATION = "presentation"
    EVIDENCE = "evidence"
    MAPPING = "mapping"
    DECLARATION = "declaration"
    MEDIA = "media"
    SYNOPSIS = "synopsis"
    EMPLOYER_REFERENCE = "employer_reference"
    OTHER = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSpec(_Strict):
    text: str = Field(min_length=1)
    source: str = Field(min_length=1, description="seed file name and section, or a cited public plan")
    quote: str | None = Field(default=None, description="verbatim words from the source, for traceability tests")

    def rule(self) -> Rule:
        return Rule(self.text, self.source)


class CheckSpec(_Strict):
    severity: Literal["fail", "warn"] = "fail"
    rule: RuleSpec
    params: dict[str, Any] = Field(default_factory=dict)


class DocumentSpec(_Strict):
    role: Role
    required: bool = True
    description: str = ""
    rule: RuleSpec


class MethodSpec(_Strict):
    name: str
    ksbs: list[str] = Field(default_factory=list)
    documents: list[DocumentSpec] = Field(default_factory=list)
    checks: dict[str, CheckSpec] = Field(default_factory=dict)
    cannot_check: list[str] = Field(default_factory=list, description="rules stated plainly as not checkable")


class StandardInfo(_Strict):
    code: str
    title: str
    level: int | None = None
    version: str | None = None


class SourceSpec(_Strict):
    id: str
    title: str
    file: str | None = None  # in ../shared/seeds or ../shared/reference
    url: str | None = None


class Profile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    standard: StandardInfo
    epao: str
    sources: list[SourceSpec] = Field(min_length=1)
    ksbs: dict[str, str] = Field(default_factory=dict, description="KSB code -> text")
    methods: dict[str, MethodSpec] = Field(min_length=1)
    duties: dict[str, list[str]] = Field(default_factory=dict, description="duty -> KSB codes")
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _method_ksbs_exist(self) -> Profile:
        if self.ksbs:
            for mid, method in self.methods.items():
                unknown = [k for k in method.ksbs if k not in self.ksbs]
                if unknown:
                    raise ValueError(f"method {mid} maps KSBs not in the catalogue: {unknown}")
        return self


class ProfileError(Exception):
    """A profile file that does not validate: the message says which and why."""


def load_file(path: Path) -> Profile:
    from .checks import CHECKS  # late import: checks import profile types

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        profile = Profile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"{path.name}: {exc}") from exc
    for mid, method in profile.methods.items():
        unknown = sorted(set(method.checks) - set(CHECKS))
        if unknown:
            raise ProfileError(f"{path.name}: method {mid} names unknown checks {unknown}")
    return profile


def profile_dirs() -> list[Path]:
    extra = os.environ.get("GATECHECK_PROFILES_DIR")
    return [PROFILES_DIR, *([Path(p) for p in extra.split(os.pathsep) if p] if extra else [])]


@cache
def _load_all(dirs: tuple[Path, ...]) -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for d in dirs:
        for path in sorted(d.glob("*.yaml")):
            prof = load_file(path)
            out[prof.id] = prof
    return out


def all_profiles() -> dict[str, Profile]:
    return _load_all(tuple(profile_dirs()))


def find(standard: str, epao: str | None = None) -> list[Profile]:
    """Profiles matching a profile id or a standard code (optionally narrowed by EPAO)."""
    key = standard.strip().lower()
    profiles = all_profiles()
    if key in profiles:
        return [profiles[key]]
    found = [p for p in profiles.values() if p.standard.code.lower() == key]
    if epao:
        found = [p for p in found if epao.lower() in p.epao.lower()]
    return found


def json_schema() -> dict[str, Any]:
    return Profile.model_json_schema()
