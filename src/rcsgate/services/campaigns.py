"""RCS campaigns: accept (one bulk write), start on time, pause when funds run out, resume, stop,
and report. The dispatcher sends campaign messages like single ones, after single sends."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.campaign_acceptance import AcceptanceTerms, judge
from rcsgate.domain.campaign_stats import ChannelCounts, split_counts
from rcsgate.domain.errors import InvalidInput, NotFound, Rejected
from rcsgate.domain.message_view import FAILURE_STATUSES
from rcsgate.domain.phones import country_of
from rcsgate.domain.rcs_content import (
    CAMPAIGN_PHONES_MAX,
    RcsCampaignSend,
    RcsGroupsCampaignSend,
    Recipient,
    check_start_at,
    start_at_utc,
)
from rcsgate.domain.records import Account, Principal, RcsAgent
from rcsgate.domain.sms_segments import count_segments
from rcsgate.domain.timefmt import format_ts
from rcsgate.metrics.instruments import Tally
from rcsgate.services import contacts
from rcsgate.services.lifecycle import SmsPlan, transition, unit_of_work
from rcsgate.services.repeats import RequestKey, earlier_answer, remember
from rcsgate.services.sending import agent_for, content_json, tariff_for
from rcsgate.store import accounts as account_store
from rcsgate.store import campaigns as store
from rcsgate.store import pipeline
from rcsgate.store import tariffs as tariff_store
from rcsgate.store.db import Database, after_commit
from rcsgate.store.tables import campaigns, messages

CAMPAIGN_PRIORITY = 1  # after single sends (0)
STOPPABLE = ("scheduled", "sending", "paused", "moderation")


@dataclass(frozen=True, slots=True)
class CampaignView:
    id: int
    name: str
    sender: str
    status: str
    message_type: str
    start_at: datetime | None
    real_start_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    calculated_price_units: int
    currency: str
    timezone: str
    rcs: dict[str, int]
    sms: dict[str, int]
    total_phones: int = 0
    total_price_units: int = 0

    @property
    def rcs_counts(self) -> ChannelCounts:
        return ChannelCounts(self.rcs)

    @property
    def sms_counts(self) -> ChannelCounts:
        return ChannelCounts(self.sms)

    @property
    def started(self) -> bool:
        # The page: "When creating a campaign, it is always = 0": a campaign that has not started has sent nothing.
        return self.status not in ("creation", "scheduled")

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("start_at", "real_start_at", "finished_at", "created_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> CampaignView:
        data = json.loads(text)
        for key in ("start_at", "real_start_at", "finished_at", "created_at"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] else None
        return cls(**data)


def campaign_name(created_at: datetime, tz: str) -> str:
    return f"RCS api campaign / {format_ts(created_at, tz)}"


# ---------------------------------------------------------------- accepting


@dataclass(frozen=True, slots=True)
class CampaignRecipients:
    items: tuple[Recipient, ...]
    countries: tuple[str | None, ...]  # country_of each item's number

    @property
    def phones(self) -> list[str]:
        return [r.number for r in self.items]


async def _resolve_groups(db: Database, account_id: int, group_ids: tuple[int, ...]) -> tuple[Recipient, ...]:
    async with db.read() as conn:
        owned = await store.owned_groups(conn, account_id, list(group_ids))
        missing = [i for i, g in enumerate(group_ids) if g not in owned]
        if missing:
            raise InvalidInput({f"groups.{i}": [f"The selected groups.{i} is invalid."] for i in missing})
        phones = await store.group_phones(conn, account_id, list(group_ids))
    return tuple(Recipient(number=p) for p in phones)


async def recipients_of(
    db: Database, account_id: int, send: RcsCampaignSend | RcsGroupsCampaignSend
) -> CampaignRecipients:
    """The campaign's recipients (a groups campaign's from the account's own lists) with their
    countries; InvalidInput for none, too many, or another account's list."""
    if isinstance(send, RcsGroupsCampaignSend):
        items = await _resolve_groups(db, account_id, send.group_ids)
        field = "groups"
    else:
        items = send.recipients
        field = "phones"
    if not items:
        raise InvalidInput.field(field, f"The {field} contain no recipients.")
    if len(items) > CAMPAIGN_PHONES_MAX:
        raise InvalidInput.field(
            field,
            f"A campaign may have at most {CAMPAIGN_PHONES_MAX} recipients; these {field} have {len(items)}.",
        )
    # Country lookup of a few thousand numbers is CPU work: keep it off the event loop.
    countries = await asyncio.to_thread(lambda: tuple(country_of(r.number) for r in items))
    return CampaignRecipients(items=items, countries=countries)


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What a campaign request passed: its agent, tariff and start, and the terms its recipients
    are judged by (``domain.campaign_acceptance.judge``)."""

    agent: RcsAgent
    tariff_id: int
    start_at: datetime | None  # UTC; None: start now
    terms: AcceptanceTerms


async def check_request(
    conn: AsyncConnection,
    account: Account,
    *,
    principal: Principal,
    send: RcsCampaignSend | RcsGroupsCampaignSend,
    recipients: CampaignRecipients,
    now: datetime,
) -> Acceptance:
    """The checks of the whole request, in this order: start time, sender, tariff, reference ids
    (InvalidInput or Rejected); then what the recipients are judged by. Shared by create_campaign
    and the console's estimate (services.campaign_estimate), so both refuse the same requests."""
    # A start_at without an offset is a wall time where the account is, as every time it is shown.
    start_at = start_at_utc(send.start_at, account.timezone) if send.start_at is not None else None
    if send.start_at is not None and (reason := check_start_at(send.start_at, now, account.timezone)):
        raise InvalidInput.field("start_at", reason)
    test_mode = principal.mode == "test" or account.mode == "test"
    agent = await agent_for(conn, account, send.sender, test_mode, send.content)
    tariff_id = await tariff_for(conn, account.id, send.tariff_code)
    await _check_references(conn, account.id, recipients.items)
    phones = recipients.phones
    alt = send.sms_alternative
    terms = AcceptanceTerms(
        agent_country=agent.country,
        rcs_prices=await tariff_store.country_prices(conn, tariff_id, "rcs", send.content.kind),
        sms_prices=await tariff_store.country_prices(conn, tariff_id, "sms", "sms") if alt else None,
        sms_parts=count_segments(alt.text).parts if alt else 0,
        stop_listed=(
            await store.stop_listed(conn, account.id, phones, "rcs") if send.check_stop_list else set()
        ),
        verified=await store.verified_phones(conn, account.id, phones) if test_mode else None,
    )
    return Acceptance(agent=agent, tariff_id=tariff_id, start_at=start_at, terms=terms)


