"""GET /api/messages filters, sorting, paging and period rules; test mode; account isolation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, insert, select, update

from conftest import LiveServer, run
from rcsgate.api.routers.messages import list_item, messages_json
from rcsgate.api.schemas import MessagesResponse, Meta, PageMeta
from rcsgate.clock import ManualClock
from rcsgate.domain.message_view import MessageView
from rcsgate.services import accounts, auth, contacts, message_queries, senders
from rcsgate.services.demo import ensure_demo
from rcsgate.services.message_queries import MessageFilter, check_period
from rcsgate.store import campaigns as campaign_store
from rcsgate.store import messages as message_store
from rcsgate.store.db import Database
from rcsgate.store.message_counts import Split, hour_of, split
from rcsgate.store.tables import message_day_counts, message_hour_counts, messages


def body(phone: str, ref: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "phone": {"number": phone, **({"reference_id": ref} if ref else {})},
        "sender": "demo_agent",
        "options": {"text": "hello"},
        **extra,
    }


def demo_client(server: LiveServer) -> httpx.Client:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    return server.client(headers={"X-API-KEY": demo.api_key})


def test_filters_sorting_paging(server: LiveServer) -> None:
    c = demo_client(server)
    ids = []
    for i, phone in enumerate(["380661230003", "380661230001", "380661230002"]):
        server.clock.advance(60)
        r = c.post("/api/messages/rcs/send", json=body(phone, f"r{i}"))
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["id"])
    get = lambda **p: c.get("/api/messages", params=p)  # noqa: E731
    r = get()
    assert [m["id"] for m in r.json()["data"]] == ids and r.json()["meta"] == {
        "page": {"total": 3, "offset": 0, "limit": 50}
    }
    assert [m["id"] for m in get(way="desc").json()["data"]] == ids[::-1]
    assert [m["phone"] for m in get(sort="phone").json()["data"]] == [
        380661230001,
        380661230002,
        380661230003,
    ]
    assert [m["id"] for m in get(**{"filter[id]": ids[1]}).json()["data"]] == [ids[1]]
    assert [m["id"] for m in get(**{"filter[reference_id]": "r2"}).json()["data"]] == [ids[2]]
    assert get(**{"filter[campaign_id]": 5}).json()["meta"]["page"]["total"] == 0
    page = get(**{"page[limit]": 15, "page[offset]": 2}).json()
    assert [m["id"] for m in page["data"]] == [ids[2]] and page["meta"]["page"] == {
        "total": 3,
        "offset": 2,
        "limit": 15,
    }
    assert get(**{"filter[from]": "2026-01-01 12:01:30"}).json()["meta"]["page"]["total"] == 2
    assert get(**{"filter[to]": "2026-01-01 12:01:30"}).json()["meta"]["page"]["total"] == 1
    assert (
        get(**{"filter[from]": "2026-01-01T12:02:00", "filter[to]": "2026-01-01T12:02:00"}).json()["meta"][
            "page"
        ]["total"]
        == 1
    )
    for bad in (
        {"filter[to]": "2026-01-01 12:30:00"},  # the future
        {"filter[from]": "2026-01-01 12:30:00"},
        {"filter[from]": "2025-09-01 00:00:00"},  # more than 3 months before filter[to]
        {"filter[from]": "yesterday"},
        {"page[limit]": 14},
        {"page[limit]": 501},
        {"sort": "price"},
        {"way": "up"},
        {"filter[id]": 0},
    ):
        r = get(**bad)
        assert r.status_code == 422, bad
        assert r.json()["message"] == "The given data was invalid."
        assert set(r.json()["errors"]) <= set(bad), (bad, r.json())
    assert get(**{"page[limit]": 500}).status_code == 200


def test_messages_older_than_three_months_are_outside_the_default_period(server: LiveServer) -> None:
    c = demo_client(server)
    old = c.post("/api/messages/rcs/send", json=body("380661230001")).json()["data"]["id"]
    server.clock.advance(timedelta(days=93))
    new = c.post("/api/messages/rcs/send", json=body("380661230002")).json()["data"]["id"]
    assert [m["id"] for m in c.get("/api/messages").json()["data"]] == [new]
    assert old < new


def test_other_accounts_messages_are_invisible(server: LiveServer) -> None:
    c = demo_client(server)
    mine = c.post("/api/messages/rcs/send", json=body("380661230001", "mine")).json()["data"]["id"]
    _, other_key = server.new_account("other")
    with server.client(headers={"X-API-KEY": other_key}) as o:
        assert o.get("/api/messages").json() == {
            "data": [],
            "meta": {"page": {"total": 0, "offset": 0, "limit": 50}},
        }
        assert o.get("/api/messages", params={"filter[id]": mine}).json()["data"] == []
        assert o.get("/api/messages", params={"filter[reference_id]": "mine"}).json()["data"] == []
        # Another account's agent name is not usable either.
        r = o.post("/api/messages/rcs/send", json=body("380661230001"))
        assert r.status_code == 422 and "sender" in r.json()["errors"]


def test_test_mode_sends_only_via_the_test_agent_to_verified_contacts(server: LiveServer) -> None:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    account_id = demo.account_id
    server.call(
        lambda db: senders.create_agent(
            db, server.clock, account_id=account_id, name="test_agent", country="UA", is_test=True
        )
    )
    test_key = server.call(
        lambda db: auth.create_key(db, server.clock, account_id=account_id, mode="test")
    ).key
    with server.client(headers={"X-API-KEY": test_key}) as t:
        r = t.post("/api/messages/rcs/send", json={**body("380661230001"), "sender": "test_agent"})
        assert r.status_code == 422 and "phone.number" in r.json()["errors"]
        server.call(
            lambda db: contacts.verify(db, server.clock, account_id=account_id, phone="+380661230001")
        )
        r = t.post("/api/messages/rcs/send", json={**body("380661230001"), "sender": "test_agent"})
        assert r.status_code == 200, r.text
        # The live agent is not for test mode ...
        r = t.post("/api/messages/rcs/send", json=body("380661230001", "x2"))
        assert r.status_code == 422 and "sender" in r.json()["errors"]
    # ... and the test agent is not for live keys.
    with server.client(headers={"X-API-KEY": demo.api_key}) as live:
        r = live.post("/api/messages/rcs/send", json={**body("380661230002"), "sender": "test_agent"})
        assert r.status_code == 422 and "sender" in r.json()["errors"]


def test_tariff_code_selects_a_tariff_of_the_account(server: LiveServer) -> None:
    c = demo_client(server)
    r = c.post("/api/messages/rcs/send", json=body("380661230001", tariff_code=99))
    assert r.status_code == 422 and r.json() == {"message": "Tariff was not found", "errors": {}}
    r = c.post("/api/messages/rcs/send", json=body("380661230001", tariff_code=1))
    assert r.status_code == 200 and r.json()["data"]["amount"]["value"] == "0.0200000"


def test_add_to_contact_book(server: LiveServer) -> None:
    c = demo_client(server)
    c.post("/api/messages/rcs/send", json=body("380661230001"))
    c.post("/api/messages/rcs/send", json=body("380661230002", add_to_contact_book="false"))
    c.post("/api/messages/rcs/send", json=body("380661230001", "again"))

    async def phones(db):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from rcsgate.store.tables import contacts as table

        async with db.read() as conn:
            return [r.phone for r in await conn.execute(select(table.c.phone).order_by(table.c.phone))]

    assert server.call(phones) == ["380661230001"]


# ------------------------------------------------------------------ exact totals and unchanged pages
#
# GET /api/messages counts a period from per-day counters kept by triggers (store.message_counts) and
# reads pages along indexes; these tests hold both to a brute-force count and ORDER BY on the same
# rows, across UTC day boundaries, for every insert path, deletions and moved messages.

DAY0 = datetime(2026, 3, 10, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def _message(account_id: int, created_at: datetime, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "campaign_id": None,
        "type": "rcs",
        "phone": f"38066123{n % 7:04d}",  # repeated phones: ties broken by id
        "sender": "demo_agent",
        "kind": "text",
        "content": json.dumps({"text": f"m{n}"}),
        "status": "delivered",
        "validity_seconds": 3600,
        "expires_at": created_at + timedelta(hours=1),
        "created_at": created_at,
        # NULLs and ties in delivered_at, which sort differently on the two engines.
        "delivered_at": None if n % 5 == 0 else DAY0 + timedelta(hours=n % 3),
        **extra,
    }


def _times() -> list[datetime]:
    """Around every midnight of five days, around an hour inside each, and in between."""
    out: list[datetime] = []
    for d in range(5):
        day = DAY0 + timedelta(days=d)
        out += [day, day + TICK, day + timedelta(hours=5) - TICK, day + timedelta(hours=5)]
        out += [day + timedelta(hours=11, seconds=59), day + timedelta(days=1) - TICK]
    return out


async def _insert_messages(db: Database, account_id: int, other_id: int) -> None:
    """Messages of two accounts at _times(), each path once: one INSERT per message, SQLAlchemy's
    executemany, and the campaign path's driver-level executemany."""
    times = _times()
    async with db.write() as conn:
        for n, at in enumerate(times[::3]):
            await message_store.insert_message(conn, **_message(account_id, at, n, reference_id=f"r{n}"))
    async with db.write() as conn:
        await conn.execute(
            insert(messages), [_message(account_id, at, n + 100) for n, at in enumerate(times[1::3])]
        )
    async with db.write() as conn:
        rows = [_message(account_id, at, n + 200, campaign_id=7) for n, at in enumerate(times[2::3])]
        rows += [_message(other_id, at, n + 300) for n, at in enumerate(times)]
        await campaign_store.insert_messages(conn, rows)


