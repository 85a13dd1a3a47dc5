"""Sign-in and sign-out: /console/login (a plain HTML form) and /console/logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from rcsgate.console.auth import (
    LOGIN_PATH,
    SESSION_COOKIE,
    clear_session_cookie,
    clock_of,
    db_of,
    load_session,
    safe_next,
    set_session_cookie,
)
from rcsgate.console.csrf import LOGIN_CSRF_COOKIE
from rcsgate.console.templating import render
from rcsgate.domain.errors import RateLimited, Unauthenticated
from rcsgate.services import console_users

router = APIRouter()


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    if await load_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "email": "", "error": None})


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=300)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    db, clock = db_of(request), clock_of(request)
    client = request.client.host if request.client else None
    try:
        session = await console_users.sign_in(db, clock, email=email, password=password, client=client)
    except RateLimited as exc:
        response = render(
            request,
            "login.html",
            {"next": safe_next(next), "email": email, "error": exc.message},
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthenticated as exc:
        return render(
            request,
            "login.html",
            {"next": safe_next(next), "email": email, "error": exc.message},
            status_code=401,
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await console_users.sign_out(db, old)
    redirect = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, redirect, session.token)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await console_users.sign_out(db_of(request), token)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    clear_session_cookie(request, response)
    return response