async def create_campaign(
    db: Database,
    clock: Clock,
    *,
    principal: Principal,
    send: RcsCampaignSend | RcsGroupsCampaignSend,
    key: RequestKey,
    duplicate_window: float,
) -> CampaignView:
    recipients = await recipients_of(db, principal.account_id, send)
    phones = recipients.phones
    async with db.write(bulk=True) as conn:
        now = clock.now()
        account = await account_store.get_account(conn, principal.account_id, for_update=not db.is_sqlite)
        assert account is not None
        replayed = await earlier_answer(
            conn, account_id=account.id, key=key, now=now, window=duplicate_window
        )
        if replayed is not None:
            return CampaignView.from_json(replayed)
        accepted = await check_request(
            conn, account, principal=principal, send=send, recipients=recipients, now=now
        )
        agent, tariff_id, start_at, terms = (
            accepted.agent,
            accepted.tariff_id,
            accepted.start_at,
            accepted.terms,
        )
        kind = send.content.kind
        scheduled = start_at is not None
        campaign_id = await store.insert_campaign(
            conn,
            account_id=account.id,
            name=campaign_name(now, account.timezone),
            sender=agent.name,
            agent_id=agent.id,
            status="scheduled" if scheduled else "creation",
            kind=kind,
            tariff_id=tariff_id,
            total_phones=len(phones),
            has_sms_alternative=send.sms_alternative is not None,
            start_at=start_at,
            created_at=now,
        )
        content = json.dumps(content_json(send.content))
        rows: list[dict[str, Any]] = []
        calculated = 0
        alt = send.sms_alternative
        for recipient, country in zip(recipients.items, recipients.countries, strict=True):
            verdict = judge(recipient.number, country, terms)
            plan = None
            if alt is not None and verdict.sms_unit_price is not None:
                plan = SmsPlan(
                    sender=alt.sender,
                    text=alt.text,
                    validity_seconds=alt.validity_seconds,
                    check_stop_list=alt.check_stop_list,
                    parts=terms.sms_parts,
                    unit_price=verdict.sms_unit_price,
                )
            calculated += verdict.price
            rows.append(
                {
                    "reference_id": recipient.reference_id,
                    "phone": recipient.number,
                    "country": country,
                    "sms_alternative": plan.to_json() if plan else None,
                    "status": "failed" if verdict.reason else ("scheduled" if scheduled else "accepted"),
                    "fail_reason": verdict.reason,
                    "price": verdict.price,
                    "finished_at": now if verdict.reason else None,
                }
            )
        # What every message of the campaign shares is passed once, not 5000 times.
        shared = {
            "account_id": account.id,
            "campaign_id": campaign_id,
            "parent_id": None,
            "type": "rcs",
            "source": "rest",
            "sender": agent.name,
            "agent_id": agent.id,
            "kind": kind,
            "content": content,
            "parts": None,
            "validity_seconds": send.validity_seconds,
            # Validity runs from the start; a scheduled campaign moves it when it starts.
            "expires_at": (start_at or now) + timedelta(seconds=send.validity_seconds),
            "callback_url": send.callback_url,
            "check_stop_list": send.check_stop_list,
            "tariff_id": tariff_id,
            "reserved": 0,
            "charged": 0,
            "priority": CAMPAIGN_PRIORITY,
            "due_at": None,
            "attempts": 0,
            "created_at": now,
        }
        await store.insert_messages(conn, rows, shared)
        tally = Tally()
        tally.stored("rcs", "campaign", len(rows))
        failed = sum(1 for row in rows if row["status"] == "failed")
        if failed:
            tally.moved("rcs", None, "failed", failed)  # refused at once: counted as entering failed
        after_commit(tally.publish)
        for status in ("scheduled", "accepted", "failed"):
            await store.record_events_for(
                conn, campaign_id=campaign_id, status=status, from_status=None, at=now, detail=None
            )
        await conn.execute(
            campaigns.update().where(campaigns.c.id == campaign_id).values(calculated_price=calculated)
        )
        if send.add_to_contact_book:
            await contacts.add_missing(conn, account_id=account.id, phones=phones, now=now)
        view = await _view(conn, campaign_id, account.currency, account.timezone)
        await remember(conn, account_id=account.id, key=key, answer=view.to_json(), now=now)
        return view


