"""Message state changes, each inside the caller's transaction, with everything they imply:
the compare-and-set and its event row, the money (charge, release, transfer to a fallback),
the outgoing webhook row and, for an RCS message that ends undelivered or expired, its SMS
fallback. Call these only inside ``db.write()``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.billing import settle_delivered, settle_unsuccessful
from rcsgate.domain.message_states import WEBHOOK_STATUSES
from rcsgate.domain.webhook_payloads import click_payload, encode, status_payload
from rcsgate.store import accounts as account_store
from rcsgate.store import messages as store
from rcsgate.store.tables import campaigns, stop_list


@dataclass(frozen=True, slots=True)
class SmsPlan:
    """The alternative SMS as fixed at acceptance (its price is part of the original reservation)."""

    sender: str
    text: str
    validity_seconds: int
    check_stop_list: bool
    parts: int
    unit_price: int

    @property
    def cost(self) -> int:
        return self.unit_price * self.parts

    def to_json(self) -> str:
        return json.dumps(
            {
                "sender": self.sender,
                "text": self.text,
                "validity_seconds": self.validity_seconds,
                "check_stop_list": self.check_stop_list,
                "parts": self.parts,
                "unit_price": self.unit_price,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SmsPlan:
        data = json.loads(text)
        return cls(**data)


async def is_stop_listed(conn: AsyncConnection, *, account_id: int, phone: str, list_type: str) -> bool:
    query = select(literal(1)).where(
        stop_list.c.account_id == account_id, stop_list.c.type == list_type, stop_list.c.phone == phone
    )
    return (await conn.execute(query)).first() is not None


def _merged(msg: Row[Any], status: str, values: dict[str, Any]) -> dict[str, Any]:
    data = dict(msg._mapping)
    data.update(values)
    data["status"] = status
    return data


async def transition(
    conn: AsyncConnection,
    msg: Row[Any],
    new: str,
    now: datetime,
    *,
    reason: str | None = None,
    detail: str | None = None,
    **values: Any,
) -> bool:
    """Move ``msg`` from the status it was read in to ``new``; False if someone else moved it first."""
    if reason is not None:
        values["fail_reason"] = reason
    if new in ("delivered", "undelivered", "expired", "failed", "read"):
        values.setdefault("due_at", None)
        values.setdefault("lease_until", None)
    if new == "delivered":
        values.setdefault("delivered_at", now)
        if msg.sent_at is None:
            values.setdefault("sent_at", now)
    if new in ("undelivered", "expired", "failed", "read", "delivered"):
        values.setdefault("finished_at", now)
    if not await store.move(
        conn, message_id=msg.id, old=msg.status, new=new, at=now, detail=detail or reason, **values
    ):
        return False
    data = _merged(msg, new, values)

    if new == "delivered":
        s = settle_delivered(reserved=msg.reserved, price=msg.price)
        await store.settle(
            conn,
            account_id=msg.account_id,
            message_id=msg.id,
            charge=s.charge,
            release=s.release,
            transfer=0,
            now=now,
        )
        data["charged"] = msg.charged + s.charge
    elif new in ("undelivered", "expired", "failed"):
        plan = SmsPlan.from_json(msg.sms_alternative) if msg.sms_alternative and new != "failed" else None
        blocked_by: str | None = None
        if plan is not None:
            if msg.campaign_id is not None and await _campaign_stopped(conn, msg.campaign_id):
                blocked_by = "stopped"
            elif plan.check_stop_list and await is_stop_listed(
                conn, account_id=msg.account_id, phone=msg.phone, list_type="sms"
            ):
                blocked_by = "stop_list"
        sendable = plan is not None and blocked_by is None
        s = settle_unsuccessful(reserved=msg.reserved, fallback_cost=plan.cost if plan and sendable else None)
        await store.settle(
            conn,
            account_id=msg.account_id,
            message_id=msg.id,
            charge=0,
            release=s.release,
            transfer=s.transfer,
            now=now,
        )
        if plan is not None:
            await _create_fallback(conn, msg, plan, blocked_by=blocked_by, reserved=s.transfer, now=now)

    if new in WEBHOOK_STATUSES:
        await enqueue_status_webhook(conn, data, now)
    return True


async def _campaign_stopped(conn: AsyncConnection, campaign_id: int) -> bool:
    query = select(campaigns.c.status).where(campaigns.c.id == campaign_id)
    return (await conn.execute(query)).scalar_one_or_none() == "stopped"


async def _create_fallback(
    conn: AsyncConnection,
    parent: Row[Any],
    plan: SmsPlan,
    *,
    blocked_by: str | None,
    reserved: int,
    now: datetime,
) -> None:
    sendable = blocked_by is None
    status = "accepted" if sendable else "failed"
    values: dict[str, Any] = {
        "account_id": parent.account_id,
        "campaign_id": parent.campaign_id,
        "parent_id": parent.id,
        "type": "sms",
        "source": parent.source,
        "reference_id": parent.reference_id,
        "phone": parent.phone,
        "country": parent.country,
        "sender": plan.sender,
        "agent_id": None,
        "kind": "sms",
        "content": json.dumps({"text": plan.text}),
        "sms_alternative": None,
        "parts": plan.parts,
        "status": status,
        "fail_reason": blocked_by,
        "validity_seconds": plan.validity_seconds,
        "expires_at": now + timedelta(seconds=plan.validity_seconds),
        "callback_url": parent.callback_url,
        "check_stop_list": plan.check_stop_list,
        "tariff_id": parent.tariff_id,
        "price": plan.cost,
        "reserved": 0,
        "charged": 0,
        "priority": parent.priority,
        "due_at": now if sendable else None,
        "attempts": 0,
        "created_at": now,
        "finished_at": None if sendable else now,
    }
    child_id = await store.insert_message(conn, **values)
    await store.insert_event(
        conn, message_id=child_id, from_status=None, status=status, at=now, detail=f"fallback of {parent.id}"
    )
    if sendable and reserved:
        await store.take_over_reservation(
            conn, account_id=parent.account_id, message_id=child_id, amount=reserved, now=now
        )
    if not sendable:
        await enqueue_status_webhook(
            conn, {**values, "id": child_id, "sent_at": None, "delivered_at": None}, now
        )


async def _callback_target(conn: AsyncConnection, data: dict[str, Any]) -> tuple[str, str, str] | None:
    account = await account_store.get_account(conn, int(data["account_id"]))
    if account is None:
        return None
    url = data.get("callback_url") or account.rcs_callback_url
    if not url:
        return None
    return url, account.currency, account.timezone


async def enqueue_status_webhook(conn: AsyncConnection, data: dict[str, Any], now: datetime) -> None:
    target = await _callback_target(conn, data)
    if target is None:
        return
    url, currency, tz = target
    body = status_payload(
        message_id=int(data["id"]),
        phone=str(data["phone"]),
        reference=data.get("reference_id"),
        status=str(data["status"]),
        created_at=data["created_at"],
        sent_at=data.get("sent_at"),
        delivered_at=data.get("delivered_at"),
        charged_units=int(data.get("charged") or 0),
        currency=currency,
        fail_reason=data.get("fail_reason"),
        tz=tz,
    )
    await store.enqueue_webhook(
        conn,
        account_id=int(data["account_id"]),
        message_id=int(data["id"]),
        kind="status",
        url=url,
        body=encode(body),
        webhook_id=f"evt_{uuid.uuid4().hex}",
        now=now,
    )


async def enqueue_click_webhook(
    conn: AsyncConnection, msg: Row[Any], *, text: str, postback: str | None, at: datetime, now: datetime
) -> None:
    data = dict(msg._mapping)
    target = await _callback_target(conn, data)
    if target is None:
        return
    url, _currency, tz = target
    body = click_payload(
        message_id=msg.id,
        phone=msg.phone,
        reference=msg.reference_id,
        text=text,
        postback=postback,
        at=at,
        tz=tz,
    )
    await store.enqueue_webhook(
        conn,
        account_id=msg.account_id,
        message_id=msg.id,
        kind="click",
        url=url,
        body=encode(body),
        webhook_id=f"evt_{uuid.uuid4().hex}",
        now=now,
    )
