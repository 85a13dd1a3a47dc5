"""The campaigns screen: the list with progress, the editor (recipients from contact lists, a CSV file
or pasted numbers; text, card or carousel content with a live phone preview; SMS alternative,
validity, schedule; the cost estimate against the balance), a campaign's statistics with a funnel,
stop and resume. Campaigns are created, stopped and resumed by ``services.campaigns``, after the
API's own request validation (``console/campaign_form.py``)."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from rcsgate.api.context import context_of
from rcsgate.api.deps import INT64_MAX
from rcsgate.console import campaign_form
from rcsgate.console.auth import CurrentUser, clock_of, db_of, settings_of
from rcsgate.console.campaign_form import CampaignForm, CardForm
from rcsgate.console.templating import render
from rcsgate.domain.campaign_acceptance import REFUSAL_REASONS
from rcsgate.domain.campaign_stats import NOT_RCS_USER
from rcsgate.domain.errors import InvalidInput, RateLimited, Rejected
from rcsgate.domain.records import Principal
from rcsgate.services import campaign_estimate, campaigns, contact_book, senders
from rcsgate.services.accounts import get_account
from rcsgate.services.campaigns import STOPPABLE, CampaignView
from rcsgate.services.repeats import RequestKey
from rcsgate.store.signals import CAMPAIGNS, DUE

router = APIRouter()

CampaignId = Annotated[int, Path(ge=1, le=INT64_MAX)]
PAGE_SIZE = 30
# While a campaign is in one of these, its page and its row in the list poll for progress.
RUNNING = ("creation", "scheduled", "sending")
# RCS statuses of messages the upstream has taken.
HANDED = ("sent", "delivered", "read", "undelivered", NOT_RCS_USER, "unknown")
PENDING = ("scheduled", "moderation", "accepted", "sending")


# ------------------------------------------------------------------ progress


def progress_of(view: CampaignView) -> dict[str, Any]:
    """How far a campaign is: RCS messages still waiting, handed to the upstream, delivered, failed."""
    rcs = view.rcs_counts
    total = rcs.total or view.total_phones
    pending = sum(rcs.count(s) for s in PENDING)
    delivered = rcs.delivered
    failed = rcs.count("failed") + rcs.count("expired") + rcs.count("undelivered") + rcs.count(NOT_RCS_USER)
    handed = total - pending - rcs.count("failed")
    done = total - pending
    return {
        "total": total,
        "pending": pending,
        "done": done,
        "delivered": delivered,
        "failed": failed,
        "handed": max(0, handed),
        "ratio": done / total if total else 0.0,
        "parts": [
            ("delivered", delivered, "#22c55e"),
            ("sent", rcs.count("sent") + rcs.count("unknown"), "#3b82f6"),
            ("failed", failed, "#ef4444"),
        ],
        "running": view.status in RUNNING,
    }


# ------------------------------------------------------------------ list


@router.get("/campaigns")
async def campaigns_page(
    request: Request,
    user: CurrentUser,
    search: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    views, total = await campaigns.list_campaigns(
        db_of(request),
        account_id=user.account_id,
        created_from=None,
        created_to=None,
        message_type=None,
        search_field="taskname" if search else None,
        search_value=search or None,
        sort="id",
        descending=True,
        offset=offset,
        limit=PAGE_SIZE,
    )
    rows = [(v, progress_of(v)) for v in views]
    context = {"rows": rows, "total": total, "offset": offset, "limit": PAGE_SIZE, "search": search}
    return render(request, "campaigns/list.html", context)


# ------------------------------------------------------------------ editor


async def _editor_context(request: Request, user: Any, form: CampaignForm) -> dict[str, Any]:
    db = db_of(request)
    agents = [a for a in await senders.list_agents(db, account_id=user.account_id) if a.status == "active"]
    sms_senders = [
        s for s in await senders.list_senders(db, account_id=user.account_id) if s.status == "active"
    ]
    groups = await contact_book.list_groups(db, account_id=user.account_id, offset=0, limit=500)
    account = await get_account(db, user.account_id)
    return {
        "form": form,
        "agents": agents,
        "sms_senders": sms_senders,
        "groups": groups.items,
        "account": account,
        "max_cards": settings_of(request).max_cards,
        "errors": {},
        "estimate": None,
        "content": None,
        "problems": {},
    }


def _new_form() -> CampaignForm:
    return CampaignForm(cards=[CardForm(), CardForm()], request_token=secrets.token_urlsafe(16))


@router.get("/campaigns/new")
async def new_campaign_page(request: Request, user: CurrentUser) -> HTMLResponse:
    form = _new_form()
    context = await _editor_context(request, user, form)
    if not form.sender and context["agents"]:
        form.sender = context["agents"][0].name
    if context["sms_senders"]:
        form.sms_sender = next(
            (s.name for s in context["sms_senders"] if s.is_default), context["sms_senders"][0].name
        )
    return render(request, "campaigns/new.html", context)


async def _read_form(request: Request) -> tuple[CampaignForm, dict[str, list[str]]]:
    """The submitted form, and the error of its CSV file (too large, not text) if any: the form is
    kept as typed either way."""
    data: FormData = await request.form()
    form = CampaignForm.read(data, data.getlist, max_cards=settings_of(request).max_cards)
    errors: dict[str, list[str]] = {}
    upload = data.get("csv_file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(campaign_form.CSV_MAX_BYTES + 1)
        if raw:
            form.source = "csv"
            try:
                form.csv_data = campaign_form.decode_upload(raw)
                form.csv_name = upload.filename[:200]
            except InvalidInput as exc:
                errors = {"recipients": [r for reasons in exc.errors.values() for r in reasons]}
    if not form.request_token:
        form.request_token = secrets.token_urlsafe(16)
    return form, errors


@router.post("/campaigns/preview")
async def preview(request: Request, user: CurrentUser) -> HTMLResponse:
    """The phone preview of the editor's content (an htmx fragment), as the message page will show it."""
    form, _ = await _read_form(request)  # (the preview shows the content only)
    content, problems = campaign_form.parse_content(form, max_cards=settings_of(request).max_cards)
    return render(
        request,
        "campaigns/_preview.html",
        {"content": content or form.options(), "sender": form.sender, "problems": problems},
    )