async def _check_references(conn: AsyncConnection, account_id: int, items: tuple[Recipient, ...]) -> None:
    refs = {r.reference_id: i for i, r in enumerate(items) if r.reference_id}
    if not refs:
        return
    taken = await store.taken_references(conn, account_id, list(refs))
    if taken:
        raise InvalidInput(
            {
                f"phones.{refs[t]}.reference_id": [
                    f"The phones.{refs[t]}.reference id has already been taken."
                ]
                for t in taken
            }
        )


# ---------------------------------------------------------------- reading


async def _view(conn: Any, campaign_id: int, currency: str, tz: str) -> CampaignView:
    row = await store.get(conn, campaign_id)
    assert row is not None
    counts = (await store.status_counts(conn, [campaign_id])).get(campaign_id, [])
    return _make_view(row, counts, currency, tz)


def _make_view(
    row: Any, counts: list[tuple[str, str, str | None, int]], currency: str, tz: str
) -> CampaignView:
    rcs, sms = split_counts(counts)
    return CampaignView(
        id=row.id,
        name=row.name,
        sender=row.sender,
        status=row.status,
        message_type=row.message_type,
        start_at=row.start_at,
        real_start_at=row.real_start_at,
        finished_at=row.finished_at,
        created_at=row.created_at,
        calculated_price_units=row.calculated_price,
        currency=currency,
        timezone=tz,
        rcs=dict(rcs.by_status),
        sms=dict(sms.by_status),
        total_phones=row.total_phones,
    )


