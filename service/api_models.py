"""Request/response models of the HTTP API, and the one error type every endpoint raises.

Why models for every response: the OpenAPI document is the contract gateway
portals code against, so each status code names its schema, errors included.
Why one error shape (``{"error": {"code", "message", "remedy"}}``): clients
branch on ``code`` (stable, never renamed) and show ``remedy`` to people; they
never parse messages.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from validators.profile import Role, all_profiles, find

from .contracts import Status, SubmissionRecord


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the typed error body."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        remedy: str = "",
        *,
        options: list[str] | None = None,
        status: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.remedy = remedy
        self.options = options
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        detail = ErrorDetail(
            code=self.code, message=self.message, remedy=self.remedy, options=self.options, status=self.status
        )
        return ErrorBody(error=detail).model_dump(exclude_none=True)


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. legacy_format, file_too_large, not_found")
    message: str = Field(description="what went wrong, for people")
    remedy: str = Field("", description="what to do about it, for people")
    options: list[str] | None = Field(None, description="valid values, when the error is an unknown choice")
    status: str | None = Field(None, description="the submission's status, when the error depends on it")


class ErrorBody(BaseModel):
    error: ErrorDetail


class SubmissionForm(BaseModel):
    """The text fields of ``POST /v1/submissions``, validated and resolved to one profile and method.

    Built by ``SubmissionForm.parse`` from the multipart fields (not by FastAPI, which
    would need the whole form spooled first); every refusal is an ApiError with a
    stable code and, for an unknown choice, the valid options.
    """

    model_config = ConfigDict(frozen=True)

    profile: str
    method: str
    roles: dict[str, str] = Field(default_factory=dict)
    meta: dict[str, str] = Field(default_factory=dict)
    callback_url: str | None = None

    @classmethod
    def parse(cls, fields: dict[str, str]) -> SubmissionForm:
        return _resolve(fields)


MAX_ROLE_KEY_CHARS = 255
MAX_META_KEYS = 50
MAX_META_VALUE_CHARS = 1024
_ROLES = [str(r) for r in Role]


def check_field_early(name: str, value: str) -> None:
    """Called as each text field arrives, so an unknown standard stops the upload before the files are read."""
    if name == "standard" and value.strip() and not find(value):
        raise _unknown_standard(value)


def _unknown_standard(value: str) -> ApiError:
    profiles = all_profiles().values()
    options = sorted({p.id for p in profiles} | {p.standard.code for p in profiles})
    return ApiError(422, "unknown_standard", f"no profile for standard '{value[:64]}'",
                    "Use a standard code or profile id from GET /v1/standards.", options=options)


def _resolve(fields: dict[str, str]) -> SubmissionForm:
    """Resolve standard, EPAO and method to one profile and method; validate roles, meta and callback_url."""
    standard, epao = fields.get("standard", "").strip(), fields.get("epao", "").strip() or None
    if not standard:
        raise ApiError(422, "missing_field", "the 'standard' field is required",
                       "Send the standard code (e.g. ST0505) or a profile id from GET /v1/standards.")
    found = find(standard, epao)
    if not found:
        if epao and find(standard):
            raise ApiError(422, "unknown_epao", f"no profile for this standard from EPAO '{epao[:64]}'",
                           "Use one of the EPAOs listed, or leave epao out.",
                           options=sorted({p.epao for p in find(standard)}))
        raise _unknown_standard(standard)
    if len(found) > 1:
        raise ApiError(422, "ambiguous_standard", f"standard '{standard[:64]}' has several profiles",
                       "Send a profile id as 'standard', or narrow it with 'epao'.",
                       options=sorted(p.id for p in found))
    profile = found[0]
    method = fields.get("method", "").strip()
    if not method and len(profile.methods) == 1:
        method = next(iter(profile.methods))
    if method not in profile.methods:
        code = "unknown_method" if method else "method_required"
        raise ApiError(422, code, f"profile {profile.id} has no method '{method[:64]}'" if method
                       else f"profile {profile.id} has several methods: say which", "Send one of the listed methods.",
                       options=sorted(profile.methods))
    callback = fields.get("callback_url", "").strip() or None
    return SubmissionForm(profile=profile.id, method=method, roles=_roles(fields.get("roles")),
                          meta=_meta(fields.get("meta")), callback_url=callback)


def _json_object(raw: str | None, name: str) -> dict[str, object]:
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ApiError(422, f"invalid_{name}", f"'{name}' is not valid JSON", f"Send '{name}' as a JSON object.") \
            from exc
    if not isinstance(value, dict):
        raise ApiError(422, f"invalid_{name}", f"'{name}' must be a JSON object", f"Send '{name}' as a JSON object.")
    return value


def _roles(raw: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, role in _json_object(raw, "roles").items():
        if not isinstance(role, str) or role not in _ROLES or not key or len(key) > MAX_ROLE_KEY_CHARS:
            raise ApiError(422, "invalid_roles", "each role must map a file name to a known role",
                           'Send roles like {"report.docx": "report"}.', options=_ROLES)
        out[key] = role
    return out


def _meta(raw: str | None) -> dict[str, str]:
    value = _json_object(raw, "meta")
    if len(value) > MAX_META_KEYS:
        raise ApiError(422, "invalid_meta", f"'meta' has more than {MAX_META_KEYS} keys", "Send fewer keys.")
    out: dict[str, str] = {}
    for key, v in value.items():
        if isinstance(v, bool | int | float | str) and len(key) <= 64 and len(str(v)) <= MAX_META_VALUE_CHARS:
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
        else:
            raise ApiError(422, "invalid_meta", "'meta' values must be short strings, numbers or booleans",
                           'Send meta like {"gateway_date": "2025-01-31"}.')
    return out


class SubmissionAccepted(BaseModel):
    id: str
    status: Status
    status_url: str
    report_url: str


class FileInfo(BaseModel):
    name: str = Field(description="the uploaded file's name, sanitised; display only")
    size: int
    sha256: str
    detected: str = Field(description="format sniffed from the content: docx, pptx, pdf, media, zip, text, image")


class SubmissionErrorInfo(BaseModel):
    code: str
    message: str
    remedy: str


class SubmissionView(BaseModel):
    id: str
    status: Status
    profile: str
    method: str
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: str = ""
    attempts: int = 0
    outcome: str | None = Field(None, description="report outcome when done: pass | attention | fail")
    error: SubmissionErrorInfo | None = Field(None, description="why it failed, when status is failed")
    files: list[FileInfo] = Field(default_factory=list)
    report_url: str

    @classmethod
    def of(cls, rec: SubmissionRecord, base_url: str) -> SubmissionView:
        error = None
        if rec.status is Status.FAILED:
            error = SubmissionErrorInfo(
                code=rec.error_code or "internal_error",
                message=rec.error_message or "processing failed",
                remedy=rec.remedy or "",
            )
        return cls(
            id=rec.id,
            status=rec.status,
            profile=rec.profile,
            method=rec.method,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            progress=rec.progress,
            attempts=rec.attempts,
            outcome=rec.outcome if rec.status is Status.DONE else None,
            error=error,
            files=[FileInfo(name=f.name, size=f.size, sha256=f.sha256, detected=f.detected) for f in rec.files],
            report_url=f"{base_url}/v1/submissions/{rec.id}/report",
        )


class SubmissionList(BaseModel):
    items: list[SubmissionView]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last page")


class DocumentInfo(BaseModel):
    role: str
    required: bool
    description: str


class MethodCheckInfo(BaseModel):
    id: str
    severity: str
    rule: str
    source: str


class MethodInfo(BaseModel):
    id: str
    name: str
    ksbs: list[str]
    documents: list[DocumentInfo]
    checks: list[MethodCheckInfo]
    cannot_check: list[str]


class ProfileInfo(BaseModel):
    id: str = Field(description="profile id: pass as `standard` to select this profile exactly")
    code: str = Field(description="standard code, e.g. ST0505: pass as `standard` (with `epao` if ambiguous)")
    title: str
    level: int | None = None
    version: str | None = None
    epao: str
    methods: list[MethodInfo]


class StandardsList(BaseModel):
    profiles: list[ProfileInfo]
    checks: list[str] = Field(description="every check id the service can run")

    @classmethod
    def build(cls) -> StandardsList:
        """From the loaded profiles (cached by validators.profile; adding a profile file needs a restart)."""
        from validators.checks import CHECKS
        from validators.profile import all_profiles

        profiles = []
        for p in sorted(all_profiles().values(), key=lambda p: p.id):
            methods = [
                MethodInfo(
                    id=mid, name=m.name, ksbs=list(m.ksbs), cannot_check=list(m.cannot_check),
                    documents=[DocumentInfo(role=str(d.role), required=d.required, description=d.description)
                               for d in m.documents],
                    checks=[MethodCheckInfo(id=cid, severity=c.severity, rule=c.rule.text, source=c.rule.source)
                            for cid, c in m.checks.items()],
                )
                for mid, m in p.methods.items()
            ]
            profiles.append(ProfileInfo(id=p.id, code=p.standard.code, title=p.standard.title,
                                        level=p.standard.level, version=p.standard.version, epao=p.epao,
                                        methods=methods))
        return cls(profiles=profiles, checks=sorted(CHECKS))


class UploadFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=4096, description="the file's name: it must end in an allowed "
                      "extension (415 extension_not_allowed otherwise); display only, never a storage key")
    size: int = Field(ge=1, description="exact size in bytes; the upload must be exactly this long")


class UploadRequest(BaseModel):
    """Body of ``POST /v1/uploads``: the files to be sent through upload URLs."""

    model_config = ConfigDict(extra="forbid")

    files: list[UploadFileSpec] = Field(min_length=1)


class UploadTicket(BaseModel):
    upload_id: str = Field(description="pass in the submission's `uploads` field once the PUT succeeded")
    name: str = Field(description="the file's name, sanitised; display only")
    url: str = Field(description="where to PUT the file's bytes (the raw body, not multipart); short-lived")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="headers to send with the PUT")
    expires_at: int = Field(description="Unix time after which the URL is refused")


class UploadsCreated(BaseModel):
    uploads: list[UploadTicket]


class UploadStored(BaseModel):
    upload_id: str
    size: int
    sha256: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    state: bool
    storage: bool


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI component schemas of models FastAPI never sees (bodies an endpoint reads itself, with a cap)."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    return dict(top.get("$defs", {}))


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries naming the error model for each status code."""
    text = {
        400: "malformed request",
        401: "missing or invalid API key",
        403: "the key's role may not do this",
        404: "no such submission (or pending upload) for this tenant",
        409: "conflict (idempotency key reused, or report not ready)",
        413: "a size or count limit was crossed",
        415: "file type refused (a name without an allowed extension, or content of no format we read)",
        422: "invalid field or file content (e.g. content_mismatch: the content is not what the name says)",
        429: "rate limited, or the queue is full (queue_full); see Retry-After",
        503: "a dependency is unavailable, or too many uploads at once (too_many_uploads); see Retry-After",
    }
    return {c: {"model": ErrorBody, "description": text.get(c, "error")} for c in codes}
