"""The pipeline's set-based writes: many messages moved by one compare-and-set statement (only those
still in the old status move), a batch of transitions collapsed per message with every step's event
and webhook kept in order, and webhook chains posted in creation order, stopping at the first
delivery not acknowledged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from conftest import Receiver, run
from rcsgate.clock import ManualClock
from rcsgate.domain.backoff import parse_schedule
from rcsgate.services.demo import ensure_demo
from rcsgate.services.lifecycle import Moves, Msg, unit_of_work
from rcsgate.store import bulk, pipeline
from rcsgate.store import messages as store
from rcsgate.store.db import Database
from rcsgate.store.tables import accounts, message_events, messages, webhook_deliveries
from rcsgate.webhooks.sender import WebhookSender

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _account(db: Database, tmp_path: Path) -> int:
    return (await ensure_demo(db, ManualClock(NOW), var_dir=tmp_path)).account_id


def _message(account_id: int, n: int, status: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "type": "rcs",
        "phone": f"38066123{n:04d}",
        "sender": "demo_agent",
        "kind": "text",
        "content": '{"text": "hi"}',
        "status": status,
        "validity_seconds": 3600,
        "expires_at": NOW + timedelta(hours=1),
        "created_at": NOW,
    }


def test_move_many_moves_only_what_is_still_in_the_old_status(db_url: str, tmp_path: Path) -> None:
    async def scenario(db: Database) -> None:
        account_id = await _account(db, tmp_path)
        async with db.write() as conn:
            ids = [await store.insert_message(conn, **_message(account_id, n, "sent")) for n in range(5)]
            await conn.execute(messages.update().where(messages.c.id == ids[2]).values(status="read"))
        changes = [(mid, {"delivered_at": NOW + timedelta(seconds=i)}) for i, mid in enumerate(ids)]
        async with db.write() as conn:
            moved = await pipeline.move_many(conn, old="sent", new="delivered", changes=changes)
        assert moved == set(ids) - {ids[2]}
        async with db.read() as conn:
            rows = {r.id: r for r in await conn.execute(select(messages).where(messages.c.id.in_(ids)))}
        for i, mid in enumerate(ids):
            if mid == ids[2]:
                assert (rows[mid].status, rows[mid].delivered_at) == ("read", None)
            else:
                assert (rows[mid].status, rows[mid].delivered_at) == ("delivered", NOW + timedelta(seconds=i))

    run(scenario, db_url)


def test_a_batch_collapses_each_message_into_one_move_with_every_step_recorded(
    db_url: str, tmp_path: Path
) -> None:
    async def scenario(db: Database) -> None:
        account_id = await _account(db, tmp_path)
        async with db.write() as conn:
            ids = [await store.insert_message(conn, **_message(account_id, n, "sending")) for n in range(3)]
            await conn.execute(accounts.update().values(rcs_callback_url="http://127.0.0.1:9/hook"))
        async with db.write() as conn, unit_of_work(conn) as unit:
            rows = await pipeline.states(conn, ids, for_update=not db.is_sqlite)
            moves = Moves(unit)
            for mid in ids:
                sent = await moves.move(Msg.of(rows[mid]), "sent", NOW, sent_at=NOW)
                delivered = await moves.move(sent, "delivered", NOW, delivered_at=NOW)
                await moves.move(delivered, "read", NOW, read_at=NOW)
            assert await moves.write() == set(ids)
        async with db.read() as conn:
            statuses = {r.id: r.status for r in await conn.execute(select(messages.c.id, messages.c.status))}
            events = list(
                await conn.execute(
                    select(message_events.c.message_id, message_events.c.from_status, message_events.c.status)
                    .where(message_events.c.message_id.in_(ids))
                    .order_by(message_events.c.id)
                )
            )
            hooks = list(
                await conn.execute(
                    select(webhook_deliveries.c.message_id, webhook_deliveries.c.body).order_by(
                        webhook_deliveries.c.id
                    )
                )
            )
        assert all(statuses[mid] == "read" for mid in ids)
        for mid in ids:
            steps = [(e.from_status, e.status) for e in events if e.message_id == mid]
            assert steps == [("sending", "sent"), ("sent", "delivered"), ("delivered", "read")]
            kinds = [h.body.split('"status":"')[1].split('"')[0] for h in hooks if h.message_id == mid]
            assert kinds == ["sent", "delivered", "read"]

    run(scenario, db_url)


def test_webhook_chains_go_in_order_and_stop_at_the_first_failure(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        account_id = await _account(db, tmp_path)
        clock = ManualClock(NOW)
        async with db.write() as conn:
            mid = await _message_with_pending_webhooks(conn, account_id, receiver.url, 3)

        async def send_until(done: Any) -> None:
            sender = WebhookSender(
                db=db, clock=clock, schedule=parse_schedule("60,120"), allow_private=True, poll_seconds=0.01
            )
            stop = asyncio.Event()
            task = asyncio.create_task(sender.run(stop))
            for _ in range(500):
                if await done():
                    break
                await asyncio.sleep(0.01)
            stop.set()
            await task

        async def rows() -> list[Any]:
            async with db.read() as conn:
                query = select(webhook_deliveries).order_by(webhook_deliveries.c.id)
                return list(await conn.execute(query.where(webhook_deliveries.c.message_id == mid)))

        # The receiver refuses: the first delivery is tried and waits for its retry, the later
        # ones are not tried (and their claim's attempt is not counted).
        receiver.status = 500
        await send_until(lambda: _settled(rows))
        first, *later = await rows()
        assert [r.json()["n"] for r in receiver.received] == [0]
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
        assert first.next_attempt_at > NOW
        assert [(r.status, r.attempts, r.next_attempt_at) for r in later] == [("pending", 0, NOW)] * 2

        # Back up, and the retry is due: all three go, in creation order.
        receiver.status = 200
        clock.advance(timedelta(minutes=5))

        async def all_delivered() -> bool:
            return all(r.status == "delivered" for r in await rows())

        await send_until(all_delivered)
        assert [r.json()["n"] for r in receiver.received] == [0, 0, 1, 2]

    run(scenario, db_url)


async def _message_with_pending_webhooks(conn: Any, account_id: int, url: str, count: int) -> int:
    """A message with ``count`` status webhooks due now, their bodies ``{"n": 0}``, ``{"n": 1}`` …"""
    mid = await store.insert_message(conn, **_message(account_id, 1, "read"))
    await bulk.insert_many(
        conn,
        webhook_deliveries,
        [
            {
                "account_id": account_id,
                "message_id": mid,
                "kind": "status",
                "url": url,
                "body": f'{{"n":{n}}}',
                "webhook_id": f"evt_{mid}_{n}",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": NOW,
                "created_at": NOW,
            }
            for n in range(count)
        ],
    )
    return int(mid)


async def _settled(rows: Any) -> bool:
    found = await rows()
    return bool(found) and found[0].attempts == 1 and found[0].next_attempt_at > NOW


def test_deliveries_whose_claim_runs_out_before_a_slot_frees_are_handed_back(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async def scenario(db: Database) -> None:
        account_id = await _account(db, tmp_path)
        async with db.write() as conn:
            mid = await _message_with_pending_webhooks(conn, account_id, receiver.url, 2)
        # A lease no longer than the timeout plus the margin: every claim is out of time at once.
        sender = WebhookSender(
            db=db,
            clock=ManualClock(NOW),
            schedule=parse_schedule("60"),
            allow_private=True,
            poll_seconds=0.01,
            timeout_seconds=1.0,
            lease_seconds=2.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await task
        async with db.read() as conn:
            query = select(webhook_deliveries.c.status, webhook_deliveries.c.attempts)
            rows = list(await conn.execute(query.where(webhook_deliveries.c.message_id == mid)))
        assert receiver.received == []
        assert [(r.status, r.attempts) for r in rows] == [("pending", 0)] * 2

    run(scenario, db_url)