async def get_campaign(
    db: Database, *, account_id: int, campaign_id: int, with_total: bool = False
) -> CampaignView:
    async with db.read() as conn:
        return await _read_campaign(
            conn, account_id=account_id, campaign_id=campaign_id, with_total=with_total
        )


async def _read_campaign(
    conn: AsyncConnection, *, account_id: int, campaign_id: int, with_total: bool = False
) -> CampaignView:
    account = await account_store.get_account(conn, account_id)
    row = await store.get(conn, campaign_id, account_id=account_id)
    if account is None or row is None:
        raise NotFound("Campaign was not found.")
    counts = (await store.status_counts(conn, [campaign_id])).get(campaign_id, [])
    view = _make_view(row, counts, account.currency, account.timezone)
    if with_total:
        view = CampaignView(
            **{**asdict(view), "total_price_units": await store.total_charged(conn, campaign_id)}
        )
    return view


async def failure_reasons(db: Database, *, account_id: int, campaign_id: int) -> dict[str, int]:
    """Why the campaign's messages ended without delivery: counts by ``type:reason`` (``rcs:country``,
    ``sms:stop_list`` ...); NotFound for another account's campaign."""
    async with db.read() as conn:
        if await store.get(conn, campaign_id, account_id=account_id) is None:
            raise NotFound("Campaign was not found.")
        counts = (await store.status_counts(conn, [campaign_id])).get(campaign_id, [])
    reasons: dict[str, int] = {}
    for kind, status, reason, n in counts:
        if reason and status in FAILURE_STATUSES:
            key = f"{kind}:{reason}"
            reasons[key] = reasons.get(key, 0) + n
    return reasons


Sort = Literal["id", "sender", "type", "date", "status"]


