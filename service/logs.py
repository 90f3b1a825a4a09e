"""Structured JSON logs carrying the request id and submission id.

Why JSON: log shippers index fields, so "every request for submission X" is a
query, not a grep. Why so little in each line: apprentices' documents are
personal data (UK GDPR), and OWASP ASVS V16 says security logs should not hold
it. Lines carry ids, routes, status codes, sizes, durations and error codes;
never file names, document content, metadata values or API keys. Callers pass
fields explicitly through ``event``; there is no "log the request" helper.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "gatecheck.api"
REQUEST_ID_HEADER = "X-Request-ID"

request_id_var: ContextVar[str] = ContextVar("gatecheck_request_id", default="")
submission_id_var: ContextVar[str] = ContextVar("gatecheck_submission_id", default="")

_INTERNAL_ERROR = json.dumps({"error": {
    "code": "internal_error", "message": "an unexpected error occurred",
    "remedy": "Try again; if it persists, contact support quoting the X-Request-ID header.",
}}).encode()
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(header: str | None) -> str:
    """Reuse the caller's id when it is harmless (short, no spaces or control chars), else make one."""
    if header and _SAFE_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, context ids and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # the exception type only: messages of parser exceptions can quote document text
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, default=str, separators=(",", ":"))


def configure(level: int = logging.INFO) -> None:
    """Route the API logger (and uvicorn's) through the JSON formatter; idempotent."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER_NAME, "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # our access line replaces it (no raw query strings)


def event(name: str, level: int = logging.INFO, exc: bool = False, **fields: Any) -> None:
    """Log one event with explicit, non-personal fields."""
    context = {"request_id": request_id_var.get(), "submission_id": submission_id_var.get()}
    merged = {**{k: v for k, v in context.items() if v}, **fields}  # ids captured now, not when formatted
    logging.getLogger(LOGGER_NAME).log(level, name, exc_info=exc, extra={"fields": merged})


Observer = Callable[[str, str, int, float], None]  # method, route template, status, seconds


class RequestContext:
    """ASGI middleware: request id in and out, one access line and one metrics sample per request.

    Also sets ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store``
    on every response: reports hold personal data and must not sit in shared caches.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so the request body stays a
    stream for the upload endpoint. The route label is the path *template*
    (``/v1/submissions/{submission_id}``) so metrics keep a bounded cardinality.
    """

    def __init__(self, app: ASGIApp, observe: Observer | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode())
        rid = request_id_from(raw.decode("latin-1") if raw else None)
        token = request_id_var.set(rid)
        sub_token = submission_id_var.set("")
        started = time.perf_counter()
        status = 500
        status_sent = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = int(message["status"]), True
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # after every handler: answer the typed 500 here, with the request id
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
            # type and place only: exception messages from parsers can quote document text
            event("unhandled_error", logging.ERROR, exception=type(exc).__name__, where=where)
            if status_sent:
                raise
            await send_with_id({"type": "http.response.start", "status": 500,
                                "headers": [(b"content-type", b"application/json")]})
            await send_with_id({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if self.observe is not None:
                self.observe(scope["method"], template, status, seconds)
            event("request", method=scope["method"], route=template, status=status, ms=round(seconds * 1000, 1))
            submission_id_var.reset(sub_token)
            request_id_var.reset(token)
