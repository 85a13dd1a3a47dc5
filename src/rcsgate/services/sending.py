"""Accepting a single RCS send: every rule of the contract, then one transaction that stores the
message, its event, its reservation and the contact-book entry — or nothing at all."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.billing import max_cost
from rcsgate.domain.errors import InvalidInput, RateLimited, Rejected
from rcsgate.domain.message_view import MessageView, shown_amount
from rcsgate.domain.phones import country_of
from rcsgate.domain.rcs_content import Card, RcsContent, SingleRcsSend
from rcsgate.domain.records import Account, Principal, RcsAgent
from rcsgate.domain.sms_segments import count_segments
from rcsgate.services import contacts
from rcsgate.services.lifecycle import SmsPlan, is_stop_listed
from rcsgate.services.repeats import DUPLICATE, RequestKey, earlier_answer, remember
from rcsgate.store import accounts as account_store
from rcsgate.store import messages as store
from rcsgate.store import senders as sender_store
from rcsgate.store.db import Database
from rcsgate.store.tables import account_tariffs, prices, tariffs


def content_json(content: RcsContent) -> dict[str, Any]:
    """The options as stored and shown: suggestions always carry their type (the SDK requires it)."""
    if content.text is not None:
        return {"text": content.text}
    return {"cards": [_card_json(card) for card in content.cards]}


def _card_json(card: Card) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if card.title is not None:
        out["title"] = card.title
    if card.text is not None:
        out["text"] = card.text
    if card.media is not None:
        out["media"] = {"url": card.media.url}
    if card.suggestions:
        out["suggestions"] = [
            {
                "type": s.kind,
                "text": s.text,
                **({"url": s.url} if s.url is not None else {}),
                **({"phone": s.phone} if s.phone is not None else {}),
                **({"postback_data": s.postback_data} if s.postback_data is not None else {}),
            }
            for s in card.suggestions
        ]
    return out


async def tariff_for(conn: AsyncConnection, account_id: int, code: int | None) -> int:
    own = (
        await conn.execute(select(account_tariffs).where(account_tariffs.c.account_id == account_id))
    ).all()
    if code is not None:
        query = select(tariffs.c.id, tariffs.c.is_default).where(
            tariffs.c.code == code, tariffs.c.is_active.is_(True)
        )
        row = (await conn.execute(query)).first()
        allowed = row is not None and (
            any(o.tariff_id == row.id for o in own) or (not own and row.is_default)
        )
        if row is None or not allowed:
            raise Rejected("Tariff was not found")
        return int(row.id)
    for link in own:
        if link.is_default:
            return int(link.tariff_id)
    query = select(tariffs.c.id).where(tariffs.c.is_default.is_(True), tariffs.c.is_active.is_(True))
    default = (await conn.execute(query)).scalar_one_or_none()
    if default is None:
        raise Rejected("Tariff was not found")
    return int(default)


async def price_of(
    conn: AsyncConnection, *, tariff_id: int, channel: str, kind: str, country: str
) -> int | None:
    query = select(prices.c.price).where(
        and_(
            prices.c.tariff_id == tariff_id,
            prices.c.channel == channel,
            prices.c.kind == kind,
            prices.c.country == country,
        )
    )
    value = (await conn.execute(query)).scalar_one_or_none()
    return int(value) if value is not None else None


async def agent_for(conn: AsyncConnection, account: Account, name: str, test_mode: bool) -> RcsAgent:
    agent = await sender_store.get_agent_by_name(conn, account.id, name)
    # Test mode may use only the test agent, and the test agent only serves test mode.
    if agent is None or agent.status != "active" or agent.is_test != test_mode:
        raise InvalidInput.field("sender", "The selected sender is invalid.")
    return agent


async def send_single(
    db: Database,
    clock: Clock,
    *,
    principal: Principal,
    request: SingleRcsSend,
    key: RequestKey,
    duplicate_window: float,
) -> MessageView:
    phone = request.recipient.number
    reference = request.recipient.reference_id
    country = country_of(phone)
    try:
        async with db.write() as conn:
            now = clock.now()
            # No row lock here: the reservation below is one conditional UPDATE, and repeats and
            # references race into unique indexes; so concurrent sends of an account wait for each
            # other only from that UPDATE to the commit.
            account = await account_store.get_account(conn, principal.account_id)
            assert account is not None
            replayed = await earlier_answer(
                conn, account_id=account.id, key=key, now=now, window=duplicate_window
            )
            if replayed is not None:
                return MessageView.from_json(replayed)
            test_mode = principal.mode == "test" or account.mode == "test"
            agent = await agent_for(conn, account, request.sender, test_mode)
            if test_mode and not await contacts.is_verified(conn, account_id=account.id, phone=phone):
                raise InvalidInput.field(
                    "phone.number",
                    "In test mode messages go only to verified contacts (rcsgate contacts verify).",
                )
            if reference and await store.reference_taken(conn, account_id=account.id, reference_id=reference):
                raise InvalidInput.field(
                    "phone.reference_id", "The phone.reference id has already been taken."
                )
            tariff_id = await tariff_for(conn, account.id, request.tariff_code)

            kind = request.content.kind
            fail_reason: str | None = None
            if country != agent.country:
                fail_reason = "country"
            elif request.check_stop_list and await is_stop_listed(
                conn, account_id=account.id, phone=phone, list_type="rcs"
            ):
                fail_reason = "stop_list"

            price = 0
            plan: SmsPlan | None = None
            if fail_reason is None:
                assert country is not None
                rcs_price = await price_of(
                    conn, tariff_id=tariff_id, channel="rcs", kind=kind, country=country
                )
                if rcs_price is None:
                    raise InvalidInput.field("phone.number", f"The tariff has no RCS price for {country}.")
                price = rcs_price
                alt = request.sms_alternative
                if alt is not None:
                    unit = await price_of(
                        conn, tariff_id=tariff_id, channel="sms", kind="sms", country=country
                    )
                    if unit is None:
                        raise InvalidInput.field(
                            "alternative_channel.sms", f"The tariff has no SMS price for {country}."
                        )
                    plan = SmsPlan(
                        sender=alt.sender,
                        text=alt.text,
                        validity_seconds=alt.validity_seconds,
                        check_stop_list=alt.check_stop_list,
                        parts=count_segments(alt.text).parts,
                        unit_price=unit,
                    )

            status = "failed" if fail_reason else "accepted"
            message_id = await store.insert_message(
                conn,
                account_id=account.id,
                campaign_id=None,
                parent_id=None,
                type="rcs",
                source="rest",
                reference_id=reference,
                phone=phone,
                country=country,
                sender=agent.name,
                agent_id=agent.id,
                kind=kind,
                content=json.dumps(content_json(request.content)),
                sms_alternative=plan.to_json() if plan else None,
                parts=None,
                status=status,
                fail_reason=fail_reason,
                validity_seconds=request.validity_seconds,
                expires_at=now + timedelta(seconds=request.validity_seconds),
                callback_url=request.callback_url,
                check_stop_list=request.check_stop_list,
                tariff_id=tariff_id,
                price=price,
                priority=0,
                due_at=None if fail_reason else now,
                created_at=now,
                finished_at=now if fail_reason else None,
            )
            await store.insert_event(
                conn, message_id=message_id, from_status=None, status=status, at=now, detail=fail_reason
            )
            if request.add_to_contact_book:
                await contacts.add_missing(conn, account_id=account.id, phones=[phone], now=now)
            view = MessageView(
                id=message_id,
                reference_id=reference,
                type="rcs",
                phone=phone,
                status=status,
                validity_seconds=request.validity_seconds,
                amount_units=shown_amount(status=status, price=price, charged=0),
                currency=account.currency,
                sender=agent.name,
                created_at=now,
                sent_at=None,
                delivered_at=None,
                timezone=account.timezone,
            )
            await remember(conn, account_id=account.id, key=key, answer=view.to_json(), now=now)
            if fail_reason is None:
                # Last: the account row stays locked from here to the commit only.
                amount = max_cost(
                    rcs_price=price,
                    sms_unit_price=plan.unit_price if plan else None,
                    sms_parts=plan.parts if plan else 0,
                )
                if not await store.reserve(
                    conn, account_id=account.id, message_id=message_id, amount=amount, now=now
                ):
                    raise Rejected("Insufficient funds")
            return view
    except IntegrityError as exc:
        # Two identical requests raced past the checks above; the unique indexes decide.
        if reference and "reference" in str(exc.orig).lower():
            raise InvalidInput.field(
                "phone.reference_id", "The phone.reference id has already been taken."
            ) from exc
        raise RateLimited(DUPLICATE) from exc
