"""Embedded mode groups concurrent writers into shared commits, without letting one writer's failure
or an unfinished commit leak into what the others were told."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from rcsgate.store.db import Database


class Boom(Exception):
    pass


async def _database(tmp_path: Path) -> tuple[Database, list[int]]:
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    commits: list[int] = []

    @event.listens_for(db.write_engine.sync_engine, "commit")
    def _count(_conn: Any) -> None:
        commits.append(1)

    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    commits.clear()
    return db, commits


def _committed_rows(path: Path) -> set[int]:
    # A separate plain sqlite3 connection sees only what is committed to the file.
    with sqlite3.connect(path) as other:
        return {n for (n,) in other.execute("SELECT n FROM t")}


async def _scenario_concurrent_writers_share_commits_and_each_returns_after_its_commit(
    tmp_path: Path,
) -> None:
    db, commits = await _database(tmp_path)
    seen_after_return: dict[int, bool] = {}

    async def writer(n: int) -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
            await asyncio.sleep(0)  # let the others queue up behind us
        seen_after_return[n] = n in await asyncio.to_thread(_committed_rows, tmp_path / "g.db")

    await asyncio.gather(*(writer(n) for n in range(100)))
    await db.close()

    assert _committed_rows(tmp_path / "g.db") == set(range(100))
    assert all(seen_after_return.values()), "a writer returned before its work was committed"
    assert 1 <= len(commits) < 20, f"{len(commits)} commits for 100 concurrent writers"


async def _scenario_a_failing_writer_rolls_back_only_its_own_work(tmp_path: Path) -> None:
    db, _ = await _database(tmp_path)

    async def writer(n: int) -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
            await asyncio.sleep(0)
            if n % 7 == 0:
                await conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": 1000 + n})
                raise Boom

    results = await asyncio.gather(*(writer(n) for n in range(50)), return_exceptions=True)
    await db.close()

    failed = {n for n, r in enumerate(results) if isinstance(r, Boom)}
    assert failed == {n for n in range(50) if n % 7 == 0}
    assert not [r for r in results if r is not None and not isinstance(r, Boom)]
    assert _committed_rows(tmp_path / "g.db") == {n for n in range(50) if n % 7 != 0}


async def _scenario_a_lone_writer_commits_at_once(tmp_path: Path) -> None:
    db, commits = await _database(tmp_path)
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
    assert commits == [1]
    assert _committed_rows(tmp_path / "g.db") == {1}
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (n) VALUES (2)"))
    assert len(commits) == 2
    await db.close()


async def _scenario_a_cancelled_waiter_does_not_strand_the_group(tmp_path: Path) -> None:
    db, _ = await _database(tmp_path)
    release = asyncio.Event()

    async def first() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
            await release.wait()

    async def second() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (2)"))

    one = asyncio.create_task(first())
    await asyncio.sleep(0.01)
    two = asyncio.create_task(second())
    await asyncio.sleep(0.01)
    release.set()  # first leaves the commit to the queued second...
    await asyncio.sleep(0)
    two.cancel()  # ...which is cancelled before it gets the lock
    await asyncio.wait_for(one, timeout=5)
    await asyncio.gather(two, return_exceptions=True)
    await db.close()
    assert 1 in _committed_rows(tmp_path / "g.db")


def test_concurrent_writers_share_commits_and_each_returns_after_its_commit(tmp_path: Path) -> None:
    asyncio.run(_scenario_concurrent_writers_share_commits_and_each_returns_after_its_commit(tmp_path))


def test_a_failing_writer_rolls_back_only_its_own_work(tmp_path: Path) -> None:
    asyncio.run(_scenario_a_failing_writer_rolls_back_only_its_own_work(tmp_path))


def test_a_lone_writer_commits_at_once(tmp_path: Path) -> None:
    asyncio.run(_scenario_a_lone_writer_commits_at_once(tmp_path))


def test_a_cancelled_waiter_does_not_strand_the_group(tmp_path: Path) -> None:
    asyncio.run(_scenario_a_cancelled_waiter_does_not_strand_the_group(tmp_path))
