"""Message state changes, each inside the caller's transaction, with everything they imply:
the compare-and-set and its event row, the money (charge, release, transfer to a fallback),
the outgoing webhook row and, for an RCS message that ends undelivered or expired, its SMS
fallback. Call these only inside ``db.write()``.

``transition`` moves one message at once. ``Moves`` plans the moves of a batch against the rows
the transaction read, then writes them with one compare-and-set statement per (status before,
status after) and the implied rows in bulk: the same rules, without a statement per message.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import bindparam, literal, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.billing import settle_delivered, settle_unsuccessful
from rcsgate.domain.message_states import WEBHOOK_STATUSES, can_move
from rcsgate.domain.webhook_payloads import click_payload, encode, inbound_payload, status_payload
from rcsgate.metrics.instruments import Tally, delivery_seconds, fallback_reason
from rcsgate.store import bulk, pipeline
from rcsgate.store import messages as store
from rcsgate.store.db import after_commit
from rcsgate.store.tables import (
    accounts,
    campaigns,
    ledger_entries,
    message_events,
    stop_list,
    webhook_deliveries,
)

# Webhook ids tell a receiver's deliveries apart (unique, not secret): 128 bits from a generator seeded
# once from the OS, not a getrandom() system call per webhook (uuid4: ~2 % of the ingress's CPU
# under Google's event pushes, py-spy 2026-12-05). Same form as before: 32 hex digits.
_webhook_ids = random.Random()
os.register_at_fork(after_in_child=_webhook_ids.seed)  # a forked process must not repeat its parent's


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
        # orjson: read for every listed message that has an SMS alternative.
        return cls(**orjson.loads(text))


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


# Built once, as pipeline.states' query: every transaction that moves a message runs them, and on the
# ingress of Google's events building them and their cache keys cost more than running them.
_ACCOUNT: Final = select(accounts.c.currency, accounts.c.timezone, accounts.c.rcs_callback_url).where(
    accounts.c.id == bindparam("account_id")
)
_SETTLE: Final = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(
        balance=accounts.c.balance + bindparam("balance_delta", type_=accounts.c.balance.type),
        reserved=accounts.c.reserved + bindparam("reserved_delta", type_=accounts.c.reserved.type),
    )
    .returning(accounts.c.balance)
)


@dataclass
class _Account:
    id: int
    currency: str
    timezone: str
    callback_url: str | None
    balance_delta: int = 0
    reserved_delta: int = 0
    # This transaction's ledger rows of the account, whose balance_after is known only at flush.
    entries: list[dict[str, Any]] = field(default_factory=list)


class Unit:
    """What one transaction writes besides the message rows: events, ledger entries, webhook rows and
    the accounts' balance changes, collected as transitions happen and written in bulk by ``flush``.

    An account's balance and reservations change by one relative UPDATE at flush, whose answer gives
    the balance the ledger rows record: the account row is locked (PostgreSQL) only from there to the
    commit, not for the whole transaction, so workers settling the same account overlap."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._accounts: dict[int, _Account] = {}
        self.events: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []
        # SMS fallbacks created ready to send: the dispatcher need not look for work otherwise.
        self.fallbacks = 0
        # The transitions made, counted in the metrics once the transaction commits.
        self.tally = Tally()

    async def account(self, account_id: int) -> _Account:
        state = self._accounts.get(account_id)
        if state is None:
            row = (await self.conn.execute(_ACCOUNT, {"account_id": account_id})).one()
            state = _Account(account_id, row.currency, row.timezone, row.rcs_callback_url)
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
        state.balance_delta -= charge
        state.reserved_delta -= charge + release
        for kind, amount in (("charge", -charge), ("release", release + transfer), ("reserve", reserve)):
            if amount:
                entry = {
                    "account_id": account_id,
                    "message_id": message_id,
                    "kind": kind,
                    "amount": amount,
                    "balance_after": None,
                    "note": None,
                    "created_at": now,
                }
                self.ledger.append(entry)
                state.entries.append(entry)

    async def flush(self) -> None:
        conn = self.conn
        await bulk.insert_many(conn, message_events, self.events)
        await bulk.insert_many(conn, webhook_deliveries, self.webhooks)
        # The accounts last: their rows stay locked from here to the commit.
        for state in self._accounts.values():
            if state.entries or state.balance_delta or state.reserved_delta:
                await self._settle(state)
        await bulk.insert_many(conn, ledger_entries, self.ledger)
        self.events, self.ledger, self.webhooks = [], [], []
        if self.tally:
            after_commit(self.tally.publish)
            self.tally = Tally()

    async def _settle(self, state: _Account) -> None:
        result = await self.conn.execute(
            _SETTLE,
            {
                "account_id": state.id,
                "balance_delta": state.balance_delta,
                "reserved_delta": state.reserved_delta,
            },
        )
        # Walk the entries from the balance before this transaction: only charges change it.
        balance = int(result.scalar_one()) - state.balance_delta
        for entry in state.entries:
            if entry["kind"] == "charge":
                balance += entry["amount"]
            entry["balance_after"] = balance
        state.entries = []
        state.balance_delta = state.reserved_delta = 0


