"""Errors to RFC 9457 problem-details responses, every one with a stable code."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from towerbox_core.errors import (
    StorageFull,
    StoreBusy,
    StoreUnavailable,
    TowerboxError,
    is_disk_full,
    is_lock_contention,
    is_store_unavailable,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:towerbox:problem:{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem(status: int, code: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = problem_body(status, code, detail, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def towerbox_error(_: Request[Any, Any, Any], exc: TowerboxError) -> Response[dict[str, Any]]:
    if exc.status >= 500:
        log.error("request failed: %s (%s)", exc.message, exc.code)
    body = exc.to_problem()
    retry_after = exc.retry_after_s if isinstance(exc, StoreBusy | StoreUnavailable) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(body, status_code=exc.status, media_type=PROBLEM_JSON, headers=headers)


def validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = "; ".join(
        f"{e.get('key', '?')}: {e.get('message', '')}" for e in errors if isinstance(e, dict)
    ) or str(exc.detail)
    return problem(400, "invalid_request", f"invalid request: {detail}", errors=errors)


def _body_field_error(exc: HTTPException) -> dict[str, str] | None:
    """The body field behind a 500 that Litestar raised for bad client input.

    Litestar strips ``data.`` from a body field's error key and then takes a field
    named like a dependency (``appliance``, ``registry``) for a dependency that failed:
    a 500. The cause still says it was the body."""
    cause = exc.__cause__
    if exc.status_code != 500 or not isinstance(cause, msgspec.ValidationError):
        return None
    message, _, where = str(cause).rpartition(" - at `$.")
    if not where.startswith("data."):
        return None
    return {"message": message, "key": where.removeprefix("data.").rstrip("`"), "source": "body"}


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    field = _body_field_error(exc)
    if field is not None:
        detail = f"invalid request: {field['key']}: {field['message']}"
        return problem(400, "invalid_request", detail, errors=[field])
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 413:
        # Litestar refuses a declared Content-Length over the route's limit before
        # reading, and stops reading a chunked body as soon as it passes the limit.
        limit = request.route_handler.resolve_request_max_body_size()
        return problem(413, code, f"request body is larger than {limit} bytes", limit_bytes=limit)
    if isinstance(exc, NotAuthorizedException):
        code = "unauthorized"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    return problem(exc.status_code, code, str(exc.detail))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if is_lock_contention(exc):
        # A write that met another writer outside the store's own translation: the
        # same answer, never a 500.
        busy = StoreBusy("the database is busy with another writer; retry shortly")
        return towerbox_error(request, busy)
    if is_store_unavailable(exc):
        # The database server restarted or went away under a request: retryable, and
        # the next request reconnects (registry.store.db).
        log.warning("database unavailable: %s", exc)
        gone = StoreUnavailable("the database is unavailable for now; retry shortly")
        return towerbox_error(request, gone)
    if is_disk_full(exc):
        # A full disk met by a writer that did not translate it: still a clear 507.
        full = StorageFull(f"the server's disk is full ({exc}); free space and retry")
        return towerbox_error(request, full)
    log.error("unhandled error in request", exc_info=exc)
    return problem(500, "internal_error", "internal error; the server's log has the details")


def problem_handlers() -> ExceptionHandlersMap:
    """Every error as a problem document: ours, Litestar's validation and HTTP errors,
    and anything unexpected (logged with its traceback, answered without it)."""
    return {
        TowerboxError: towerbox_error,
        ValidationException: validation_error,
        HTTPException: http_error,
        Exception: internal_error,
    }
