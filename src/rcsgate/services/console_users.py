"""The web console's users and their sessions. Each function owns its transaction.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher``, its RFC 9106 low-memory
profile by default), off the event loop. A session is a random token in an HttpOnly cookie; the
database keeps only its SHA-256, with the session's CSRF token. Sessions last ``SESSION_IDLE``
since the last request, at most ``SESSION_MAX`` since sign-in; disabling a user or changing their
password ends their sessions.

Failed sign-ins are counted per email and per client address: past ``FREE_FAILURES`` in a row
(within ``FAILURE_MEMORY`` of each other), each further failure blocks that subject for twice as long
as the one before (1 s, 2 s, 4 s … up to ``MAX_BLOCK``), and an attempt during a block is refused
without its password being checked.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound, RateLimited, Unauthenticated
from rcsgate.store import accounts as account_store
from rcsgate.store import console as store
from rcsgate.store.db import Database

SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
# A session's expiry moves on at most once per this long (one write, not one per request).
SESSION_TOUCH = timedelta(minutes=5)

FREE_FAILURES = {"email": 5, "ip": 20}
FAILURE_MEMORY = timedelta(minutes=15)
MAX_BLOCK = timedelta(minutes=15)

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_EMAIL = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

WRONG_CREDENTIALS = "The email or password is incorrect."

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the email is unknown, so an answer takes as long whether the email exists or not."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """Who is signed in to the console: every screen shows only ``account_id``'s objects."""

    id: int
    account_id: int
    email: str


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    account_id: int
    email: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``token`` goes in the cookie (only now, at sign-in, is it known)."""

    user: ConsoleUser
    csrf_token: str
    token: str = ""


def _info(row: store.UserRow) -> UserInfo:
    return UserInfo(
        id=row.id,
        account_id=row.account_id,
        email=row.email,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _check_email(email: str) -> str:
    email = normalize_email(email)
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise InvalidInput.field("email", "The email must be a valid email address.")
    return email


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput.field(
            "password", f"The password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters."
        )
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A random password for a generated user (``rcsgate demo``): 20 URL-safe characters."""
    return secrets.token_urlsafe(15)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------------ users


async def create_user(db: Database, clock: Clock, *, account_id: int, email: str, password: str) -> UserInfo:
    email = _check_email(email)
    password_hash = await hash_password(_check_password(password))
    now = clock.now()
    async with db.write() as conn:
        if await account_store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} was not found.")
        if await store.user_by_email(conn, email) is not None:
            raise InvalidInput.field("email", "A user with this email already exists.")
        user_id = await store.insert_user(
            conn,
            account_id=account_id,
            email=email,
            password_hash=password_hash,
            created_at=now,
            password_changed_at=now,
        )
        row = await store.get_user(conn, user_id)
    assert row is not None
    return _info(row)


async def find_user(db: Database, *, email: str) -> UserInfo | None:
    async with db.read() as conn:
        row = await store.user_by_email(conn, normalize_email(email))
    return _info(row) if row else None


async def list_users(db: Database, *, account_id: int | None = None) -> list[UserInfo]:
    async with db.read() as conn:
        return [_info(r) for r in await store.list_users(conn, account_id)]


async def _user_by_email(conn: AsyncConnection, email: str) -> store.UserRow:
    row = await store.user_by_email(conn, normalize_email(email))
    if row is None:
        raise NotFound(f"User {normalize_email(email)} was not found.")
    return row


async def set_disabled(db: Database, clock: Clock, *, email: str, disabled: bool) -> UserInfo:
    """Disable (ending every session) or enable a user."""
    async with db.write() as conn:
        row = await _user_by_email(conn, email)
        await store.update_user(conn, row.id, disabled_at=clock.now() if disabled else None)
        if disabled:
            await store.delete_user_sessions(conn, row.id)
        updated = await store.get_user(conn, row.id)
    assert updated is not None
    return _info(updated)


async def set_password(db: Database, clock: Clock, *, email: str, password: str) -> UserInfo:
    """Set a user's password; their sessions end (sign in again with the new one)."""
    password_hash = await hash_password(_check_password(password))
    async with db.write() as conn:
        row = await _user_by_email(conn, email)
        await store.update_user(conn, row.id, password_hash=password_hash, password_changed_at=clock.now())
        await store.delete_user_sessions(conn, row.id)
        updated = await store.get_user(conn, row.id)
    assert updated is not None
    return _info(updated)


