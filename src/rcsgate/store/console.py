"""Queries on the web console's users, sessions and failed sign-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import console_sessions, console_sign_in_failures, console_users

_u = console_users.c
_s = console_sessions.c
_f = console_sign_in_failures.c


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    account_id: int
    email: str
    password_hash: str
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_id: int
    account_id: int
    email: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class FailureRow:
    failures: int
    last_failure_at: datetime
    blocked_until: datetime | None


def _user(row: Any) -> UserRow:
    return UserRow(
        id=int(row.id),
        account_id=int(row.account_id),
        email=row.email,
        password_hash=row.password_hash,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        disabled_at=row.disabled_at,
    )


# ------------------------------------------------------------------ users


async def insert_user(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(console_users).values(**values).returning(_u.id))
    return int(result.scalar_one())


async def get_user(conn: AsyncConnection, user_id: int) -> UserRow | None:
    row = (await conn.execute(select(console_users).where(_u.id == user_id))).first()
    return _user(row) if row else None


async def user_by_email(conn: AsyncConnection, email: str) -> UserRow | None:
    row = (await conn.execute(select(console_users).where(_u.email == email))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection, account_id: int | None = None) -> list[UserRow]:
    query = select(console_users).order_by(_u.id)
    if account_id is not None:
        query = query.where(_u.account_id == account_id)
    return [_user(r) for r in await conn.execute(query)]


async def update_user(conn: AsyncConnection, user_id: int, **values: Any) -> bool:
    result = await conn.execute(update(console_users).where(_u.id == user_id).values(**values))
    return bool(result.rowcount == 1)


# ------------------------------------------------------------------ sessions


async def insert_session(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(console_sessions).values(**values))


async def session_by_hash(conn: AsyncConnection, token_hash: str) -> SessionRow | None:
    """The live user's session under this token hash (a disabled user's sessions are not found)."""
    row = (
        await conn.execute(
            select(
                _s.user_id,
                _u.account_id,
                _u.email,
                _s.csrf_token,
                _s.created_at,
                _s.last_seen_at,
                _s.expires_at,
            )
            .select_from(console_sessions.join(console_users, _u.id == _s.user_id))
            .where(_s.token_hash == token_hash, _u.disabled_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return SessionRow(
        user_id=int(row.user_id),
        account_id=int(row.account_id),
        email=row.email,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
    )


async def touch_session(
    conn: AsyncConnection, token_hash: str, *, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        update(console_sessions)
        .where(_s.token_hash == token_hash)
        .values(last_seen_at=now, expires_at=expires_at)
    )


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(console_sessions).where(_s.token_hash == token_hash))


async def delete_user_sessions(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(console_sessions).where(_s.user_id == user_id))


async def purge_sessions(conn: AsyncConnection, *, now: datetime) -> None:
    await conn.execute(delete(console_sessions).where(_s.expires_at <= now))


# ------------------------------------------------------------------ failed sign-ins


async def get_failures(conn: AsyncConnection, subjects: list[str]) -> dict[str, FailureRow]:
    rows = await conn.execute(select(console_sign_in_failures).where(_f.subject.in_(subjects)))
    return {
        r.subject: FailureRow(
            failures=int(r.failures), last_failure_at=r.last_failure_at, blocked_until=r.blocked_until
        )
        for r in rows
    }


async def ensure_failure_row(conn: AsyncConnection, subject: str, *, now: datetime) -> None:
    """A row for ``subject`` (0 failures) unless one exists; concurrent callers never conflict."""
    values = {"subject": subject, "failures": 0, "last_failure_at": now, "blocked_until": None}
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(console_sign_in_failures).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(console_sign_in_failures).values(**values).on_conflict_do_nothing()
    await conn.execute(stmt)


async def lock_failures(conn: AsyncConnection, subject: str) -> FailureRow:
    query = select(console_sign_in_failures).where(_f.subject == subject)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).one()
    return FailureRow(
        failures=int(row.failures), last_failure_at=row.last_failure_at, blocked_until=row.blocked_until
    )


async def set_failures(
    conn: AsyncConnection, subject: str, *, failures: int, now: datetime, blocked_until: datetime | None
) -> None:
    await conn.execute(
        update(console_sign_in_failures)
        .where(_f.subject == subject)
        .values(failures=failures, last_failure_at=now, blocked_until=blocked_until)
    )


async def clear_failures(conn: AsyncConnection, subject: str) -> None:
    await conn.execute(delete(console_sign_in_failures).where(_f.subject == subject))


async def purge_failures(conn: AsyncConnection, *, before: datetime) -> None:
    await conn.execute(delete(console_sign_in_failures).where(_f.last_failure_at < before))