async def _expected(
    db: Database,
    account_id: int,
    matching: dict[str, Any],
    start: datetime,
    end: datetime,
    sort: str,
    desc: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[int]]:
    """What GET /api/messages answered before the day counters: count(*) and ORDER BY over the period."""
    where = [
        messages.c.account_id == account_id,
        messages.c.created_at >= start,
        messages.c.created_at <= end,
        *(messages.c[name] == value for name, value in matching.items()),
    ]
    column = {"id": messages.c.id, "phone": messages.c.phone, "delivered": messages.c.delivered_at}[sort]
    order = [column.desc(), messages.c.id.desc()] if desc else [column.asc(), messages.c.id.asc()]
    async with db.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(messages).where(*where))).scalar_one()
        ids = await conn.execute(
            select(messages.c.id).where(*where).order_by(*order).offset(offset).limit(limit)
        )
        return int(total), [int(i) for i in ids.scalars()]


async def _compare_periods(db: Database, account_id: int, now: datetime, **matching: Any) -> int:
    """Every period from the grid below, every sort, two offsets, with the filters in ``matching``
    (id, campaign_id, reference_id): same total and page as the plain queries. Returns how many
    comparisons were made."""
    clock = ManualClock(now)
    starts = [
        DAY0,
        DAY0 + TICK,
        DAY0 + timedelta(days=1) - TICK,
        DAY0 + timedelta(days=1, hours=5),
        DAY0 + timedelta(days=1, hours=12),
    ]
    ends = [
        DAY0 + timedelta(days=3) - TICK,
        DAY0 + timedelta(days=3),
        DAY0 + timedelta(days=3, hours=5) - TICK,
        DAY0 + timedelta(days=3, hours=12),
        DAY0 + timedelta(days=4) - TICK,
        DAY0 + timedelta(days=4, microseconds=1),
        None,
    ]
    checked = 0
    for start in [*starts, None]:
        for end in ends:
            window = check_period(start, end, now)
            for sort in ("id", "phone", "delivered"):
                for desc in (False, True):
                    for offset in (0, 3):
                        views, total = await message_queries.list_messages(
                            db,
                            clock,
                            account_id=account_id,
                            where=MessageFilter(created_from=start, created_to=end, **matching),
                            sort=sort,  # type: ignore[arg-type]
                            descending=desc,
                            offset=offset,
                            limit=15,
                        )
                        want = await _expected(db, account_id, matching, *window, sort, desc, offset, 15)
                        assert (total, [v.id for v in views]) == want, (start, end, sort, desc, offset)
                        checked += 1
    return checked