# ------------------------------------------------------------------ sign-in and sessions


def _subjects(email: str, client: str | None) -> list[str]:
    subjects = [f"email:{email}"]
    if client:
        subjects.append(f"ip:{client}")
    return subjects


def _block(failures: int, kind: str, now: datetime) -> datetime | None:
    excess = failures - FREE_FAILURES[kind]
    if excess < 0:
        return None
    return now + min(timedelta(seconds=2 ** min(excess, 20)), MAX_BLOCK)


async def _check_blocked(db: Database, subjects: list[str], now: datetime) -> None:
    async with db.read() as conn:
        rows = await store.get_failures(conn, subjects)
    waits = [
        (row.blocked_until - now).total_seconds()
        for row in rows.values()
        if row.blocked_until is not None and row.blocked_until > now
    ]
    if waits:
        seconds = max(1, int(max(waits) + 0.999))
        raise RateLimited(
            f"Too many failed sign-ins. Try again in {seconds} second{'s' if seconds != 1 else ''}.",
            retry_after=seconds,
        )


async def _record_failure(db: Database, subjects: list[str], now: datetime) -> None:
    async with db.write() as conn:
        for subject in subjects:
            await store.ensure_failure_row(conn, subject, now=now)
            row = await store.lock_failures(conn, subject)
            failures = row.failures + 1 if now - row.last_failure_at <= FAILURE_MEMORY else 1
            kind = subject.split(":", 1)[0]
            await store.set_failures(
                conn, subject, failures=failures, now=now, blocked_until=_block(failures, kind, now)
            )


async def sign_in(
    db: Database, clock: Clock, *, email: str, password: str, client: str | None = None
) -> Session:
    """A new session for the user with this email and password. Raises RateLimited while the email
    (or the client address) is blocked after repeated failures, else Unauthenticated on a wrong
    email or password (without telling which)."""
    email = normalize_email(email)[: MAX_EMAIL + 1]
    subjects = _subjects(email, client)
    await _check_blocked(db, subjects, clock.now())
    async with db.read() as conn:
        row = await store.user_by_email(conn, email)
    known = row is not None and row.disabled_at is None
    stored = row.password_hash if row is not None and known else await asyncio.to_thread(_dummy_hash)
    ok = await asyncio.to_thread(_verify, stored, password[:MAX_PASSWORD]) and known
    now = clock.now()
    if not ok or row is None:
        await _record_failure(db, subjects, now)
        raise Unauthenticated(WRONG_CREDENTIALS)
    rehash = await hash_password(password) if _hasher.check_needs_rehash(row.password_hash) else None
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    async with db.write() as conn:
        await store.clear_failures(conn, subjects[0])
        await store.purge_failures(conn, before=now - timedelta(days=1))
        await store.purge_sessions(conn, now=now)
        if rehash is not None:
            await store.update_user(conn, row.id, password_hash=rehash)
        await store.insert_session(
            conn,
            token_hash=_token_hash(token),
            user_id=row.id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_IDLE,
        )
    user = ConsoleUser(id=row.id, account_id=row.account_id, email=row.email)
    return Session(user=user, csrf_token=csrf_token, token=token)


async def session_for_token(db: Database, clock: Clock, token: str) -> Session | None:
    """The live session the cookie's token names, its expiry moved on; None if there is none."""
    if not token or len(token) > 100:
        return None
    token_hash = _token_hash(token)
    async with db.read() as conn:
        row = await store.session_by_hash(conn, token_hash)
    now = clock.now()
    if row is None or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= SESSION_TOUCH:
        expires_at = min(now + SESSION_IDLE, row.created_at + SESSION_MAX)
        async with db.write() as conn:
            await store.touch_session(conn, token_hash, now=now, expires_at=expires_at)
    user = ConsoleUser(id=row.user_id, account_id=row.account_id, email=row.email)
    return Session(user=user, csrf_token=row.csrf_token)


async def sign_out(db: Database, token: str) -> None:
    if token and len(token) <= 100:
        async with db.write() as conn:
            await store.delete_session(conn, _token_hash(token))


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())
