"""Message state changes, each inside the caller's transaction, with everything they imply:
the compare-and-set and its event row, the money (charge, release, transfer to a fallback),
the outgoing webhook row and, for an RCS message that ends undelivered or expired, its SMS
fallback. Call these only inside ``db.write()``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, literal, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.billing import settle_delivered, settle_unsuccessful
from rcsgate.domain.message_states import WEBHOOK_STATUSES
from rcsgate.domain.webhook_payloads import click_payload, encode, status_payload
from rcsgate.store import messages as store
from rcsgate.store.tables import (
    accounts,
    campaigns,
    ledger_entries,
    message_events,
    stop_list,
    webhook_deliveries,
)


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


class Msg(dict[str, Any]):
    """A message row as a mapping with attribute access, so a transition can hand back the new state
    without reading the row again."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    @classmethod
    def of(cls, row: Row[Any] | Mapping[str, Any]) -> Msg:
        return row if isinstance(row, Msg) else cls(row._mapping if isinstance(row, Row) else row)


@dataclass
class _AccountState:
    id: int
    balance: int
    currency: str
    timezone: str
    callback_url: str | None
    balance_delta: int = 0
    reserved_delta: int = 0


class Unit:
    """What one transaction writes besides the message rows: events, ledger entries, webhook rows and
    the accounts' balance changes, collected as transitions happen and written in bulk by ``flush``.
    Balances are tracked in memory from the row read (and, on PostgreSQL, locked) at first use, so
    each ledger entry still records the exact balance after it."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._accounts: dict[int, _AccountState] = {}
        self.events: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []

    async def account(self, account_id: int) -> _AccountState:
        state = self._accounts.get(account_id)
        if state is None:
            query = select(
                accounts.c.balance, accounts.c.currency, accounts.c.timezone, accounts.c.rcs_callback_url
            ).where(accounts.c.id == account_id)
            if self.conn.dialect.name != "sqlite":
                query = query.with_for_update()
            row = (await self.conn.execute(query)).one()
            state = _AccountState(
                account_id, int(row.balance), row.currency, row.timezone, row.rcs_callback_url
            )
            self._accounts[account_id] = state
        return state

    def event(self, message_id: int, old: str | None, new: str, at: datetime, detail: str | None) -> None:
        self.events.append(
            {"message_id": message_id, "from_status": old, "status": new, "at": at, "detail": detail}
        )

    async def money(
        self,
        *,
        account_id: int,
        message_id: int,
        charge: int = 0,
        release: int = 0,
        transfer: int = 0,
        reserve: int = 0,
        now: datetime,
    ) -> None:
        """Record a message's money movement: charge and release close its reservation (a transfer is
        the part handed on to its fallback); reserve opens one from funds already held."""
        state = await self.account(account_id)
        state.balance -= charge
        state.balance_delta -= charge
        state.reserved_delta -= charge + release
        for kind, amount in (("charge", -charge), ("release", release + transfer), ("reserve", reserve)):
            if amount:
                self.ledger.append(
                    {
                        "account_id": account_id,
                        "message_id": message_id,
                        "kind": kind,
                        "amount": amount,
                        "balance_after": state.balance,
                        "note": None,
                        "created_at": now,
                    }
                )

    async def flush(self) -> None:
        conn = self.conn
        if self.events:
            await conn.execute(insert(message_events), self.events)
        if self.ledger:
            await conn.execute(insert(ledger_entries), self.ledger)
        if self.webhooks:
            await conn.execute(insert(webhook_deliveries), self.webhooks)
        for state in self._accounts.values():
            if state.balance_delta or state.reserved_delta:
                await conn.execute(
                    update(accounts)
                    .where(accounts.c.id == state.id)
                    .values(
                        balance=accounts.c.balance + state.balance_delta,
                        reserved=accounts.c.reserved + state.reserved_delta,
                    )
                )
                state.balance_delta = state.reserved_delta = 0
        self.events, self.ledger, self.webhooks = [], [], []


@asynccontextmanager
async def unit_of_work(conn: AsyncConnection) -> AsyncIterator[Unit]:
    """Collect a transaction's side writes and write them when the block ends (not on an exception:
    the transaction is rolled back then anyway)."""
    unit = Unit(conn)
    yield unit
    await unit.flush()


_ENDS = ("delivered", "undelivered", "expired", "failed", "read")


async def transition(
    unit: Unit,
    msg: Row[Any] | Msg,
    new: str,
    now: datetime,
    *,
    reason: str | None = None,
    detail: str | None = None,
    **values: Any,
) -> Msg | None:
    """Move ``msg`` from the status it was read in to ``new``, with everything that implies; returns the
    message as it now is, or None if someone else moved it first (nothing is written then)."""
    msg = Msg.of(msg)
    if reason is not None:
        values["fail_reason"] = reason
    if new in _ENDS:
        values.setdefault("due_at", None)
        values.setdefault("lease_until", None)
        values.setdefault("finished_at", now)
    if new == "delivered":
        values.setdefault("delivered_at", now)
        if msg.sent_at is None:
            values.setdefault("sent_at", now)

    settle: tuple[int, int, int] | None = None  # charge, release, transfer
    plan: SmsPlan | None = None
    blocked_by: str | None = None
    if new == "delivered":
        s = settle_delivered(reserved=msg.reserved, price=msg.price)
        settle = (s.charge, s.release, 0)
    elif new in ("undelivered", "expired", "failed"):
        plan = SmsPlan.from_json(msg.sms_alternative) if msg.sms_alternative and new != "failed" else None
        if plan is not None:
            if msg.campaign_id is not None and await _campaign_stopped(unit.conn, msg.campaign_id):
                blocked_by = "stopped"
            elif plan.check_stop_list and await is_stop_listed(
                unit.conn, account_id=msg.account_id, phone=msg.phone, list_type="sms"
            ):
                blocked_by = "stop_list"
        u = settle_unsuccessful(
            reserved=msg.reserved, fallback_cost=plan.cost if plan and not blocked_by else None
        )
        settle = (0, u.release, u.transfer)
    if settle is not None and (settle[0] or settle[1] or settle[2]):
        values["reserved"] = 0
        values["charged"] = msg.charged + settle[0]

    if not await store.move(unit.conn, message_id=msg.id, old=msg.status, new=new, **values):
        return None
    unit.event(msg.id, msg.status, new, now, detail or reason)
    moved = Msg({**msg, **values, "status": new})

    if settle is not None and (settle[0] or settle[1] or settle[2]):
        charge, release, transfer = settle
        await unit.money(
            account_id=msg.account_id,
            message_id=msg.id,
            charge=charge,
            release=release,
            transfer=transfer,
            now=now,
        )
    if plan is not None:
        await _create_fallback(
            unit, moved, plan, blocked_by=blocked_by, reserved=settle[2] if settle else 0, now=now
        )
    if new in WEBHOOK_STATUSES:
        await enqueue_status_webhook(unit, moved, now)
    return moved


async def _campaign_stopped(conn: AsyncConnection, campaign_id: int) -> bool:
    query = select(campaigns.c.status).where(campaigns.c.id == campaign_id)
    return (await conn.execute(query)).scalar_one_or_none() == "stopped"


async def _create_fallback(
    unit: Unit, parent: Msg, plan: SmsPlan, *, blocked_by: str | None, reserved: int, now: datetime
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
        "reserved": reserved if sendable else 0,
        "charged": 0,
        "priority": parent.priority,
        "due_at": now if sendable else None,
        "attempts": 0,
        "created_at": now,
        "finished_at": None if sendable else now,
    }
    child_id = await store.insert_message(unit.conn, **values)
    unit.event(child_id, None, status, now, f"fallback of {parent.id}")
    if sendable and reserved:
        await unit.money(account_id=parent.account_id, message_id=child_id, reserve=reserved, now=now)
    if not sendable:
        await enqueue_status_webhook(
            unit, Msg({**values, "id": child_id, "sent_at": None, "delivered_at": None}), now
        )


def _webhook_row(
    account_id: int, message_id: int, kind: str, url: str, body: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "message_id": message_id,
        "kind": kind,
        "url": url,
        "body": encode(body),
        "webhook_id": f"evt_{uuid.uuid4().hex}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def enqueue_status_webhook(unit: Unit, msg: Msg, now: datetime) -> None:
    account = await unit.account(int(msg.account_id))
    url = msg.get("callback_url") or account.callback_url
    if not url:
        return
    body = status_payload(
        message_id=int(msg.id),
        phone=str(msg.phone),
        reference=msg.get("reference_id"),
        status=str(msg.status),
        created_at=msg.created_at,
        sent_at=msg.get("sent_at"),
        delivered_at=msg.get("delivered_at"),
        charged_units=int(msg.get("charged") or 0),
        currency=account.currency,
        fail_reason=msg.get("fail_reason"),
        tz=account.timezone,
    )
    unit.webhooks.append(_webhook_row(int(msg.account_id), int(msg.id), "status", url, body, now))


async def enqueue_click_webhook(
    unit: Unit, msg: Row[Any] | Msg, *, text: str, postback: str | None, at: datetime, now: datetime
) -> None:
    msg = Msg.of(msg)
    account = await unit.account(int(msg.account_id))
    url = msg.get("callback_url") or account.callback_url
    if not url:
        return
    body = click_payload(
        message_id=msg.id,
        phone=msg.phone,
        reference=msg.reference_id,
        text=text,
        postback=postback,
        at=at,
        tz=account.timezone,
    )
    unit.webhooks.append(_webhook_row(int(msg.account_id), int(msg.id), "click", url, body, now))