@router.post("/campaigns/new")
async def new_campaign(request: Request, user: CurrentUser) -> Response:
    db, settings = db_of(request), settings_of(request)
    form, upload_errors = await _read_form(request)
    data = await request.form()
    action = str(data.get("action") or "review")
    context = await _editor_context(request, user, form)
    content, problems = campaign_form.parse_content(form, max_cards=settings.max_cards)
    context.update(content=content or form.options(), problems=problems)
    if upload_errors:
        context["errors"] = upload_errors
        return render(request, "campaigns/new.html", context, status_code=422)
    if action == "add_card":
        if len(form.cards) < settings.max_cards:
            form.cards.append(CardForm())
        form.kind = "carousel"
        return render(request, "campaigns/new.html", context)
    if action.startswith("remove_card_"):
        index = action.removeprefix("remove_card_")
        if index.isdigit() and int(index) < len(form.cards) and len(form.cards) > 1:
            del form.cards[int(index)]
        content, problems = campaign_form.parse_content(form, max_cards=settings.max_cards)
        context.update(content=content or form.options(), problems=problems)
        return render(request, "campaigns/new.html", context)
    recipients = form.recipients()
    try:
        parsed, body = campaign_form.parse_send(
            form,
            recipients,
            max_cards=settings.max_cards,
            allow_private_callbacks=settings.webhooks_allow_private,
        )
        send = parsed.to_domain()
        principal = Principal(account_id=user.account_id, key_id=0, mode=context["account"].mode)
        if action != "send":
            context["estimate"] = await campaign_estimate.estimate_campaign(
                db, clock_of(request), principal=principal, send=send
            )
            context["reviewed"] = True
            return render(request, "campaigns/new.html", context)
        view = await campaigns.create_campaign(
            db,
            clock_of(request),
            principal=principal,
            send=send,
            key=_request_key(body, form.request_token),
            duplicate_window=settings.duplicate_window_seconds,
        )
    except InvalidInput as exc:
        # The service's errors name recipients by position: tell them by line (or row), as the form's own.
        context["errors"] = _form_errors(campaign_form.with_lines(exc.errors, recipients))
        return render(request, "campaigns/new.html", context, status_code=422)
    except (Rejected, RateLimited) as exc:
        context["errors"] = {"form": [exc.message]}
        return render(request, "campaigns/new.html", context, status_code=422)
    context_of(request).signals.poke(CAMPAIGNS)
    return RedirectResponse(f"/console/campaigns/{view.id}", status_code=303)


