"""Claim holders' liveness (dispatch/liveness.py): the reaper frees the claims of a holder whose beat is
older than the dead threshold — messages, revokes and webhook deliveries — and leaves a living one's
alone; a holder whose last beat is too old starts no call. Time moves by the injected clock (the
reaper) and an injected monotonic clock (the holder); nothing sleeps for expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import Receiver, run
from rcsgate.clock import ManualClock
from rcsgate.config import Settings
from rcsgate.connectors.base import Accepted, OutboundMessage, SubmitResult, TryLater
from rcsgate.connectors.registry import ConnectorRegistry
from rcsgate.connectors.simulator import SimulatorConnector
from rcsgate.dispatch.dispatcher import Dispatcher
from rcsgate.dispatch.liveness import HOLDER_STALE, ClaimHolder
from rcsgate.domain.backoff import parse_schedule
from rcsgate.services import dispatching
from rcsgate.services.demo import ensure_demo
from rcsgate.store import bulk, holders
from rcsgate.store import messages as store
from rcsgate.store import webhooks as webhook_store
from rcsgate.store.db import Database
from rcsgate.store.tables import claim_holders, message_events, messages, webhook_deliveries
from rcsgate.webhooks.http_delivery import make_client
from rcsgate.webhooks.sender import WebhookSender
from test_pipeline_batches import NOW as PIPELINE_NOW
from test_pipeline_batches import _message as pipeline_message

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
assert NOW == PIPELINE_NOW  # the rows borrowed from test_pipeline_batches are stamped with its NOW
DEAD = 12.0


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _holder(db: Database, clock: ManualClock, ticks: Ticks | None = None) -> ClaimHolder:
    return ClaimHolder(db=db, clock=clock, dead_seconds=DEAD, label="test", monotonic=ticks or Ticks())


async def _beat(holder: ClaimHolder) -> None:
    """One beat (or the registration), as the holder's loop makes it."""
    await holder._once(holder.monotonic())


def _message(account_id: int, n: int, status: str, **extra: Any) -> dict[str, Any]:
    return {**pipeline_message(account_id, n, status), "due_at": NOW, **extra}


async def _setup(db: Database, tmp_path: Path, url: str) -> tuple[int, list[int], list[int]]:
    """The demo account; four accepted messages; four sent messages past their validity (to revoke),
    each with a webhook due now."""
    account_id = (await ensure_demo(db, ManualClock(NOW), var_dir=tmp_path)).account_id
    async with db.write() as conn:
        accepted = [await store.insert_message(conn, **_message(account_id, n, "accepted")) for n in range(4)]
        sent = [
            await store.insert_message(
                conn,
                **_message(
                    account_id, 10 + n, "sent", upstream="rbm1", expires_at=NOW - timedelta(minutes=1)
                ),
            )
            for n in range(4)
        ]
        await bulk.insert_many(
            conn,
            webhook_deliveries,
            [
                {
                    "account_id": account_id,
                    "message_id": mid,
                    "kind": "status",
                    "url": url,
                    "body": "{}",
                    "webhook_id": f"evt_{mid}",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": NOW,
                    "created_at": NOW,
                }
                for mid in sent
            ],
        )
    return account_id, accepted, sent


async def _claim_half(db: Database, clock: ManualClock, holder_id: int) -> None:
    """Two messages for sending, two revokes and two webhook deliveries, claimed by ``holder_id``."""
    await dispatching.claim(db, clock, limit=2, lease_seconds=60, holder=holder_id)
    await dispatching.claim_revocations(
        db, clock, revoking={"rbm1"}, lease_seconds=60, limit=2, holder=holder_id
    )
    async with db.write() as conn:
        await webhook_store.claim_chains(
            conn,
            now=clock.now(),
            lease_until=clock.now() + timedelta(seconds=120),
            limit=2,
            skip_locked=not db.is_sqlite,
            holder=holder_id,
        )


async def _claims(db: Database) -> dict[str, list[tuple[int, int | None]]]:
    async with db.read() as conn:
        sending = await conn.execute(
            select(messages.c.id, messages.c.holder_id).where(messages.c.status == "sending")
        )
        revoking = await conn.execute(
            select(messages.c.id, messages.c.holder_id).where(
                messages.c.status == "sent", messages.c.lease_until.is_not(None)
            )
        )
        posting = await conn.execute(
            select(webhook_deliveries.c.id, webhook_deliveries.c.holder_id).where(
                webhook_deliveries.c.status == "pending", webhook_deliveries.c.holder_id.is_not(None)
            )
        )
        return {
            "sending": sorted((int(r.id), r.holder_id) for r in sending),
            "revoking": sorted((int(r.id), r.holder_id) for r in revoking),
            "posting": sorted((int(r.id), r.holder_id) for r in posting),
        }