async def _ids(db: Database, account_id: int) -> list[int]:
    async with db.read() as conn:
        query = select(messages.c.id).where(messages.c.account_id == account_id).order_by(messages.c.id)
        return [int(i) for i in (await conn.execute(query)).scalars()]


async def _new_account(db: Database, clock: ManualClock, name: str) -> int:
    return (await accounts.create_account(db, clock, name=name)).id


@pytest.mark.parametrize("walk", [False, True], ids=["sorted", "index-walk"])
def test_totals_and_pages_are_exact_across_day_boundaries(
    db_url: str, walk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if walk:
        # Take the index walk for sorted pages however few the matches (normally above 10,000).
        monkeypatch.setattr(message_queries, "SORT_AT_MOST", 0)

    async def main(db: Database) -> None:
        clock = ManualClock(DAY0 - timedelta(days=1))
        account_id, other_id = await _new_account(db, clock, "a"), await _new_account(db, clock, "b")
        await _insert_messages(db, account_id, other_id)
        now = DAY0 + timedelta(days=5, hours=1)
        assert await _compare_periods(db, account_id, now) == 504
        if not walk:
            some_id = (await _ids(db, account_id))[7]
            for matching in ({"campaign_id": 7}, {"reference_id": "r2"}, {"id": some_id}, {"campaign_id": 8}):
                await _compare_periods(db, account_id, now, **matching)
        # One message moved to another day and account, and a few deleted: still exact.
        async with db.write() as conn:
            first = (
                await conn.execute(select(func.min(messages.c.id)).where(messages.c.account_id == account_id))
            ).scalar_one()
            await conn.execute(
                update(messages)
                .where(messages.c.id == first)
                .values(created_at=DAY0 + timedelta(days=2, hours=5))
            )
            await conn.execute(update(messages).where(messages.c.id == first + 1).values(account_id=other_id))
            await conn.execute(
                delete(messages).where(messages.c.account_id == account_id, messages.c.id % 4 == 0)
            )
        await _compare_periods(db, account_id, now)
        await _compare_periods(db, other_id, now)

    run(main, db_url)


def test_totals_follow_campaigns_and_single_sends_over_midnight(server: LiveServer) -> None:
    c = demo_client(server)
    server.clock.set(datetime(2026, 1, 1, 23, 59, 0, tzinfo=UTC))
    r = c.post(
        "/api/campaigns/rcs/send",
        json={
            "phones": [{"number": f"3806612{n:05d}"} for n in range(300)],
            "sender": "demo_agent",
            "options": {"text": "Sale!"},
        },
    )
    assert r.status_code == 200, r.text
    campaign_id = r.json()["data"]["id"]
    assert c.post("/api/messages/rcs/send", json=body("380661230001", "before")).status_code == 200
    server.clock.set(datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC))
    r = c.post(
        "/api/campaigns/rcs/send",
        json={
            "phones": [{"number": f"3806613{n:05d}"} for n in range(200)],
            "sender": "demo_agent",
            "options": {"text": "Sale!"},
        },
    )
    assert r.status_code == 200, r.text
    assert c.post("/api/messages/rcs/send", json=body("380661230002", "after")).status_code == 200
    server.clock.set(datetime(2026, 1, 3, 12, 0, tzinfo=UTC))

    def total(**params: object) -> int:
        r = c.get("/api/messages", params=params)
        assert r.status_code == 200, r.text
        return int(r.json()["meta"]["page"]["total"])

    assert total() == 502
    assert total(**{"filter[campaign_id]": campaign_id}) == 300
    assert total(**{"filter[to]": "2026-01-01 23:59:59"}) == 301
    assert total(**{"filter[from]": "2026-01-02 00:00:00"}) == 201
    assert total(**{"filter[from]": "2026-01-01 23:59:00", "filter[to]": "2026-01-02 00:00:30"}) == 502
    assert total(**{"filter[from]": "2026-01-01 23:59:01", "filter[to]": "2026-01-02 00:00:29"}) == 0
    assert total(**{"filter[from]": "2026-01-02 00:00:00", "filter[to]": "2026-01-03 00:00:00"}) == 201
    page = c.get("/api/messages", params={"sort": "phone", "way": "desc", "page[limit]": 500}).json()
    assert len(page["data"]) == 500 and page["data"][0]["phone"] == 380661399999 - 99999 + 199


