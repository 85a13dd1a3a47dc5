"""CSRF protection for every console POST (and any other unsafe method).

A signed-in session has its own random token (stored with the session). Forms send it in the
hidden field ``csrf_token``; htmx requests in the ``X-CSRF-Token`` header, which base.html sets for
every htmx request through ``hx-headers`` on <body>. Before sign-in, the login form's token is a
double-submit cookie (``rcsgate_console_csrf``, HttpOnly) that the form repeats. ``mount_console``
applies ``check_csrf`` to every console route, so a screen's POST needs nothing of its own.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from rcsgate.services.console_users import same_token

from .auth import LOGIN_PATH, PREFIX, is_secure, load_session, login_required

LOGIN_CSRF_COOKIE = "rcsgate_console_csrf"
HEADER = "x-csrf-token"
FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfRefused(Exception):
    """The request's CSRF token is missing or wrong: answered 403 (console/app.py)."""


def csrf_token_of(request: Request) -> str:
    """The token a page's forms must send: the session's (``check_csrf``, which every console route
    runs, has loaded it), else the login cookie's, made if missing (``render`` sets the cookie)."""
    session = getattr(request.state, "console_session", None)
    if session is not None:
        return str(session.csrf_token)
    explicit = getattr(request.state, "csrf_token", None)
    if explicit:
        return str(explicit)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.csrf_token = token
    return token


def ensure_login_cookie(request: Request, response: Response) -> None:
    """Set the pre-sign-in CSRF cookie when the page made a new token for its forms."""
    token = getattr(request.state, "csrf_token", None)
    if token and request.cookies.get(LOGIN_CSRF_COOKIE) != token:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=is_secure(request),
        )


async def check_csrf(request: Request) -> None:
    # Loaded for every console request, so that pages (render) know the session's token.
    session = await load_session(request)
    if request.method in _SAFE:
        return
    if session is None and request.url.path != LOGIN_PATH:
        # Signed out meanwhile (expired, or signed out in another tab): sign in again first.
        raise login_required(request)
    expected = session.csrf_token if session is not None else request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = request.headers.get(HEADER)
    if given is None and request.headers.get("content-type", "").startswith(_FORMS):
        value = (await request.form()).get(FIELD)
        given = value if isinstance(value, str) else None
    if not same_token(expected, given):
        raise CsrfRefused()
