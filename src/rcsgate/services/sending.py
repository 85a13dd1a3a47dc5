"""Accepting single RCS sends: every rule of the contract, then one transaction per batch of
requests that stores each accepted message with its event, its reservation and its contact-book
entry — each request all or nothing.

Requests arrive one by one but are accepted in batches (``services.send_batcher``): the batch reads
each kind of fact it needs once (keys, accounts, agents, tariffs, prices, stop list, repeats) and
writes each table once, so the cost per request is a share of about twenty statements, not twenty.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.connectors.rbm import content as rbm_content
from rcsgate.domain.billing import max_cost
from rcsgate.domain.errors import DomainError, InvalidInput, RateLimited, Rejected, Unauthenticated
from rcsgate.domain.message_view import MessageView, shown_amount
from rcsgate.domain.phones import country_of
from rcsgate.domain.rcs_content import Card, RcsContent, SingleRcsSend
from rcsgate.domain.records import Account, Principal, RcsAgent
from rcsgate.domain.sms_segments import count_segments
from rcsgate.metrics.instruments import Tally
from rcsgate.services import contacts
from rcsgate.services.lifecycle import SmsPlan
from rcsgate.services.repeats import DUPLICATE, RequestKey, remember_many, repeat_answer
from rcsgate.store import accepts as batch_store
from rcsgate.store import bulk
from rcsgate.store import senders as sender_store
from rcsgate.store.db import Database, after_commit
from rcsgate.store.tables import ledger_entries, message_events, messages


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


def choose_tariff(table: batch_store.Tariffs, account_id: int, code: int | None) -> int:
    """The tariff a send is billed by: the requested code if the account may use it, else the
    account's default, else the system default."""
    own = table.own.get(account_id, [])
    if code is not None:
        found = table.by_code.get(code)
        allowed = found is not None and (
            any(tariff_id == found[0] for tariff_id, _ in own) or (not own and found[1])
        )
        if found is None or not allowed:
            raise Rejected("Tariff was not found")
        return found[0]
    for tariff_id, is_default in own:
        if is_default:
            return tariff_id
    if table.default_id is None:
        raise Rejected("Tariff was not found")
    return table.default_id


def check_agent(agent: RcsAgent | None, test_mode: bool, content: RcsContent) -> RcsAgent:
    # Test mode may use only the test agent, and the test agent only serves test mode.
    if agent is None or agent.status != "active" or agent.is_test != test_mode:
        raise InvalidInput.field("sender", "The selected sender is invalid.")
    if agent.connector_id is not None:
        # Routed to Google RBM (the only kind an agent can name): where Google's limits are stricter
        # than BSG's, refuse now rather than fail the message later.
        errors = rbm_content.limit_errors(content_json(content))
        if errors:
            raise InvalidInput(errors)
    return agent


async def tariff_for(conn: AsyncConnection, account_id: int, code: int | None) -> int:
    return choose_tariff(await batch_store.tariff_table(conn, {account_id}), account_id, code)


async def agent_for(
    conn: AsyncConnection, account: Account, name: str, test_mode: bool, content: RcsContent
) -> RcsAgent:
    return check_agent(await sender_store.get_agent_by_name(conn, account.id, name), test_mode, content)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """A well-signed token's (account, key): the key is checked to be live by the batch that
    accepts the send, in its own transaction, instead of by a read of its own."""

    account_id: int
    key_id: int


Caller = Principal | TokenClaims


@dataclass(frozen=True, slots=True)
class SendRequest:
    caller: Caller
    request: SingleRcsSend
    key: RequestKey

    @property
    def account_id(self) -> int:
        return self.caller.account_id


Outcome = MessageView | DomainError


@dataclass(slots=True)
class _Planned:
    """A send that passed the rules, before its funds are reserved and its rows written."""

    send: SendRequest
    account: Account
    agent: RcsAgent
    tariff_id: int
    country: str | None
    fail_reason: str | None
    price: int = 0
    plan: SmsPlan | None = None

    @property
    def amount(self) -> int:
        if self.fail_reason is not None:
            return 0
        return max_cost(
            rcs_price=self.price,
            sms_unit_price=self.plan.unit_price if self.plan else None,
            sms_parts=self.plan.parts if self.plan else 0,
        )