def test_day_and_hour_counters_fold_on_postgresql_and_stay_exact(db_url: str) -> None:
    """PostgreSQL appends a counter row per INSERT statement and folds them now and then, at commit;
    whatever the number of rows, a day's and an hour's counters add up to their messages (SQLite
    keeps one row a day and one an hour)."""

    async def main(db: Database) -> None:
        clock = ManualClock(DAY0)
        account_id = await _new_account(db, clock, "a")
        for n in range(130):
            async with db.write() as conn:
                await message_store.insert_message(
                    conn, **_message(account_id, DAY0 + timedelta(seconds=n), n)
                )
        async with db.write() as conn:
            await campaign_store.insert_messages(
                conn, [_message(account_id, DAY0 + timedelta(hours=1), n) for n in range(700)]
            )
        async with db.read() as conn:
            rows, summed = (
                await conn.execute(
                    select(func.count(), func.sum(message_day_counts.c.count)).where(
                        message_day_counts.c.account_id == account_id
                    )
                )
            ).one()
            hour_rows = (
                await conn.execute(
                    select(message_hour_counts.c.hour, func.count(), func.sum(message_hour_counts.c.count))
                    .where(message_hour_counts.c.account_id == account_id)
                    .group_by(message_hour_counts.c.hour)
                    .order_by(message_hour_counts.c.hour)
                )
            ).all()
        assert summed == 830
        assert rows == 1 if db.is_sqlite else rows < 100
        # The same per hour: the 130 single inserts in DAY0's first hour, the campaign in the second.
        assert [(hour, total) for hour, _, total in hour_rows] == [
            (hour_of(DAY0), 130),
            (hour_of(DAY0) + 1, 700),
        ]
        assert all(n == 1 if db.is_sqlite else n < 60 for _, n, _ in hour_rows)
        views, total = await message_queries.list_messages(
            db, ManualClock(DAY0 + timedelta(days=2)), account_id=account_id, where=MessageFilter()
        )
        assert total == 830 and len(views) == 50

    run(main, db_url)


