"""The HTTP API: ``create_app(settings, state, storage, enqueue)`` builds it from its dependencies.

Why a factory taking every dependency: the API process shares nothing with the
workers but the state store, object storage and the queue, so tests run it over
SQLite + a temp directory + a recording ``enqueue``, and ``gatecheck serve``
passes Celery's. ``create_app_from_env`` is the production wiring.

Routes are versioned under ``/v1``; every error, on every route, is
``{"error": {"code", "message", "remedy"}}`` with a stable code. A submission id
from another tenant answers 404 everywhere, exactly like an unknown id
(OWASP API1, BOLA: no existence leak).

Not ``from __future__ import annotations`` here: FastAPI reads the endpoint
signatures at runtime, and the ``Who`` dependency alias is local to the factory.
"""

import hmac
import json
import logging
import re
from collections.abc import Callable
from contextlib import suppress
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from extractors.limits import Limits
from gatecheck.checkreport import page

from . import logs
from .api_models import (
    ApiError,
    Health,
    Readiness,
    StandardsList,
    SubmissionAccepted,
    SubmissionList,
    SubmissionView,
    UploadFileSpec,
    UploadRequest,
    UploadsCreated,
    UploadStored,
    component_schemas,
    error_responses,
)
from .auth import Authenticator, Principal, bearer_token, require
from .contracts import ApiRole, StateStore, Status, Storage, SubmissionRecord
from .erasure import ERASURE, erase_submission
from .metrics import CONTENT_TYPE, Metrics
from .presigned import Staging, read_upload_request
from .settings import Settings
from .state import StateUnavailable
from .storage import StorageError
from .uploads import Submissions, unavailable

