"""The one place where errors become HTTP answers: ``{"message": ..., "errors": {...}}`` always."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rcsgate.api.rcs_requests import INVALID_JSON, format_errors
from rcsgate.domain.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    RateLimited,
    Rejected,
    Unauthenticated,
    Unavailable,
)
from rcsgate.logging_setup import get_logger

from .schemas import ErrorBody

log = get_logger("rcsgate.api")

INVALID = "The given data was invalid."
NOT_JSON = INVALID_JSON


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"message": message, "errors": errors or {}}


def _json(
    status: int,
    message: str,
    errors: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, errors), status_code=status, headers=dict(headers or {}) or None)


# Where FastAPI found a parameter: the first element of an error's location, which the answer leaves out.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """FastAPI's RequestValidationError (query, path and header parameters) through the API's one 422
    formatter, ``rcs_requests.format_errors``: the same Laravel wording as body errors."""
    located: list[Mapping[str, Any]] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] in _SOURCES:
            loc = loc[1:]
        if error.get("type") == "json_invalid":
            loc = ()  # FastAPI adds the offset in the body
        located.append({**error, "loc": loc})
    return format_errors(located)


def domain_error_response(exc: DomainError) -> JSONResponse:
    if isinstance(exc, InvalidInput):
        return _json(422, exc.message, exc.errors)
    if isinstance(exc, Rejected):
        return _json(422, exc.message)
    if isinstance(exc, NotFound):
        return _json(404, exc.message)
    if isinstance(exc, Unauthenticated):
        return _json(401, exc.message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, RateLimited):
        return _json(429, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, Unavailable):
        return _json(503, exc.message, headers={"Retry-After": "5"})
    return _json(400, exc.message)


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
_ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "Missing, unknown, revoked or expired credentials",
    404: "No such object for this account",
    413: "The request body is larger than the server accepts",
    431: "The request line and headers are larger than the server accepts, or too many",
    422: "Invalid input (`errors` gives the reasons per field), or a request the rules refuse",
    429: "Too many requests for this account, or the same request repeated too soon",
    503: "The database cannot be reached right now",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error answers, which all have the ``ErrorBody`` shape.

    Declaring 422 also replaces FastAPI's default 422 (``HTTPValidationError``), a shape this API
    never sends: every validation error goes through the handlers below."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]}
        if code in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[code] = response
    return responses


_HTTP_MESSAGES = {
    401: "Unauthenticated.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body too large.",
}


def _is_unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection (or a locked SQLite file), as opposed to a bug in a query."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, OSError):
            return True
        text = str(exc.orig).lower()
        return isinstance(exc, OperationalError) and ("locked" in text or "connect" in text)
    return False


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, INVALID, validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers a body that is not UTF-8 with a bare 400; bodies that are not JSON
            # get a 422 everywhere else, hand-validated or not.
            return _json(422, INVALID, {"body": [NOT_JSON]})
        message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
        return _json(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(Exception)
    async def _other(_request: Request, exc: Exception) -> JSONResponse:
        return exception_response(exc)


def exception_response(exc: Exception) -> JSONResponse:
    """The answer to an exception a handler raised: its domain error, 503 while the database cannot
    be reached, else a logged 500."""
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if _is_unreachable(exc):
        log.warning("dependency_unavailable", error=type(exc).__name__)
        return domain_error_response(Unavailable())
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return _json(500, "Server Error")