def test_split_of_a_period_into_whole_days_whole_hours_and_ends() -> None:
    d, h = DAY0, hour_of(DAY0)
    hours = timedelta(hours=1)
    assert split(d, d + timedelta(days=1) - TICK) == Split((d.date(), d.date()), ())
    assert split(d, d + timedelta(days=1)) == Split(
        (d.date(), d.date()), ((d + timedelta(days=1),) * 2 + (True,),)
    )
    assert split(d + TICK, d + timedelta(days=1) - TICK) == Split(
        None, ((d + TICK, d + hours, False),), ((h + 1, h + 23),)
    )
    assert split(d + 5 * hours, d + timedelta(days=2, hours=1)) == Split(
        ((d + timedelta(days=1)).date(), (d + timedelta(days=1)).date()),
        ((d + timedelta(days=2, hours=1), d + timedelta(days=2, hours=1), True),),
        ((h + 5, h + 23), (h + 48, h + 48)),
    )
    assert split(d + timedelta(hours=5, minutes=30), d + timedelta(hours=7, minutes=15)) == Split(
        None,
        (
            (d + timedelta(hours=5, minutes=30), d + 6 * hours, False),
            (d + 7 * hours, d + timedelta(hours=7, minutes=15), True),
        ),
        ((h + 6, h + 6),),
    )
    assert split(d + 5 * hours, d + 6 * hours - TICK) == Split(None, (), ((h + 5, h + 5),))
    assert hour_of(datetime(1970, 1, 2, 0, 59, tzinfo=UTC)) == 24


def test_list_entry_is_the_models_json() -> None:
    at = datetime(2026, 5, 1, 10, 30, 15, 123456, tzinfo=UTC)
    common: dict[str, Any] = {
        "reference_id": None,
        "phone": "380661230001",
        "status": "delivered",
        "validity_seconds": 7201,
        "amount_units": 2_500_001,
        "currency": "EUR",
        "sender": "Dëmo",
        "created_at": at,
        "sent_at": at,
        "delivered_at": None,
        "timezone": "Europe/Kyiv",
    }
    views = [
        MessageView(
            id=1,
            type="rcs",
            content={
                "text": 'héllo ✓ "q" \\ \n\t\x01\x7f\u2028 😀',
                "n": 7,
                "cards": [{"a": None, "b": True}],
            },
            **common,
        ),
        MessageView(
            id=2, type="sms", content={"text": "fallback"}, parts=2, campaign_id=9, country="UA", **common
        ),
        MessageView(id=3, type="rcs", content={"text": "x"}, fallback_parts=1, fallback_ids=(4, 5), **common),
        MessageView(id=6, type="rcs", content={}, **{**common, "timezone": "UTC", "delivered_at": at}),
    ]
    expected = MessagesResponse(
        data=[list_item(v) for v in views], meta=Meta(page=PageMeta(total=4, offset=0, limit=15))
    ).model_dump(mode="json")
    rendered = json.dumps(expected, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    assert messages_json(views, total=4, offset=0, limit=15) == rendered.encode()
