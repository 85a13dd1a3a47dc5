"""Properties of the message life and its money, over arbitrary sequences of sends, upstream answers,
reports (late, repeated, out of order) and clock moves, on a real SQLite database."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from rcsgate.clock import ManualClock
from rcsgate.connectors.base import Accepted, NotCapable, Rejected, StatusReport, TryLater
from rcsgate.domain.message_states import FINAL, STATUSES, can_move
from rcsgate.domain.rcs_content import RcsContent, Recipient, SingleRcsSend, SmsAlternative
from rcsgate.domain.records import Principal
from rcsgate.services import dispatching, sending
from rcsgate.services.demo import ensure_demo
from rcsgate.services.repeats import RequestKey
from rcsgate.store.db import Database
from rcsgate.store.tables import accounts, ledger_entries, message_events, messages


@given(st.sampled_from(sorted(FINAL)), st.sampled_from(STATUSES))
def test_no_transition_leaves_a_final_status(old: str, new: str) -> None:
    assert not can_move(old, new)


def test_delivered_can_only_become_read() -> None:
    assert [s for s in STATUSES if can_move("delivered", s)] == ["read"]


Step = tuple[Any, ...]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(["1231", "9990", "9991", "9995", "1232"]), st.booleans()),
        st.tuples(st.just("submit"), st.sampled_from(["accepted", "not_capable", "rejected", "try_later"])),
        st.tuples(
            st.just("report"),
            st.integers(min_value=0, max_value=30),
            st.sampled_from(["delivered", "read", "undelivered", "expired"]),
        ),
        st.tuples(st.just("advance"), st.sampled_from([1, 30, 120, 4000])),
    ),
    min_size=1,
    max_size=30,
)


async def _run(path: Path, plan: list[Step]) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    clock = ManualClock()
    try:
        demo = await ensure_demo(db, clock, var_dir=path.parent)
        principal = Principal(account_id=demo.account_id, key_id=1, mode="live")
        sent_ids: list[int] = []
        for step in plan:
            kind = step[0]
            if kind == "send":
                _, suffix, with_sms = step
                request = SingleRcsSend(
                    sender="demo_agent",
                    content=RcsContent(text="hello"),
                    validity_seconds=3600,
                    sms_alternative=SmsAlternative(sender="DemoSMS", text="x" * 200, validity_seconds=600)
                    if with_sms
                    else None,
                    callback_url=None,
                    tariff_code=None,
                    add_to_contact_book=True,
                    check_stop_list=True,
                    recipient=Recipient(number=f"38066123{suffix}"),
                )
                try:
                    view = await sending.send_single(
                        db,
                        clock,
                        principal=principal,
                        request=request,
                        key=RequestKey(body_hash=uuid.uuid4().hex, idempotency_key=None),
                        duplicate_window=10,
                    )
                    sent_ids.append(view.id)
                except Exception as exc:  # only "Insufficient funds" may refuse a valid send here
                    assert "Insufficient funds" in str(exc)
            elif kind == "submit":
                results = {
                    "accepted": Accepted(upstream_id="u"),
                    "not_capable": NotCapable(),
                    "rejected": Rejected(reason="no"),
                    "try_later": TryLater(error="down"),
                }
                for message in await dispatching.claim(db, clock, limit=50, lease_seconds=30):
                    await dispatching.record_submit(
                        db, clock, message=message, result=results[step[1]], upstream="t"
                    )
            elif kind == "report" and sent_ids:
                _, index, status = step
                ids = await _all_ids(db)
                await dispatching.apply_report(
                    db, clock, StatusReport(message_id=ids[index % len(ids)], status=status, at=clock.now())
                )
            elif kind == "advance":
                clock.advance(timedelta(seconds=step[1]))
                await dispatching.expire_due(db, clock)
                await dispatching.reclaim_lapsed(db, clock)
        await _check(db)
    finally:
        await db.close()


async def _all_ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r.id for r in await conn.execute(select(messages.c.id).order_by(messages.c.id))]


async def _check(db: Database) -> None:
    async with db.read() as conn:
        account = (await conn.execute(select(accounts))).one()
        ledger = list(await conn.execute(select(ledger_entries)))
        rows = list(await conn.execute(select(messages)))
        events = list(await conn.execute(select(message_events).order_by(message_events.c.id)))
        per_kind = dict(
            (k, int(v))
            for k, v in await conn.execute(
                select(ledger_entries.c.kind, func.sum(ledger_entries.c.amount)).group_by(
                    ledger_entries.c.kind
                )
            )
        )
    topups = per_kind.get("topup", 0)
    charges = -per_kind.get("charge", 0)
    # Balance is exactly top-ups minus charges; every charge is one delivered message's price.
    assert account.balance == topups - charges
    assert charges == sum(r.charged for r in rows)
    for r in rows:
        assert r.charged in (0, r.price)
        if r.charged:
            assert r.status in ("delivered", "read")
    # What is reserved on the account is exactly what open messages hold; settled ones hold nothing.
    assert account.reserved == sum(r.reserved for r in rows)
    for r in rows:
        if r.status in FINAL or r.status == "delivered":
            assert r.reserved == 0, (r.id, r.status, r.reserved)
    assert per_kind.get("reserve", 0) - per_kind.get("release", 0) - charges == account.reserved
    assert account.balance + account.credit_limit - account.reserved >= 0
    # Charged at most once per message, whatever reports repeated.
    charge_entries = [e.message_id for e in ledger if e.kind == "charge"]
    assert len(charge_entries) == len(set(charge_entries))
    # History: every recorded step is a legal move, and nothing follows a final status.
    last: dict[int, str] = {}
    for e in events:
        if e.from_status is not None:
            assert last.get(e.message_id) == e.from_status
            assert can_move(e.from_status, e.status), (e.from_status, e.status)
        last[e.message_id] = e.status
    for r in rows:
        assert last[r.id] == r.status


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_money_and_history_invariants(sqlite_template: Path, plan: list[Step]) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "p.db"
        shutil.copy(sqlite_template, path)
        asyncio.run(_run(path, plan))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
