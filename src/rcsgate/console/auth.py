"""Who is signed in to the console: the session cookie, resolved once per request.

Console sessions are separate from API keys and bearer tokens: a cookie (HttpOnly, SameSite=Lax,
Secure when served over TLS) holds a random token whose SHA-256 names the session row
(services/console_users.py). Route handlers take ``CurrentUser`` (or ``Depends(current_user)``);
without a live session a page answers 303 to /console/login?next=…, an htmx request 401 with
``HX-Redirect``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response

from rcsgate.api.context import context_of
from rcsgate.clock import Clock
from rcsgate.config import Settings
from rcsgate.services import console_users
from rcsgate.services.console_users import ConsoleUser, Session
from rcsgate.store.db import Database

__all__ = [
    "LOGIN_PATH",
    "PREFIX",
    "SESSION_COOKIE",
    "ConsoleUser",
    "CurrentUser",
    "LoginRequired",
    "clock_of",
    "current_user",
    "db_of",
    "load_session",
    "login_required",
    "safe_next",
    "set_session_cookie",
    "settings_of",
]

PREFIX = "/console"
LOGIN_PATH = f"{PREFIX}/login"
SESSION_COOKIE = "rcsgate_console"
_UNLOADED = object()


class LoginRequired(Exception):
    """No live session: the app's handler (console/app.py) sends the browser to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url

    @property
    def login_url(self) -> str:
        return f"{LOGIN_PATH}?next={quote(self.next_url, safe='/')}"


def db_of(request: Request) -> Database:
    return context_of(request).db


def clock_of(request: Request) -> Clock:
    return context_of(request).clock


def settings_of(request: Request) -> Settings:
    return context_of(request).settings


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def load_session(request: Request) -> Session | None:
    """The request's live session (looked up once per request), or None."""
    cached = getattr(request.state, "console_session", _UNLOADED)
    if cached is not _UNLOADED:
        return cached  # type: ignore[return-value]
    token = request.cookies.get(SESSION_COOKIE, "")
    session = (
        await console_users.session_for_token(db_of(request), clock_of(request), token) if token else None
    )
    request.state.console_session = session
    if session is not None:
        request.state.console_user = session.user
    return session


async def current_user(request: Request) -> ConsoleUser:
    session = await load_session(request)
    if session is None:
        raise login_required(request)
    return session.user


def login_required(request: Request) -> LoginRequired:
    """Sign in, then come back: to this page, or for a fragment or a form post to the page it came
    from (htmx names it; else the referrer, if it is a console page)."""
    if request.method == "GET" and not is_htmx(request):
        path = request.url.path + ("?" + request.url.query if request.url.query else "")
        return LoginRequired(path)
    came_from = request.headers.get("hx-current-url") or request.headers.get("referer") or ""
    return LoginRequired(safe_next(_path_of(came_from)) if came_from else f"{PREFIX}/")


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
        and not value.startswith(LOGIN_PATH)
    ):
        return value
    return f"{PREFIX}/"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(console_users.SESSION_MAX.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=is_secure(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=is_secure(request)
    )


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]