def test_the_reaper_frees_a_dead_holders_claims_and_not_a_living_ones(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        clock = ManualClock(NOW)
        await _setup(db, tmp_path, receiver.url)
        living, dying = _holder(db, clock), _holder(db, clock)
        await _beat(living)
        await _beat(dying)
        assert living.id is not None and dying.id is not None and living.id != dying.id
        await _claim_half(db, clock, dying.id)
        await _claim_half(db, clock, living.id)
        claims = await _claims(db)
        assert {kind: len(rows) for kind, rows in claims.items()} == {
            "sending": 4,
            "revoking": 4,
            "posting": 4,
        }

        # Both beat now and then; `dying` stops after its claims. Just under the threshold: nobody dead.
        clock.advance(DEAD - 0.5)
        await _beat(living)
        early = await dispatching.reclaim_dead(db, clock, dead_seconds=DEAD)
        # Nobody dead yet; the sweep is told when `dying` will be, if it beats no more.
        assert early == dispatching.Reaped(0, 0, 0, 0, next_death=NOW + timedelta(seconds=DEAD))
        clock.advance(1.0)
        reaped = await dispatching.reclaim_dead(db, clock, dead_seconds=DEAD)
        assert reaped == dispatching.Reaped(holders=1, messages=2, revocations=2, webhooks=2)

        after = await _claims(db)
        for kind in after:
            # Only the living holder's claims are left; the dead one's are free.
            assert after[kind] == [(i, h) for i, h in claims[kind] if h == living.id], kind
        async with db.read() as conn:
            events = list(
                await conn.execute(
                    select(message_events.c.detail).where(
                        message_events.c.status == "accepted", message_events.c.from_status == "sending"
                    )
                )
            )
            left = [int(r.id) for r in await conn.execute(select(claim_holders.c.id))]
            due_hooks = list(
                await conn.execute(
                    select(webhook_deliveries.c.id).where(
                        webhook_deliveries.c.next_attempt_at <= clock.now(),
                        webhook_deliveries.c.holder_id.is_(None),
                    )
                )
            )
        assert [e.detail for e in events] == ["claim holder died"] * 2
        assert left == [living.id]
        assert len(due_hooks) == 2  # the dead holder's, due again at once
        # The freed messages are claimable again at once, by the living holder.
        again = await dispatching.claim(db, clock, limit=10, lease_seconds=60, holder=living.id)
        assert len(again) == 2

        # The dead holder's next beat finds its row gone: it registers anew, and its old claims are
        # not its own any more.
        old = dying.id
        await _beat(dying)
        assert dying.id is None and not dying.fresh(old)
        await _beat(dying)
        assert dying.id is not None and dying.id != old and old not in (dying.id,)
        assert not dying.fresh(old) and dying.fresh(dying.id)

    run(scenario, db_url)


def test_embedded_mode_takes_every_other_holder_for_dead_at_once(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        clock = ManualClock(NOW)
        await _setup(db, tmp_path, receiver.url)
        before, restarted = _holder(db, clock), _holder(db, clock)
        await _beat(before)
        await _claim_half(db, clock, before.id or 0)
        await _beat(restarted)
        # No time passes: the predecessor's beat is fresh, yet it is gone (one process per database).
        reaped = await dispatching.reclaim_dead(
            db, clock, dead_seconds=DEAD, alive=restarted.ids, all_others=True
        )
        assert reaped == dispatching.Reaped(holders=1, messages=2, revocations=2, webhooks=2)
        async with db.read() as conn:
            assert [hid for hid, _ in await holders.beats(conn)] == [restarted.id]

    run(scenario, db_url)


def test_a_holder_is_fresh_only_while_its_last_committed_beat_leaves_room_for_the_call(
    db_url: str,
) -> None:
    async def scenario(db: Database) -> None:
        ticks = Ticks()
        holder = _holder(db, ManualClock(NOW), ticks)
        assert not holder.fresh(None) and not holder.fresh(1)  # not registered yet
        await _beat(holder)
        hid = holder.id
        assert holder.fresh(hid, 10.0)
        # DEAD - timeout - margin (1 s): a 10 s call needs a beat younger than 1 s.
        ticks.t += 0.9
        assert holder.fresh(hid, 10.0) and holder.fresh(hid, 0.0)
        ticks.t += 0.2
        assert not holder.fresh(hid, 10.0) and holder.fresh(hid, 5.0)
        # A beat that fails (the database away) does not count: the last committed one still does.
        await db.close()
        broken = Database.from_url("sqlite+aiosqlite:////nonexistent/dir/db.sqlite")
        holder.db = broken
        await _beat(holder)
        await broken.close()
        assert not holder.fresh(hid, 10.0)
        ticks.t += DEAD
        assert not holder.fresh(hid, 0.0)

    run(scenario, db_url)


class _Counting(SimulatorConnector):
    def __init__(self) -> None:
        super().__init__(clock=ManualClock(NOW), zero_latency=True)
        self.calls = 0

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        self.calls += 1
        return Accepted(upstream_id="x")


def test_a_stale_holder_starts_no_submit_and_no_webhook_post(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        clock = ManualClock(NOW)
        ticks = Ticks()
        await _setup(db, tmp_path, receiver.url)
        holder = _holder(db, clock, ticks)
        await _beat(holder)
        hid = holder.id
        connector = _Counting()
        dispatcher = Dispatcher(
            db=db,
            clock=clock,
            connectors=ConnectorRegistry(db=db, default=connector, build=lambda r: connector),
            wake=asyncio.Event(),
            holder=holder,
            dead_seconds=DEAD,
            call_seconds=5.0,
        )
        [message, *_] = await dispatching.claim(db, clock, limit=1, lease_seconds=60, holder=hid)
        # Fresh: the submit goes, and the connector is handed a check to repeat before its write.
        _, result, _ = await dispatcher._submit(message, hid)
        assert isinstance(result, Accepted) and connector.calls == 1
        # The last beat too old for a 5 s call: refused untried, and the claim goes back.
        ticks.t += DEAD - 5.0 - 1.0
        _, result, _ = await dispatcher._submit(message, hid)
        assert result == TryLater(HOLDER_STALE) and connector.calls == 1
        assert dispatcher._holder_id() is False  # and nothing more is claimed meanwhile
        await dispatching.record(db, clock, outcomes=[(message, result, "sim")], mine=holder.ids)
        async with db.read() as conn:
            status = (
                await conn.execute(select(messages.c.status).where(messages.c.id == message.message_id))
            ).scalar_one()
        assert status == "accepted"

        sender = WebhookSender(
            db=db,
            clock=clock,
            schedule=parse_schedule("60"),
            allow_private=True,
            timeout_seconds=5.0,
            holder=holder,
        )
        assert sender._holder_id() is False
        await _beat(holder)  # fresh again: a claim, then the beat ages before the POST
        async with db.write() as conn:
            chains, _ = await webhook_store.claim_chains(
                conn,
                now=clock.now(),
                lease_until=clock.now() + timedelta(seconds=120),
                limit=1,
                skip_locked=not db.is_sqlite,
                holder=holder.id,
            )
        [[row]] = chains
        ticks.t += DEAD
        client = make_client()
        try:
            assert await sender._post(client, row, "secret", deadline=ticks.t + 1e9) is None
        finally:
            await client.close()
        assert receiver.received == []
        # Handed back: due again, its attempt not counted.
        async with db.write() as conn:
            await sender._record(conn, [(row, None)], clock.now())
        async with db.read() as conn:
            back = (
                await conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == row.id))
            ).one()
        assert (back.attempts, back.holder_id, back.next_attempt_at) == (0, None, clock.now())

    run(scenario, db_url)


def test_an_answer_for_a_claim_another_holder_took_over_is_not_recorded(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        clock = ManualClock(NOW)
        await _setup(db, tmp_path, receiver.url)
        slow, other = _holder(db, clock), _holder(db, clock)
        await _beat(slow)
        [message] = await dispatching.claim(db, clock, limit=1, lease_seconds=60, holder=slow.id)
        clock.advance(DEAD + 1)
        await _beat(other)
        await dispatching.reclaim_dead(db, clock, dead_seconds=DEAD, alive=other.ids)
        again = await dispatching.claim(db, clock, limit=10, lease_seconds=60, holder=other.id)
        assert message.message_id in {m.message_id for m in again}
        # The slow holder's late "try later" must not put the other's claim back.
        await dispatching.record(db, clock, outcomes=[(message, TryLater("late"), "sim")], mine=slow.ids)
        async with db.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message.message_id))).one()
        assert (row.status, row.holder_id) == ("sending", other.id)
        # The holder's own answer is recorded, and the claim no longer names it.
        await dispatching.record(db, clock, outcomes=[(message, Accepted("up-1"), "sim")], mine=other.ids)
        async with db.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message.message_id))).one()
        assert (row.status, row.holder_id, row.lease_until) == ("sent", None, None)

    run(scenario, db_url)


def test_the_dead_threshold_leaves_room_for_the_longest_call() -> None:
    assert Settings().holder_dead_seconds == 13.0  # 10 s timeouts + 3 s
    assert Settings(upstream_timeout_seconds=1, webhook_timeout_seconds=5).holder_dead_seconds == 12.0
    assert Settings(upstream_timeout_seconds=30, claim_lease_seconds=60).holder_dead_seconds == 33.0
    assert Settings(claim_holder_dead_seconds=12).holder_dead_seconds == 12.0
    with pytest.raises(ValueError, match="RCSGATE_CLAIM_HOLDER_DEAD_SECONDS"):
        Settings(claim_holder_dead_seconds=11)