@dataclass(slots=True)
class _Facts:
    """Everything the rules need about a batch, read once."""

    principals: dict[int, Principal]  # by key id, for token callers
    accounts: dict[int, Account]
    answers: dict[tuple[int, str], tuple[str, str]]
    seen: dict[tuple[int, str], datetime]
    agents: dict[tuple[int, str], RcsAgent]
    references: set[tuple[int, str]]
    stop_listed: set[tuple[int, str]]
    tariffs: batch_store.Tariffs


async def send_single(
    db: Database,
    clock: Clock,
    *,
    principal: Principal,
    request: SingleRcsSend,
    key: RequestKey,
    duplicate_window: float,
) -> MessageView:
    """Accept one send on its own (tests and tools; the API batches through ``send_many``)."""
    [outcome] = await send_many(
        db, clock, [SendRequest(principal, request, key)], duplicate_window=duplicate_window
    )
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


async def send_many(
    db: Database, clock: Clock, sends: Sequence[SendRequest], *, duplicate_window: float
) -> list[Outcome]:
    """Accept a batch: each send's answer or the error refusing it, in order. The batch's sends must
    differ in (account, body), (account, Idempotency-Key) and (account, reference_id), so that no
    two of them decide on the same repeat or reference (``send_batcher`` keeps them apart)."""
    if not sends:
        return []
    try:
        async with db.write() as conn:
            return await _accept(conn, clock.now(), sends, duplicate_window)
    except IntegrityError as exc:
        if len(sends) > 1:
            # Another process's concurrent request raced one of these past the checks into a unique
            # index; accept each on its own so only the one that lost the race is refused.
            outcomes: list[Outcome] = []
            for send in sends:
                outcomes += await send_many(db, clock, [send], duplicate_window=duplicate_window)
            return outcomes
        if sends[0].request.recipient.reference_id and "reference" in str(exc.orig).lower():
            return [
                InvalidInput.field("phone.reference_id", "The phone.reference id has already been taken.")
            ]
        return [RateLimited(DUPLICATE)]


async def _read_facts(conn: AsyncConnection, sends: Sequence[SendRequest]) -> _Facts:
    claims = {(s.caller.account_id, s.caller.key_id) for s in sends if isinstance(s.caller, TokenClaims)}
    account_ids = {s.account_id for s in sends}
    idempotent = {(s.account_id, s.key.idempotency_key) for s in sends if s.key.idempotency_key is not None}
    bodies = {(s.account_id, s.key.body_hash) for s in sends if s.key.idempotency_key is None}
    references = {
        (s.account_id, s.request.recipient.reference_id) for s in sends if s.request.recipient.reference_id
    }
    stoppable = {(s.account_id, s.request.recipient.number) for s in sends if s.request.check_stop_list}
    return _Facts(
        principals=await batch_store.live_keys(conn, claims),
        accounts=await batch_store.accounts_by_id(conn, account_ids),
        answers=await batch_store.idempotent_answers(conn, idempotent),
        seen=await batch_store.fingerprints(conn, bodies),
        agents=await batch_store.agents_by_name(conn, {(s.account_id, s.request.sender) for s in sends}),
        references=await batch_store.taken_references(conn, references),
        stop_listed=await batch_store.stop_listed(conn, stoppable, list_type="rcs"),
        tariffs=await batch_store.tariff_table(conn, account_ids),
    )


def _principal(send: SendRequest, facts: _Facts) -> Principal:
    if isinstance(send.caller, Principal):
        return send.caller
    principal = facts.principals.get(send.caller.key_id)
    if principal is None:
        raise Unauthenticated()
    return principal