@asynccontextmanager
async def unit_of_work(conn: AsyncConnection) -> AsyncIterator[Unit]:
    """Collect a transaction's side writes and write them when the block ends (not on an exception:
    the transaction is rolled back then anyway)."""
    unit = Unit(conn)
    yield unit
    await unit.flush()


_ENDS = ("delivered", "undelivered", "expired", "failed", "read")


@dataclass(slots=True)
class _Step:
    """One planned transition: the message before and after, the columns it sets, and what it implies."""

    before: Msg
    after: Msg
    values: dict[str, Any]
    detail: str | None
    now: datetime
    settle: tuple[int, int, int] | None  # charge, release, transfer
    plan: SmsPlan | None
    blocked_by: str | None


async def _plan(
    conn: AsyncConnection,
    msg: Msg,
    new: str,
    now: datetime,
    reason: str | None,
    detail: str | None,
    values: dict[str, Any],
) -> _Step:
    if not can_move(msg.status, new):
        raise ValueError(f"illegal transition {msg.status} -> {new}")
    if reason is not None:
        values["fail_reason"] = reason
    if new in _ENDS:
        values.setdefault("due_at", None)
        values.setdefault("lease_until", None)
        values.setdefault("finished_at", now)
    if "lease_until" in values and values["lease_until"] is None:
        # The claim ends with the move: its holder must not stay named, or the reaper would free a
        # later claim made without one (an older version's, during a rolling upgrade) if it died.
        values.setdefault("holder_id", None)
    if new == "delivered":
        values.setdefault("delivered_at", now)
        if msg.sent_at is None:
            values.setdefault("sent_at", now)

    settle: tuple[int, int, int] | None = None
    plan: SmsPlan | None = None
    blocked_by: str | None = None
    if new == "delivered":
        s = settle_delivered(reserved=msg.reserved, price=msg.price)
        settle = (s.charge, s.release, 0)
    elif new in ("undelivered", "expired", "failed"):
        plan = SmsPlan.from_json(msg.sms_alternative) if msg.sms_alternative and new != "failed" else None
        if plan is not None:
            if msg.campaign_id is not None and await _campaign_stopped(conn, msg.campaign_id):
                blocked_by = "stopped"
            elif plan.check_stop_list and await is_stop_listed(
                conn, account_id=msg.account_id, phone=msg.phone, list_type="sms"
            ):
                blocked_by = "stop_list"
        u = settle_unsuccessful(
            reserved=msg.reserved, fallback_cost=plan.cost if plan and not blocked_by else None
        )
        settle = (0, u.release, u.transfer)
    if settle is not None and (settle[0] or settle[1] or settle[2]):
        values["reserved"] = 0
        values["charged"] = msg.charged + settle[0]
    else:
        settle = None
    after = Msg({**msg, **values, "status": new})
    return _Step(msg, after, values, detail or reason, now, settle, plan, blocked_by)


async def _effects(unit: Unit, step: _Step) -> None:
    """Everything a transition implies besides the message row, once the move is made."""
    msg, moved, now = step.before, step.after, step.now
    unit.event(msg.id, msg.status, moved.status, now, step.detail)
    connector = moved.get("upstream")
    unit.tally.moved(msg.type, connector, moved.status)
    if moved.status == "delivered":
        unit.tally.delivered(msg.type, connector, delivery_seconds(msg, moved.get("delivered_at")))
    if step.settle is not None:
        charge, release, transfer = step.settle
        await unit.money(
            account_id=msg.account_id,
            message_id=msg.id,
            charge=charge,
            release=release,
            transfer=transfer,
            now=now,
        )
    if step.plan is not None:
        await _create_fallback(
            unit,
            moved,
            step.plan,
            blocked_by=step.blocked_by,
            reserved=step.settle[2] if step.settle else 0,
            now=now,
        )
    if moved.status in WEBHOOK_STATUSES:
        await enqueue_status_webhook(unit, moved, now)


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
    step = await _plan(unit.conn, Msg.of(msg), new, now, reason, detail, values)
    if not await store.move(
        unit.conn, message_id=step.before.id, old=step.before.status, new=new, **step.values
    ):
        return None
    await _effects(unit, step)
    return step.after


