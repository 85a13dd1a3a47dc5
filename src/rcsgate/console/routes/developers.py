"""Developers: API keys (create, the key shown once; revoke), the RCS callback URL, the webhook
signing secret (reveal, rotate), the webhook delivery log with redelivery, and a test webhook.

Keys, the callback URL and the secret go through the services the CLI and the API use
(services.auth, services.accounts); the delivery log through services.webhook_log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rcsgate.api.deps import INT64_MAX
from rcsgate.console.auth import CurrentUser, clock_of, db_of, is_htmx, settings_of
from rcsgate.console.templating import render
from rcsgate.domain.errors import InvalidInput, NotFound, Rejected
from rcsgate.services import accounts, auth, webhook_log
from rcsgate.services.console_users import ConsoleUser

router = APIRouter()

PATH = "/console/developers"
ObjectId = Annotated[int, Path(ge=1, le=INT64_MAX)]
NOTICES = {
    "key-revoked": "The key was revoked: it and every token issued from it stop working now.",
    "callback-saved": "The callback URL was saved.",
    "callback-cleared": "The callback URL was cleared: no more webhooks will be sent.",
}
DeliveryStatus = Literal["pending", "delivered", "failed"]


async def _page(
    request: Request,
    user: ConsoleUser,
    *,
    status: str | None = None,
    before: int | None = None,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    db = db_of(request)
    account = await accounts.get_account(db, user.account_id)
    keys = await auth.list_keys(db, account_id=user.account_id)
    deliveries, next_before = await webhook_log.list_deliveries(
        db, account_id=user.account_id, status=status, before_id=before
    )
    context = {
        "account": account,
        "keys": sorted(keys, key=lambda k: (k.revoked_at is not None, -k.id)),
        "deliveries": deliveries,
        "next_before": next_before,
        "status_filter": status or "",
        "before": before,
        "statuses": webhook_log.STATUSES,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "callback_value": account.rcs_callback_url or "",
        **extra,
    }
    return render(request, "developers.html", context, status_code=status_code)


@router.get("/developers")
async def developers_page(
    request: Request,
    user: CurrentUser,
    status: Annotated[DeliveryStatus | Literal[""], Query()] = "",
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> HTMLResponse:
    return await _page(request, user, status=status or None, before=before)


# ------------------------------------------------------------------ API keys


@router.post("/developers/keys")
async def create_key(
    request: Request,
    user: CurrentUser,
    label: Annotated[str, Form(max_length=100)] = "",
    mode: Annotated[Literal["", "live", "test"], Form()] = "",
) -> HTMLResponse:
    new = await auth.create_key(
        db_of(request),
        clock_of(request),
        account_id=user.account_id,
        mode=mode or None,
        label=label.strip() or None,
    )
    # Shown in this answer only: the key is stored hashed.
    return await _page(request, user, new_key=new)


@router.get("/developers/keys/{key_id}/revoke")
async def revoke_key_confirm(request: Request, user: CurrentUser, key_id: ObjectId) -> HTMLResponse:
    key = await _own_key(request, user, key_id)
    return render(request, "developers_revoke.html", {"key": key})


@router.post("/developers/keys/{key_id}/revoke")
async def revoke_key(request: Request, user: CurrentUser, key_id: ObjectId) -> Response:
    await auth.revoke_key(db_of(request), clock_of(request), key_id=key_id, account_id=user.account_id)
    return RedirectResponse(f"{PATH}?notice=key-revoked", status_code=303)


async def _own_key(request: Request, user: ConsoleUser, key_id: int) -> Any:
    for key in await auth.list_keys(db_of(request), account_id=user.account_id):
        if key.id == key_id:
            return key
    raise NotFound(f"API key {key_id} was not found.")


# ------------------------------------------------------------------ callback URL and secret


@router.post("/developers/callback-url")
async def set_callback_url(
    request: Request, user: CurrentUser, callback_url: Annotated[str, Form(max_length=2048)] = ""
) -> Response:
    url = callback_url.strip()
    try:
        await accounts.set_callback_url(
            db_of(request),
            account_id=user.account_id,
            url=url or None,
            allow_private=settings_of(request).webhooks_allow_private,
        )
    except InvalidInput as exc:
        errors = [reason for reasons in exc.errors.values() for reason in reasons]
        return await _page(
            request, user, status_code=422, callback_error=" ".join(errors), callback_value=url
        )
    return RedirectResponse(
        f"{PATH}?notice={'callback-saved' if url else 'callback-cleared'}", status_code=303
    )


@router.post("/developers/webhook-secret/reveal")
async def reveal_secret(request: Request, user: CurrentUser) -> HTMLResponse:
    secret = await accounts.webhook_secret(db_of(request), account_id=user.account_id)
    return await _page(request, user, secret=secret)


@router.post("/developers/webhook-secret/rotate")
async def rotate_secret(request: Request, user: CurrentUser) -> HTMLResponse:
    secret = await accounts.rotate_webhook_secret(db_of(request), account_id=user.account_id)
    return await _page(request, user, secret=secret, secret_rotated=True)


# ------------------------------------------------------------------ webhook deliveries


@router.get("/developers/webhooks/{delivery_id}")
async def delivery_page(request: Request, user: CurrentUser, delivery_id: ObjectId) -> HTMLResponse:
    account = await accounts.get_account(db_of(request), user.account_id)
    delivery = await webhook_log.get_delivery(
        db_of(request), account_id=user.account_id, delivery_id=delivery_id
    )
    return render(request, "developers_delivery.html", {"d": delivery, "account": account})


@router.post("/developers/webhooks/{delivery_id}/redeliver")
async def redeliver(request: Request, user: CurrentUser, delivery_id: ObjectId) -> HTMLResponse:
    db = db_of(request)
    try:
        delivery, attempt = await webhook_log.redeliver(
            db,
            clock_of(request),
            account_id=user.account_id,
            delivery_id=delivery_id,
            allow_private=settings_of(request).webhooks_allow_private,
        )
    except Rejected as exc:
        if is_htmx(request):
            raise
        return await _page(request, user, status_code=409, attempt_error=exc.message)
    if is_htmx(request):
        account = await accounts.get_account(db, user.account_id)
        return render(request, "_delivery_row.html", {"d": delivery, "account": account, "attempt": attempt})
    return await _page(request, user, attempt=attempt, attempt_what=f"Redelivery of #{delivery.id}")


@router.post("/developers/webhooks/test")
async def send_test(request: Request, user: CurrentUser) -> HTMLResponse:
    try:
        attempt = await webhook_log.send_test(
            db_of(request),
            clock_of(request),
            account_id=user.account_id,
            allow_private=settings_of(request).webhooks_allow_private,
        )
    except Rejected as exc:
        if is_htmx(request):
            return render(request, "_attempt.html", {"attempt": None, "attempt_error": exc.message})
        return await _page(request, user, status_code=409, attempt_error=exc.message)
    if is_htmx(request):
        return render(request, "_attempt.html", {"attempt": attempt, "attempt_what": "Test webhook"})
    return await _page(request, user, attempt=attempt, attempt_what="Test webhook")