def _check(
    send: SendRequest, facts: _Facts, verified: set[tuple[int, str]], now: datetime, window: float
) -> _Planned | MessageView:
    """The rules up to pricing, in the contract's order; a replayed answer ends them early."""
    principal = _principal(send, facts)
    account = facts.accounts[principal.account_id]
    stored = facts.answers.get((account.id, send.key.idempotency_key or ""))
    replayed = repeat_answer(
        send.key,
        stored=stored,
        seen_at=facts.seen.get((account.id, send.key.body_hash)),
        now=now,
        window=window,
    )
    if replayed is not None:
        return MessageView.from_json(replayed)
    request = send.request
    phone = request.recipient.number
    test_mode = principal.mode == "test" or account.mode == "test"
    agent = check_agent(facts.agents.get((account.id, request.sender)), test_mode, request.content)
    if test_mode and (account.id, phone) not in verified:
        raise InvalidInput.field(
            "phone.number", "In test mode messages go only to verified contacts (rcsgate contacts verify)."
        )
    reference = request.recipient.reference_id
    if reference and (account.id, reference) in facts.references:
        raise InvalidInput.field("phone.reference_id", "The phone.reference id has already been taken.")
    tariff_id = choose_tariff(facts.tariffs, account.id, request.tariff_code)
    country = country_of(phone)
    fail_reason: str | None = None
    if country is None:
        fail_reason = "invalid_number"  # no country claims it
    elif country != agent.country:
        fail_reason = "country"
    elif request.check_stop_list and (account.id, phone) in facts.stop_listed:
        fail_reason = "stop_list"
    return _Planned(send, account, agent, tariff_id, country, fail_reason)


def _price(planned: _Planned, prices: dict[tuple[int, str, str, str], int]) -> None:
    if planned.fail_reason is not None:
        return
    country = planned.country
    assert country is not None
    request = planned.send.request
    rcs_price = prices.get((planned.tariff_id, "rcs", request.content.kind, country))
    if rcs_price is None:
        raise InvalidInput.field("phone.number", f"The tariff has no RCS price for {country}.")
    planned.price = rcs_price
    alt = request.sms_alternative
    if alt is not None:
        unit = prices.get((planned.tariff_id, "sms", "sms", country))
        if unit is None:
            raise InvalidInput.field("alternative_channel.sms", f"The tariff has no SMS price for {country}.")
        planned.plan = SmsPlan(
            sender=alt.sender,
            text=alt.text,
            validity_seconds=alt.validity_seconds,
            check_stop_list=alt.check_stop_list,
            parts=count_segments(alt.text).parts,
            unit_price=unit,
        )


async def _accept(
    conn: AsyncConnection, now: datetime, sends: Sequence[SendRequest], window: float
) -> list[Outcome]:
    facts = await _read_facts(conn, sends)
    outcomes: list[Outcome | _Planned | None] = [None] * len(sends)
    test_phones: set[tuple[int, str]] = set()
    for send in sends:
        with contextlib.suppress(DomainError):  # an unknown key is refused by _check below
            if _is_test(send, facts):
                test_phones.add((send.account_id, send.request.recipient.number))
    verified = await batch_store.verified_phones(conn, test_phones)
    for i, send in enumerate(sends):
        try:
            outcomes[i] = _check(send, facts, verified, now, window)
        except DomainError as exc:
            outcomes[i] = exc
    planned = [o for o in outcomes if isinstance(o, _Planned)]
    prices = await batch_store.price_table(
        conn, {p.tariff_id for p in planned}, {p.country for p in planned if p.country and not p.fail_reason}
    )
    for i, item in enumerate(outcomes):
        if isinstance(item, _Planned):
            try:
                _price(item, prices)
            except DomainError as exc:
                outcomes[i] = exc
    balances = await _reserve(conn, outcomes)
    await _write(conn, now, outcomes, balances)
    answers = [o for o in outcomes if isinstance(o, MessageView | DomainError)]
    assert len(answers) == len(sends)
    return answers


def _is_test(send: SendRequest, facts: _Facts) -> bool:
    principal = _principal(send, facts)
    return principal.mode == "test" or facts.accounts[principal.account_id].mode == "test"


