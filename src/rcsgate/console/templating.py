"""The console's Jinja environment and ``render``, which every screen answers with.

Templates live in ``templates/`` and extend ``base.html`` (blocks ``title`` and ``content``).
Autoescaping is on for everything, so values never need ``|e``; what is already safe HTML (the SVG
charts of ``svg.py``) is ``Markup``. ``render`` adds to the context:

- ``request``
- ``user``: the signed-in ``ConsoleUser`` (None on the sign-in page)
- ``csrf_token``: the token every form repeats in its hidden ``csrf_token`` field
- ``nav``: the navigation's ``NavItem``s, the current screen's marked ``active``

Filters: ``money`` (10^-7 units → "12.3450000"; ``money_short`` to 2-4 decimals), ``ts`` (a UTC
datetime in a time zone, ``{{ m.created_at|ts(account.timezone) }}``), ``pct`` (a 0-1 ratio →
"42.5%"), ``number`` (thousands separators). Globals: ``static(path)`` (a URL under
/console/static/) and ``svg`` (the chart helpers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rcsgate.domain.money import format_units, from_units
from rcsgate.domain.timefmt import format_ts

from . import svg
from .auth import PREFIX
from .csrf import FIELD, csrf_token_of, ensure_login_cookie

TEMPLATES = Path(__file__).parent / "templates"
STATIC_URL = f"{PREFIX}/static"
# Pages show an account's data: never cached (the back button after signing out shows nothing), never
# framed by another site (clickjacking), and links out carry no console URL.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    href: str
    active: bool = False


NAV: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "Dashboard", f"{PREFIX}/"),
    ("messages", "Messages", f"{PREFIX}/messages"),
    ("campaigns", "Campaigns", f"{PREFIX}/campaigns"),
    ("contacts", "Contacts", f"{PREFIX}/contacts"),
    ("stoplist", "Stop list", f"{PREFIX}/stop-list"),
    ("developers", "Developers", f"{PREFIX}/developers"),
    ("billing", "Billing", f"{PREFIX}/billing"),
)


def nav_for(path: str) -> list[NavItem]:
    items = []
    for key, label, href in NAV:
        active = path == href if href.endswith("/") else path == href or path.startswith(href + "/")
        items.append(NavItem(key, label, href, active))
    return items


def _money(units: int | None) -> str:
    return "" if units is None else format_units(units)


def _money_short(units: int | Decimal | None, places: int = 2) -> str:
    if units is None:
        return ""
    value = units if isinstance(units, Decimal) else from_units(units)
    text = f"{value:,.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(places, '0')}"


def _ts(moment: datetime | None, tz: str = "UTC") -> str:
    return format_ts(moment, tz) or ""


def _pct(ratio: float | None, places: int = 1) -> str:
    return "\u2013" if ratio is None else f"{ratio * 100:.{places}f}%"


def _number(value: int | float | None) -> str:
    return "" if value is None else f"{value:,}"


def _static(path: str) -> str:
    return f"{STATIC_URL}/{path.lstrip('/')}"


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
env.filters.update(money=_money, money_short=_money_short, ts=_ts, pct=_pct, number=_number)
env.globals.update(static=_static, svg=svg, csrf_field_name=FIELD, console_prefix=PREFIX)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` as the answer to ``request`` (a whole page, or an htmx fragment)."""
    values: dict[str, Any] = {
        "request": request,
        "user": getattr(request.state, "console_user", None),
        "csrf_token": csrf_token_of(request),
        "nav": nav_for(request.url.path),
    }
    values.update(context or {})
    response = HTMLResponse(
        env.get_template(template).render(values), status_code=status_code, headers=SECURITY_HEADERS
    )
    ensure_login_cookie(request, response)
    return response