Enqueue = Callable[[str], None]
_SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_REPORT_BYTES = 64 * 1024 * 1024
_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["standard"],
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "the documents: docx, pptx, pdf, media, text, images or a zip portfolio "
                                         "(at least one file here or in uploads)"},
                "uploads": {"type": "string", "description": "JSON list of upload_ids from POST /v1/uploads whose "
                            "files were PUT to their url; they follow the direct files", "example": '["<upload_id>"]'},
                "standard": {"type": "string", "description": "standard code (e.g. ST0505) or profile id"},
                "epao": {"type": "string", "description": "narrows a standard code to one EPAO's profile"},
                "method": {"type": "string", "description": "assessment method id (optional if only one)"},
                "roles": {"type": "string", "description": "JSON object: file name -> role "
                          "(report, presentation, evidence, mapping, declaration, media, synopsis, "
                          "employer_reference, other)", "example": '{"project report.docx": "report"}'},
                "meta": {"type": "string", "description": "JSON object of short strings (e.g. gateway dates)",
                         "example": '{"gateway_date": "2025-01-31"}'},
                "callback_url": {"type": "string", "format": "uri",
                                 "description": "signed webhook on completion; public http(s) addresses only"},
            },
        }}},
    }
}
_UPLOADS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}}}}
_RAW_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(
    settings: Settings,
    state: StateStore,
    storage: Storage,
    enqueue: Enqueue,
    *,
    queue_depth: Callable[[], int] | None = None,
    limits: Limits | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The API over these backends; ``enqueue(submission_id)`` schedules processing."""
    metrics = Metrics(queue_depth, task_stats=lambda: state.task_stats())  # workers record them in the store
    auth = authenticator or Authenticator.for_state(state, settings.rate_limit_per_minute)  # Redis: shared
    base_url = settings.public_url.rstrip("/")
    staging = Staging(settings, storage, base_url)
    submissions = Submissions(settings, state, storage, enqueue, limits or Limits.from_env(), base_url, staging,
                              queue_depth=queue_depth)  # the queue cap (GATECHECK_MAX_QUEUED) reads the broker
    app = FastAPI(
        title="gatecheck",
        version="1",
        description="Pre-checks apprenticeship End-Point Assessment submissions against the published rules.",
        responses=error_responses(401, 429),
    )
    _install_errors(app)
    app.add_middleware(logs.RequestContext, observe=metrics.observe)
    standards: list[StandardsList] = []
    bearer = HTTPBearer(auto_error=False, description="API key issued for a tenant")

    def principal(request: Request, _: Annotated[Any, Depends(bearer)] = None) -> Principal:
        client = request.client.host if request.client else "unknown"
        return auth.authenticate(request.headers.get("authorization"), client)

    Who = Annotated[Principal, Depends(principal)]

    def load(who: Principal, submission_id: str) -> SubmissionRecord:
        rec = state.get(submission_id, who.tenant) if _SUBMISSION_ID.match(submission_id) else None
        if rec is None or rec.tenant != who.tenant:  # the second test is belt and braces over the store's
            raise ApiError(404, "not_found", "no such submission", "Check the id; submissions are per tenant.")
        return rec

    @app.post("/v1/submissions", status_code=202, response_model=SubmissionAccepted, tags=["submissions"],
              responses=error_responses(400, 403, 409, 413, 415, 422, 503), openapi_extra=_MULTIPART_BODY)
    async def create_submission(
        request: Request,
        who: Who,
        idempotency_key: Annotated[str | None, Header(max_length=255, pattern=r"^[\x21-\x7e]+$")] = None,
    ) -> JSONResponse:
        """Upload files (streamed, sniffed) and queue the check. Nothing is stored unless every file passes."""
        require(who, ApiRole.SUBMITTER)
        try:
            status, body, replayed = await submissions.create(
                who.tenant, request.stream(), request.headers.get("content-type"),
                request.headers.get("content-length"), idempotency_key,
            )
        except ApiError as exc:
            metrics.upload(exc.code)
            raise
        metrics.upload("replayed" if replayed else "accepted")
        headers = {"Location": body["status_url"], **({"Idempotent-Replayed": "true"} if replayed else {})}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post("/v1/uploads", status_code=201, response_model=UploadsCreated, tags=["uploads"],
              responses=error_responses(403, 413, 415, 422, 503), openapi_extra=_UPLOADS_BODY)
    async def create_uploads(request: Request, who: Who) -> UploadsCreated:
        """One short-lived PUT URL per file (for large files, e.g. video); then submit their ids as ``uploads``."""
        require(who, ApiRole.SUBMITTER)
        spec = await read_upload_request(request.stream(), request.headers.get("content-type"))
        return await run_in_threadpool(staging.create, who.tenant, spec)

    @app.put("/v1/uploads/{upload_id}", response_model=UploadStored, tags=["uploads"],
             responses=error_responses(400, 403, 404, 413, 503), openapi_extra=_RAW_BODY)
    async def put_upload(
        upload_id: str, request: Request, token: Annotated[str, Query(max_length=1024)] = "",
    ) -> UploadStored:
        """Upload URL of local storage: the file's bytes as the body. The token in the URL is the permission."""
        return await staging.receive(upload_id, token, request.stream(), request.headers.get("content-length"))

    @app.get("/v1/submissions", response_model=SubmissionList, tags=["submissions"],
             responses=error_responses(400, 422))
    def list_submissions(
        who: Who,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> SubmissionList:
        """The caller's tenant's submissions, newest first, a page at a time."""
        require(who, ApiRole.SUBMITTER, ApiRole.READER)
        try:
            recs, next_cursor = state.list(who.tenant, status=status, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned",
                           "Start again without a cursor.") from exc
        items = [SubmissionView.of(r, base_url) for r in recs if r.tenant == who.tenant]
        return SubmissionList(items=items, next_cursor=next_cursor)

    @app.get("/v1/submissions/{submission_id}", response_model=SubmissionView, tags=["submissions"],
             responses=error_responses(404))
    def get_submission(submission_id: str, who: Who) -> SubmissionView:
        """Status, timestamps, progress, attempts; the error when failed, the outcome when done."""
        require(who, ApiRole.SUBMITTER, ApiRole.READER)
        return SubmissionView.of(load(who, submission_id), base_url)

    @app.get("/v1/submissions/{submission_id}/report", tags=["submissions"],
             responses={200: {"description": "the report (schema gatecheck.report/1), or HTML",
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
                                          "text/html": {"schema": {"type": "string"}}}},
                        **error_responses(404, 409, 503)})
    def get_report(
        submission_id: str,
        who: Who,
        request: Request,
        format: Literal["json", "html"] | None = None,
    ) -> Response:
        """The stored report once done: JSON, or HTML with ``Accept: text/html`` or ``?format=html``."""
        require(who, ApiRole.SUBMITTER, ApiRole.READER)
        rec = load(who, submission_id)
        if rec.status is not Status.DONE:
            raise ApiError(409, "report_not_ready", f"the submission is {rec.status}, not done",
                           "Poll the status URL until status is done (or failed: see its error).",
                           status=str(rec.status))
        raw = _read_report(storage, rec)
        html = format == "html" or (format is None and "text/html" in request.headers.get("accept", ""))
        if html:
            return HTMLResponse(page(json.loads(raw)), headers={"Content-Security-Policy": _HTML_CSP})
        return Response(raw, media_type="application/json")

    @app.delete("/v1/submissions/{submission_id}", status_code=204, tags=["submissions"],
                responses=error_responses(403, 404, 503))
    def delete_submission(submission_id: str, who: Who) -> Response:
        """Erase the submission (UK GDPR): its objects, upload receipts, record and idempotency entries,
        leaving an audit record with ids and counts only (service.erasure)."""
        require(who, ApiRole.ADMIN)
        rec = load(who, submission_id)
        logs.event("submission_delete", tenant=who.tenant, submission_id=rec.id)
        try:
            erase_submission(state, storage, rec, actor=f"api-key:{who.key_hash[:12]}", action=ERASURE)
        except StorageError as exc:  # the record stays so the delete can be retried; state errors: 503 handler
            raise unavailable("storage_unavailable", "object storage") from exc
        return Response(status_code=204)

    @app.get("/v1/standards", response_model=StandardsList, tags=["standards"])
    def get_standards(who: Who) -> StandardsList:
        """Profiles (standard, EPAO), their methods and checks: the valid values for a submission."""
        require(who, ApiRole.SUBMITTER, ApiRole.READER)
        if not standards:
            standards.append(StandardsList.build())  # profiles are loaded once per process anyway
        return standards[0]

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        """The process is up (liveness); says nothing about dependencies."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, tags=["ops"], responses={503: {"model": Readiness}})
    def readyz() -> JSONResponse:
        """State store and storage reachable (readiness): 503 takes this replica out of rotation."""
        ping = getattr(state, "ping", None)  # not in the StateStore contract: fall back to a cheap read
        state_ok = _probe(ping if callable(ping) else lambda: state.get("0" * 32, "__readyz__") is None or True)
        storage_ok = _probe(storage.ping)
        ok = state_ok and storage_ok
        body = Readiness(status="ok" if ok else "unavailable", state=state_ok, storage=storage_ok)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}})
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus text exposition; task counts and durations are read from the state store.

        Open when ``GATECHECK_METRICS_TOKEN`` is unset (the scraper reaches it on a private network);
        with a token, anything but ``Authorization: Bearer <token>`` is 401."""
        if settings.metrics_token:
            sent = bearer_token(request.headers.get("authorization")) or ""
            if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
                raise ApiError(401, "unauthorized", "/metrics needs the metrics token.",
                               "Send 'Authorization: Bearer <GATECHECK_METRICS_TOKEN>' from the scraper.",
                               headers={"WWW-Authenticate": 'Bearer realm="gatecheck-metrics"'})
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    _add_report_schema(app)
    return app


def _add_report_schema(app: FastAPI) -> None:
    """Publish gatecheck.report/1 (gatecheck/schemas/report.schema.json) as the report's OpenAPI schema,
    and the schemas of request bodies endpoints read themselves (``UploadRequest``).

    The JSON Schema's ``#/$defs/X`` references are rewritten to OpenAPI components,
    so clients generate report types from the same file the report tests validate against.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        text = (resources.files("gatecheck") / "schemas" / "report.schema.json").read_text(encoding="utf-8")
        report = json.loads(text.replace('"#/$defs/', '"#/components/schemas/Report_'))
        for key in ("$schema", "$id"):
            report.pop(key, None)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update({f"Report_{name}": d for name, d in report.pop("$defs", {}).items()})
        schemas["Report"] = report
        schemas.update(component_schemas(UploadRequest, UploadFileSpec))  # bodies parsed by the endpoint itself
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _probe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def _read_report(storage: Storage, rec: SubmissionRecord) -> bytes:
    missing = ApiError(404, "report_missing", "the report of this submission is no longer stored",
                       "Submit the files again to get a new report.")
    if not rec.report_key:
        raise missing
    try:
        fh = storage.get(rec.report_key)
    except Exception as exc:
        if getattr(exc, "code", None) == "not_found":
            raise missing from exc
        raise unavailable("storage_unavailable", "object storage") from exc
    with fh:
        raw = fh.read(MAX_REPORT_BYTES + 1)
    if len(raw) > MAX_REPORT_BYTES:
        raise ApiError(500, "internal_error", "the stored report is unexpectedly large", "Contact support.")
    return raw


def _install_errors(app: FastAPI) -> None:
    """One error shape for our errors, FastAPI's validation errors, unknown routes and crashes."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # locations and messages only: pydantic's "input" would echo what the client sent
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()[:5]]
        err = ApiError(422, "invalid_request", "; ".join(parts) or "invalid request",
                       "Correct the named parameters (see the OpenAPI document at /docs).")
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        err = ApiError(exc.status_code, code, str(exc.detail), "See the OpenAPI document at /docs.")
        return JSONResponse(err.body(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(StateUnavailable)
    async def _state_down(_: Request, exc: StateUnavailable) -> JSONResponse:
        logs.event("state_unavailable", logging.ERROR, exception=type(exc).__name__)
        err = unavailable("state_unavailable", "the state store")
        return JSONResponse(err.body(), status_code=503, headers=err.headers)

    @app.exception_handler(StorageError)
    async def _storage_down(_: Request, exc: StorageError) -> JSONResponse:
        logs.event("storage_error", logging.ERROR, code=exc.code)
        err = unavailable("storage_unavailable", "object storage")
        return JSONResponse(err.body(), status_code=503, headers=err.headers)


def create_app_from_env() -> FastAPI:
    """Production wiring: settings, state and storage from the environment, Celery's enqueue."""
    from .state import state_from_env
    from .storage import storage_from_env

    settings = Settings()
    settings.validate()
    logs.configure()
    from worker.celery_app import queue_depth
    from worker.tasks import enqueue

    with suppress(Exception):
        (settings.data_dir / "spool").mkdir(parents=True, exist_ok=True)
    return create_app(settings, state_from_env(), storage_from_env(), enqueue, queue_depth=queue_depth)