async def _reserve(conn: AsyncConnection, outcomes: list[Any]) -> dict[int, int]:
    """Reserve the funds of each account's planned sends, in request order; a send the funds no longer
    cover is refused. The account's balance after, by account id."""
    by_account: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(outcomes):
        if isinstance(item, _Planned) and item.amount > 0:
            by_account[item.account.id].append(i)
    balances: dict[int, int] = {}
    for account_id, indexes in by_account.items():
        total = sum(outcomes[i].amount for i in indexes)
        balance = await batch_store.reserve_total(conn, account_id=account_id, amount=total)
        if balance is None:
            # Not all of them fit: lock the row and take them in order while they do.
            balance, available = await batch_store.locked_funds(conn, account_id)
            total = 0
            for i in indexes:
                amount = outcomes[i].amount
                if amount <= available - total:
                    total += amount
                else:
                    outcomes[i] = Rejected("Insufficient funds")
            if total:
                reserved = await batch_store.reserve_total(conn, account_id=account_id, amount=total)
                assert reserved is not None
        balances[account_id] = balance
    return balances


async def _write(conn: AsyncConnection, now: datetime, outcomes: list[Any], balances: dict[int, int]) -> None:
    """Store the planned sends (each becomes its answer in ``outcomes``)."""
    indexes = [i for i, item in enumerate(outcomes) if isinstance(item, _Planned)]
    if not indexes:
        return
    ids = await bulk.next_ids(conn, messages, len(indexes))
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    ledger: list[dict[str, Any]] = []
    book: dict[int, list[str]] = defaultdict(list)
    remembered: list[tuple[int, RequestKey, str]] = []
    for message_id, i in zip(ids, indexes, strict=True):
        item: _Planned = outcomes[i]
        request, account = item.send.request, item.account
        status = "failed" if item.fail_reason else "accepted"
        amount = item.amount
        rows.append(_message_row(item, message_id, status, amount, now))
        events.append(
            {
                "message_id": message_id,
                "from_status": None,
                "status": status,
                "at": now,
                "detail": item.fail_reason,
            }
        )
        if amount > 0:
            ledger.append(
                {
                    "account_id": account.id,
                    "message_id": message_id,
                    "kind": "reserve",
                    "amount": amount,
                    "balance_after": balances[account.id],
                    "note": None,
                    "created_at": now,
                }
            )
        if request.add_to_contact_book:
            book[account.id].append(request.recipient.number)
        view = MessageView(
            id=message_id,
            reference_id=request.recipient.reference_id,
            type="rcs",
            phone=request.recipient.number,
            status=status,
            validity_seconds=request.validity_seconds,
            amount_units=shown_amount(status=status, price=item.price, charged=0),
            currency=account.currency,
            sender=item.agent.name,
            created_at=now,
            sent_at=None,
            delivered_at=None,
            timezone=account.timezone,
        )
        remembered.append((account.id, item.send.key, view.to_json()))
        outcomes[i] = view
    await bulk.insert_many(conn, messages, rows)
    await bulk.insert_many(conn, message_events, events)
    await bulk.insert_many(conn, ledger_entries, ledger)
    for account_id, phones in book.items():
        await contacts.add_missing(conn, account_id=account_id, phones=phones, now=now)
    await remember_many(conn, remembered, now=now)
    tally = Tally()
    tally.stored("rcs", "api", len(rows))
    failed = sum(1 for row in rows if row["status"] == "failed")
    if failed:
        tally.moved("rcs", None, "failed", failed)  # refused at once: counted as entering failed
    after_commit(tally.publish)


def _message_row(item: _Planned, message_id: int, status: str, amount: int, now: datetime) -> dict[str, Any]:
    request = item.send.request
    return {
        "id": message_id,
        "account_id": item.account.id,
        "campaign_id": None,
        "parent_id": None,
        "type": "rcs",
        "source": "rest",
        "reference_id": request.recipient.reference_id,
        "phone": request.recipient.number,
        "country": item.country,
        "sender": item.agent.name,
        "agent_id": item.agent.id,
        "kind": request.content.kind,
        "content": json.dumps(content_json(request.content)),
        "sms_alternative": item.plan.to_json() if item.plan else None,
        "parts": None,
        "status": status,
        "fail_reason": item.fail_reason,
        "validity_seconds": request.validity_seconds,
        "expires_at": now + timedelta(seconds=request.validity_seconds),
        "callback_url": request.callback_url,
        "check_stop_list": request.check_stop_list,
        "tariff_id": item.tariff_id,
        "price": item.price,
        "reserved": amount,
        "priority": 0,
        "due_at": None if item.fail_reason else now,
        "created_at": now,
        "finished_at": now if item.fail_reason else None,
    }
