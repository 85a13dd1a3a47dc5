"""Mounts the console on the API's FastAPI app: its screens under /console, its assets (our CSS,
vendored htmx) under /console/static, and HTML error pages for console routes."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rcsgate.domain.errors import DomainError, InvalidInput, NotFound, RateLimited, Unavailable
from rcsgate.logging_setup import get_logger

from .auth import PREFIX, LoginRequired, is_htmx, load_session
from .csrf import CsrfRefused, check_csrf
from .routes import billing, campaigns, contacts, dashboard, developers, login, messages, stoplist
from .templating import STATIC_URL, render

STATIC_DIR = Path(__file__).parent / "static"
SCREENS = (login, dashboard, messages, campaigns, contacts, stoplist, developers, billing)

log = get_logger("rcsgate.console")

Handler = Callable[[Request, Any], Awaitable[Response]]


def mount_console(app: FastAPI) -> None:
    """Add the console to ``app`` (after the API's error handlers are installed)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="console-static")
    # Every console route checks the CSRF token of unsafe requests (and loads the session once).
    router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(check_csrf)])
    for screen in SCREENS:
        router.include_router(screen.router)
    app.include_router(router)

    @app.get(PREFIX, include_in_schema=False)
    async def _console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    _html_errors(app)


def _is_console(request: Request) -> bool:
    path = request.url.path
    return (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(STATIC_URL + "/")


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": exc.login_url})
    return RedirectResponse(exc.login_url, status_code=303)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return error_page(request, 403, "Forbidden", message)


def error_page(request: Request, status: int, title: str, message: str, **extra: Any) -> Response:
    context = {"status": status, "title": title, "message": message, **extra}
    template = "_error.html" if is_htmx(request) else "error.html"
    response = render(request, template, context, status_code=status)
    if is_htmx(request):
        # htmx swaps nothing on an error answer by default: show it in the page's error slot.
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _domain_page(request: Request, exc: DomainError) -> Response:
    if isinstance(exc, NotFound):
        return error_page(request, 404, "Not found", "There is no such page or object in your account.")
    if isinstance(exc, InvalidInput):
        return error_page(request, 422, "Invalid input", exc.message, errors=exc.errors)
    if isinstance(exc, RateLimited):
        response = error_page(request, 429, "Too many requests", exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Unavailable):
        return error_page(request, 503, "Unavailable", exc.message)
    return error_page(request, 422, "Refused", exc.message)


async def _signed_in(request: Request) -> None:
    """Load the session (if any) for the error page's navigation: a path no route matched never ran
    the console's dependencies."""
    with contextlib.suppress(Exception):
        await load_session(request)


def _html_errors(app: FastAPI) -> None:
    """Console routes answer errors with HTML pages; every other route keeps the API's JSON."""

    def wrap(kind: type[Exception] | int, page: Callable[[Request, Any], Response]) -> None:
        original: Handler | None = app.exception_handlers.get(kind)  # type: ignore[assignment]

        async def handler(request: Request, exc: Any) -> Response:
            if _is_console(request):
                try:
                    await _signed_in(request)
                    return page(request, exc)
                except Exception:  # an error page that cannot render falls back to the API's answer
                    log.exception("console_error_page_failed")
            if original is None:
                raise exc
            return await original(request, exc)

        app.add_exception_handler(kind, handler)

    def http_page(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 413: "Too large"}
        return error_page(request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))

    def validation_page(request: Request, exc: RequestValidationError) -> Response:
        fields: dict[str, list[str]] = {}
        for error in exc.errors():
            name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "input"
            fields.setdefault(name, []).append(str(error.get("msg", "invalid")))
        return error_page(request, 422, "Invalid input", "The form has invalid values.", errors=fields)

    wrap(DomainError, _domain_page)
    wrap(StarletteHTTPException, http_page)
    wrap(RequestValidationError, validation_page)
    for kind in (DBAPIError, OSError, Exception):
        _wrap_server_error(app, kind)


def _wrap_server_error(app: FastAPI, kind: type[Exception]) -> None:
    """Unexpected errors: the API's handler logs them and tells a lost database (503) from a bug
    (500); a console request gets that status as a page."""
    original: Handler | None = app.exception_handlers.get(kind)  # type: ignore[assignment]
    if original is None:
        return

    async def handler(request: Request, exc: Any) -> Response:
        response = await original(request, exc)
        if not _is_console(request):
            return response
        try:
            if response.status_code == 503:
                return error_page(request, 503, "Unavailable", "The database cannot be reached right now.")
            return error_page(
                request, response.status_code, "Server error", "Something went wrong on our side."
            )
        except Exception:
            log.exception("console_error_page_failed")
            return response

    app.add_exception_handler(kind, handler)