def _request_key(body: dict[str, Any], token: str) -> RequestKey:
    """The console's form token is the request's Idempotency-Key: a form sent twice makes one campaign."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"/console/campaigns/new\n{canonical}".encode()).hexdigest()
    return RequestKey(body_hash=digest, idempotency_key=f"console:{token}"[:255])


_FIELD_NAMES = {
    "sender": "sender",
    "options": "content",
    "options.text": "text",
    "validity": "validity_hours",
    "start_at": "start_at",
    "callback_url": "callback_url",
    "alternative_channel.sms.text": "sms_text",
    "alternative_channel.sms.sender": "sms_sender",
    "alternative_channel.sms.validity": "sms_validity_hours",
    "phones": "recipients",
    "groups": "recipients",
}


def _form_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The API's error keys as the editor's fields (cards: ``card_0``; lists: ``recipients``)."""
    out: dict[str, list[str]] = {}
    for key, reasons in errors.items():
        name = _FIELD_NAMES.get(key)
        if name is None and key.startswith("options.cards."):
            index = key.split(".")[2]
            name = f"card_{index}" if index.isdigit() else "content"
        if name is None and key.startswith("groups."):
            name = "recipients"
        if name is None and key == "Idempotency-Key":
            name, reasons = "form", ["This form was already used to make a campaign. Open a new one."]
        out.setdefault(name or "form", []).extend(reasons)
    return out


# ------------------------------------------------------------------ one campaign


async def _campaign(
    request: Request, account_id: int, campaign_id: int
) -> tuple[CampaignView, dict[str, int]]:
    """The campaign (NotFound for another account's, as the API answers) and its failures by reason."""
    db = db_of(request)
    view = await campaigns.get_campaign(db, account_id=account_id, campaign_id=campaign_id, with_total=True)
    return view, await campaigns.failure_reasons(db, account_id=account_id, campaign_id=campaign_id)


def _detail_context(view: CampaignView, reasons: dict[str, int]) -> dict[str, Any]:
    refused = sum(reasons.get(f"rcs:{r}", 0) for r in REFUSAL_REASONS)
    rcs = view.rcs_counts
    steps = [
        ("Recipients", float(view.total_phones)),
        ("Accepted", float(rcs.total - refused)),
        ("Sent", float(sum(rcs.count(s) for s in HANDED))),
        ("Delivered", float(rcs.delivered)),
        ("Read", float(rcs.count("read"))),
    ]
    return {
        "c": view,
        "progress": progress_of(view),
        "steps": steps,
        "reasons": sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        "rcs_detail": [(s, n) for s, n in rcs.detail().items() if n],
        "sms_detail": [(s, n) for s, n in view.sms_counts.detail().items() if n],
        "stoppable": view.status in STOPPABLE,
        "resumable": view.status == "paused",
    }


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, user: CurrentUser, campaign_id: CampaignId) -> HTMLResponse:
    view, reasons = await _campaign(request, user.account_id, campaign_id)
    return render(request, "campaigns/detail.html", _detail_context(view, reasons))


@router.get("/campaigns/{campaign_id}/progress")
async def campaign_progress(request: Request, user: CurrentUser, campaign_id: CampaignId) -> HTMLResponse:
    """The polled part of a campaign's page (``row=1``: of its row in the list); without its polling
    trigger once the campaign no longer runs, which ends the polling."""
    view, reasons = await _campaign(request, user.account_id, campaign_id)
    template = "campaigns/_row.html" if request.query_params.get("row") else "campaigns/_live.html"
    return render(request, template, {**_detail_context(view, reasons), "p": progress_of(view)})


async def _control(request: Request, user: Any, campaign_id: int, action: str) -> Response:
    db, clock = db_of(request), clock_of(request)
    try:
        if action == "stop":
            await campaigns.stop_campaign(db, clock, account_id=user.account_id, campaign_id=campaign_id)
            context_of(request).signals.poke(CAMPAIGNS)
        else:
            await campaigns.resume_campaign(db, clock, account_id=user.account_id, campaign_id=campaign_id)
            context_of(request).signals.poke(DUE)
    except Rejected as exc:
        view, reasons = await _campaign(request, user.account_id, campaign_id)
        context = {
            **_detail_context(view, reasons),
            "error": f"{exc.message}: the campaign is {view.status}.",
        }
        return render(request, "campaigns/detail.html", context, status_code=422)
    return RedirectResponse(f"/console/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/stop")
async def stop(request: Request, user: CurrentUser, campaign_id: CampaignId) -> Response:
    return await _control(request, user, campaign_id, "stop")


@router.post("/campaigns/{campaign_id}/resume")
async def resume(request: Request, user: CurrentUser, campaign_id: CampaignId) -> Response:
    return await _control(request, user, campaign_id, "resume")
