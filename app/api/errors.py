"""JSON error bodies for every API failure (docs/CONTRACT.md "JSON API").

Every error the API answers with has one shape::

    {"error": {"code": "validation_error", "message": "...", "fields": {"name": ["required"]}}}

``fields`` appears for field-level problems; ``problems`` for a workflow
that cannot be activated. Bad input never becomes a 500: pydantic errors,
malformed JSON, oversized bodies, CSRF and rate-limit refusals are all
turned into this shape here, in one place.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from app.extensions import db, limiter

log = logging.getLogger(__name__)

# Stable machine-readable codes for the HTTP errors werkzeug raises.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raise from a view (or a helper it calls) to answer with an error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str = "object") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def validation_error(
    fields: dict[str, list[str]], status: int = 400, message: str = ""
) -> ApiError:
    names = ", ".join(sorted(fields))
    return ApiError(status, "validation_error", message or f"invalid input: {names}", fields=fields)


def pydantic_fields(exc: ValidationError, prefix: str = "") -> dict[str, list[str]]:
    """pydantic errors as ``{"dotted.field": ["message", ...]}``.

    Missing fields read "required" and unknown ones "unknown field", the
    words the contract's example uses."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "__root__"
        kind = error["type"]
        if kind == "missing":
            message = "required"
        elif kind == "extra_forbidden":
            message = "unknown field"
        else:
            message = error["msg"].removeprefix("Value error, ")
        fields.setdefault(prefix + path, []).append(message)
    return fields


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict | None = None,
    headers: dict[str, str] | None = None,
    **extra,
):
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _retry_after(exc: RateLimitExceeded) -> int:
    current = limiter.current_limit
    if current is not None:
        return max(1, int(current.reset_at - time.time()))
    return max(1, int(exc.limit.limit.get_expiry()))


def handle_api_error(exc: ApiError):
    return error_response(
        exc.status, exc.code, exc.message, fields=exc.fields, headers=exc.headers, **exc.extra
    )


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    headers = {}
    if isinstance(exc, RateLimitExceeded):
        headers["Retry-After"] = str(_retry_after(exc))
        message = f"rate limit exceeded ({exc.description}); retry later"
    elif isinstance(exc, CSRFError):
        return error_response(400, "csrf_failed", f"CSRF check failed: {exc.description}")
    elif isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.valid_methods or [])
        message = f"method {request.method} not allowed here"
    elif status == 413:
        message = "request body is larger than 1 MiB"
    else:
        message = exc.description or exc.name
    return error_response(status, HTTP_CODES.get(status, "error"), message, headers=headers)


def handle_validation_error(exc: ValidationError):
    return handle_api_error(validation_error(pydantic_fields(exc)))


def handle_data_error(exc: DataError):
    """A value the database cannot hold (an id past INTEGER's range, say)
    is bad input, not a server fault."""
    db.session.rollback()
    log.info("API input rejected by the database: %s", exc.orig)
    return error_response(400, "invalid_value", "a value in the request is out of range")


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    log.exception("API request failed: %s %s", request.method, request.path)
    return error_response(500, "internal_error", "internal error; it has been logged")


def install(bp: Blueprint, app_hooks_bp: Blueprint) -> None:
    """Register the handlers on the API blueprints.

    Routing failures (an unknown URL or method under ``/api/``) happen
    before any blueprint is chosen, so a request hook turns them into JSON
    for every path under ``/api/`` instead of the site's HTML error pages."""
    for target in (bp, app_hooks_bp):
        target.register_error_handler(ApiError, handle_api_error)
        target.register_error_handler(ValidationError, handle_validation_error)
        target.register_error_handler(HTTPException, handle_http_exception)
        target.register_error_handler(DataError, handle_data_error)
        target.register_error_handler(Exception, handle_unexpected)

    @bp.before_app_request
    def _json_routing_errors():
        failure = request.routing_exception
        # A missing trailing slash stays a redirect; the rest become JSON.
        if (
            request.path.startswith("/api/")
            and isinstance(failure, HTTPException)
            and not isinstance(failure, RequestRedirect)
        ):
            return handle_http_exception(failure)
        return None


def refused(exc) -> ApiError:
    """A domain operation's refusal (``message``, ``field``, ``conflict``:
    crm.errors.CrmError, workflow_ops.WorkflowOpError): 409 naming the field
    when it clashes with what exists, else 400 naming the field."""
    many = getattr(exc, "errors", None)
    fields = (
        {field: [message] for field, message in many.items()}
        if many
        else {exc.field or "__root__": [exc.message]}
    )
    if exc.conflict:
        return ApiError(409, "conflict", exc.message, fields=fields)
    return validation_error(fields)
