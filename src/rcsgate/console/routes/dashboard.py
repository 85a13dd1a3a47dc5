"""The dashboard: balance, today's and the last 7 days' messages by status, delivery and read rates,
the SMS-fallback share, and running campaigns with live progress (htmx polls a fragment every 2 s
while the tab is visible, and stops once no campaign is running)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rcsgate.console import svg
from rcsgate.console.auth import CurrentUser, clock_of, db_of, is_htmx
from rcsgate.console.templating import render
from rcsgate.domain.message_states import STATUSES
from rcsgate.services import dashboard

router = APIRouter()

# htmx stops polling an element when its answer is 286.
STOP_POLLING = 286


def _charts(view: dashboard.Overview) -> dict[str, Any]:
    labels = [d.label for d in view.days]
    week = view.week
    series = [
        svg.Series(status, [d.counts.by_status.get(status, 0) for d in view.days], svg.status_color(status))
        for status in STATUSES
        if week.by_status.get(status)
    ]
    rates = [
        # A day without messages has no rate: a gap in its line, not a zero.
        svg.Series("delivery rate", [d.counts.delivery_rate for d in view.days], "#16a34a"),
        svg.Series("read rate", [d.counts.read_rate for d in view.days], "#2563eb"),
        svg.Series("SMS fallback", [d.counts.fallback_share for d in view.days], "#f97316"),
    ]
    today = view.today.statuses()
    return {
        "week_chart": svg.stacked_bar_chart(labels, series, title="Messages per day and status, last 7 days"),
        "rates_chart": svg.line_chart(
            labels,
            rates,
            title="Delivery rate, read rate and SMS fallback share per day",
            percent=True,
            width=1000,
            height=220,
        ),
        "today_chart": svg.bar_chart(
            today,
            title="Today's messages by status",
            height=150,
            colors=[svg.status_color(status) for status, _ in today],
        )
        if today
        else None,
    }


@router.get("/")
async def dashboard_page(request: Request, user: CurrentUser) -> HTMLResponse:
    view = await dashboard.overview(db_of(request), account_id=user.account_id, now=clock_of(request).now())
    return render(
        request,
        "dashboard.html",
        {"view": view, "account": view.account, "running": view.running, **_charts(view)},
    )


@router.get("/dashboard/campaigns")
async def running_campaigns(request: Request, user: CurrentUser) -> HTMLResponse:
    running = await dashboard.running_campaigns(db_of(request), account_id=user.account_id)
    # Polled by htmx: once nothing runs, the answer (286) tells it to stop.
    status = STOP_POLLING if is_htmx(request) and not running else 200
    return render(
        request, "_running_campaigns.html", {"running": running, "polling": bool(running)}, status_code=status
    )