@dataclass(frozen=True, slots=True)
class _Click:
    msg: Msg
    text: str
    postback: str | None
    at: datetime
    now: datetime


class Moves:
    """The transitions of a batch of messages, planned in memory and written together by ``write``.

    Plan each message's moves from the row this transaction read (locked on PostgreSQL), feeding
    the message each ``move`` returns into the next one, as with ``transition``. ``write`` collapses
    a message's successive moves into one compare-and-set from its first status to its last (the
    steps in between are never visible outside the transaction), issues one statement per (first,
    last) pair, and then writes, for the messages it really moved, each step's event, money,
    fallback and webhook in order. Click webhooks keep their place among a message's webhooks."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self._chains: dict[int, list[_Step | _Click]] = {}
        self._last: dict[int, Msg] = {}

    async def move(
        self,
        msg: Row[Any] | Msg,
        new: str,
        now: datetime,
        *,
        reason: str | None = None,
        detail: str | None = None,
        **values: Any,
    ) -> Msg:
        msg = Msg.of(msg)
        last = self._last.get(msg.id)
        if last is not None and last is not msg:
            raise ValueError(f"message {msg.id}: plan each move from the one before")
        step = await _plan(self.unit.conn, msg, new, now, reason, detail, values)
        self._chains.setdefault(msg.id, []).append(step)
        self._last[msg.id] = step.after
        return step.after

    def click(
        self, msg: Row[Any] | Msg, *, text: str, postback: str | None, at: datetime, now: datetime
    ) -> None:
        msg = Msg.of(msg)
        self._chains.setdefault(msg.id, []).append(_Click(msg, text, postback, at, now))

    async def write(self) -> set[int]:
        """Write the planned moves; returns the ids of the messages moved (all of them unless another
        transaction moved some first)."""
        groups: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
        for mid, chain in self._chains.items():
            steps = [s for s in chain if isinstance(s, _Step)]
            if not steps:
                continue
            values: dict[str, Any] = {}
            for step in steps:
                values.update(step.values)
            key = (steps[0].before.status, steps[-1].after.status, tuple(sorted(values)))
            groups.setdefault(key, []).append((mid, values))
        moved: set[int] = set()
        for (old, new, _), changes in groups.items():
            moved |= await pipeline.move_many(self.unit.conn, old=old, new=new, changes=changes)
        for mid, chain in self._chains.items():
            for item in chain:
                if isinstance(item, _Click):
                    await enqueue_click_webhook(
                        self.unit, item.msg, text=item.text, postback=item.postback, at=item.at, now=item.now
                    )
                elif mid in moved:
                    await _effects(self.unit, item)
        self._chains, self._last = {}, {}
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
    if sendable:
        unit.fallbacks += 1
        unit.tally.fallback(fallback_reason(parent.status, parent.get("fail_reason")))
    else:
        unit.tally.moved("sms", None, "failed")  # stored failed: counted as entering it
    if sendable and reserved:
        await unit.money(account_id=parent.account_id, message_id=child_id, reserve=reserved, now=now)
    if not sendable:
        await enqueue_status_webhook(
            unit, Msg({**values, "id": child_id, "sent_at": None, "delivered_at": None}), now
        )


def _webhook_row(
    account_id: int, message_id: int | None, kind: str, url: str, body: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "message_id": message_id,
        "kind": kind,
        "url": url,
        "body": encode(body),
        "webhook_id": f"evt_{_webhook_ids.getrandbits(128):032x}",
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


async def enqueue_inbound_webhook(
    unit: Unit,
    *,
    account_id: int,
    event_id: int,
    channel: str,
    phone: str,
    sender: str | None,
    text: str | None,
    location: dict[str, float] | None,
    file: dict[str, Any] | None,
    reply_to: Msg | None,
    at: datetime,
    now: datetime,
) -> None:
    """A user's reply, posted to the account's callback URL (the one its last message named first)."""
    account = await unit.account(account_id)
    url = (reply_to.get("callback_url") if reply_to is not None else None) or account.callback_url
    if not url:
        return
    body = inbound_payload(
        event_id=event_id,
        channel=channel,
        phone=phone,
        sender=sender,
        text=text,
        location=location,
        file=file,
        reply_to=int(reply_to.id) if reply_to is not None else None,
        reference=reply_to.get("reference_id") if reply_to is not None else None,
        at=at,
        tz=account.timezone,
    )
    unit.webhooks.append(_webhook_row(account_id, None, "inbound", url, body, now))