async def list_campaigns(
    db: Database,
    *,
    account_id: int,
    created_from: datetime | None,
    created_to: datetime | None,
    message_type: str | None,
    search_field: str | None,
    search_value: str | None,
    sort: Sort,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[list[CampaignView], int]:
    conditions: list[Any] = [campaigns.c.account_id == account_id]
    if created_from is not None:
        conditions.append(campaigns.c.created_at >= created_from)
    if created_to is not None:
        conditions.append(campaigns.c.created_at <= created_to)
    if message_type is not None:
        conditions.append(campaigns.c.message_type == message_type)
    if search_field and search_value:
        column = campaigns.c.sender if search_field == "sender" else campaigns.c.name
        pattern = "%" + search_value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(column.like(pattern, escape="\\"))
    column = {
        "id": campaigns.c.id,
        "sender": campaigns.c.sender,
        "type": campaigns.c.message_type,
        "date": campaigns.c.created_at,
        "status": campaigns.c.status,
    }[sort]
    order = [column.desc(), campaigns.c.id.desc()] if descending else [column.asc(), campaigns.c.id.asc()]
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        assert account is not None
        total = int(
            (await conn.execute(select(func.count()).select_from(campaigns).where(*conditions))).scalar_one()
        )
        rows = list(
            await conn.execute(
                select(campaigns).where(*conditions).order_by(*order).offset(offset).limit(limit)
            )
        )
        counts = await store.status_counts(conn, [r.id for r in rows])
    return [_make_view(r, counts.get(r.id, []), account.currency, account.timezone) for r in rows], total


# ---------------------------------------------------------------- control


async def stop_campaign(
    db: Database, clock: Clock, *, account_id: int, campaign_id: int, settle_seconds: float = 15.0
) -> CampaignView:
    """Stop: unsent messages end `failed` (reason stopped), never charged. Returns once no message of
    the campaign is still being handed to an upstream, so nothing is sent after the answer."""
    async with db.write(bulk=True) as conn:
        now = clock.now()
        row = await store.get(conn, campaign_id, account_id=account_id, for_update=not db.is_sqlite)
        if row is None:
            raise NotFound("Campaign was not found.")
        if not await store.set_status(conn, campaign_id, old=STOPPABLE, new="stopped", finished_at=now):
            raise Rejected("Invalid campaign status")
        stopped = 0
        for old in ("scheduled", "accepted"):
            stopped += await store.move_messages(
                conn,
                campaign_id=campaign_id,
                old=old,
                new="failed",
                at=now,
                detail="stopped",
                fail_reason="stopped",
                due_at=None,
                finished_at=now,
            )
        if stopped:
            tally = Tally()
            tally.moved("rcs", None, "failed", stopped)
            after_commit(tally.publish)
        # Fallback SMS already holding money: settle them one by one (releases their reservation).
        held = await conn.execute(
            select(messages).where(
                messages.c.campaign_id == campaign_id,
                messages.c.status == "accepted",
                messages.c.reserved > 0,
            )
        )
        async with unit_of_work(conn) as unit:
            for msg in list(held):
                await transition(unit, msg, "failed", now, reason="stopped")
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        async with db.read() as conn:
            if await store.count_status(conn, campaign_id, "sending") == 0:
                break
        await asyncio.sleep(0.02)
    return await get_campaign(db, account_id=account_id, campaign_id=campaign_id)


async def resume_campaign(db: Database, clock: Clock, *, account_id: int, campaign_id: int) -> CampaignView:
    async with db.write(bulk=True) as conn:
        now = clock.now()
        row = await store.get(conn, campaign_id, account_id=account_id, for_update=not db.is_sqlite)
        if row is None:
            raise NotFound("Campaign was not found.")
        if not await store.set_status(conn, campaign_id, old=("paused",), new="sending", status_reason=None):
            raise Rejected("Invalid campaign status")
        await store.release_queue(conn, campaign_id=campaign_id, due_at=now)
        # Read in the same transaction: the dispatcher may pause it again (funds still short)
        # before a later read, and the answer must say what this resume did.
        return await _read_campaign(conn, account_id=account_id, campaign_id=campaign_id)


async def pause_for_funds(conn: Any, *, campaign_id: int) -> None:
    """Called by the dispatcher, in its claim transaction, when a message cannot be reserved."""
    if await store.set_status(
        conn, campaign_id, old=("sending",), new="paused", status_reason="insufficient_funds"
    ):
        await store.release_queue(conn, campaign_id=campaign_id, due_at=None)


async def tick(db: Database, clock: Clock) -> bool:
    """Start campaigns whose time has come and close those with nothing left to send; True if any changed."""
    changed = False
    async with db.write(bulk=True) as conn:
        now = clock.now()
        for row in await store.due_to_start(conn, now=now):
            if not await store.set_status(
                conn, row.id, old=("creation", "scheduled"), new="sending", real_start_at=now
            ):
                continue
            started = await store.move_messages(
                conn, campaign_id=row.id, old="scheduled", new="accepted", at=now
            )
            if started:
                tally = Tally()
                tally.moved("rcs", None, "accepted", started)
                after_commit(tally.publish)
            await store.release_queue(conn, campaign_id=row.id, due_at=now)
            changed = True
        for campaign_id in await store.sending_ids(conn):
            if not await pipeline.has_pending(conn, campaign_id):
                await store.set_status(conn, campaign_id, old=("sending",), new="done", finished_at=now)
                changed = True
    return changed
