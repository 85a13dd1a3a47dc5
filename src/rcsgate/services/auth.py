"""API keys and bearer tokens.

A token names the key it was issued from, and every request checks that key is
still live: revoking a key cuts off all tokens issued from it at once, at the
cost of one indexed lookup per request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import jwt

from rcsgate.clock import Clock
from rcsgate.domain.api_keys import Mode, display_prefix, hash_api_key, looks_like_api_key, new_api_key
from rcsgate.domain.errors import NotFound, Unauthenticated
from rcsgate.domain.records import ApiKeyInfo, Principal
from rcsgate.store import accounts as store
from rcsgate.store.db import Database

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: the only moment its plain text exists."""

    key: str
    info: ApiKeyInfo


async def create_key(
    db: Database, clock: Clock, *, account_id: int, mode: Mode | None = None, label: str | None = None
) -> NewKey:
    async with db.write() as conn:
        account = await store.get_account(conn, account_id)
        if account is None:
            raise NotFound(f"Account {account_id} was not found.")
        key_mode: Mode = mode or account.mode
        key = new_api_key(key_mode)
        key_id = await store.insert_api_key(
            conn,
            account_id=account_id,
            prefix=display_prefix(key),
            key_hash=hash_api_key(key),
            mode=key_mode,
            label=label,
            created_at=clock.now(),
        )
        info = await store.get_api_key(conn, key_id)
    assert info is not None
    return NewKey(key=key, info=info)


async def list_keys(db: Database, *, account_id: int) -> list[ApiKeyInfo]:
    async with db.read() as conn:
        if await store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} was not found.")
        return await store.list_api_keys(conn, account_id)


async def revoke_key(db: Database, clock: Clock, *, key_id: int, account_id: int | None = None) -> ApiKeyInfo:
    """Revoke a key (and every token issued from it); with ``account_id``, only that account's."""
    async with db.write() as conn:
        found = await store.get_api_key(conn, key_id)
        if found is None or (account_id is not None and found.account_id != account_id):
            raise NotFound(f"API key {key_id} was not found.")
        await store.revoke_api_key(conn, key_id, clock.now())
        info = await store.get_api_key(conn, key_id)
    assert info is not None
    return info


async def key_is_live(db: Database, key: str) -> bool:
    if not looks_like_api_key(key):
        return False
    async with db.read() as conn:
        return await store.principal_by_hash(conn, hash_api_key(key)) is not None


async def principal_for_key(db: Database, key: str) -> Principal:
    if not looks_like_api_key(key):
        raise Unauthenticated()
    async with db.read() as conn:
        principal = await store.principal_by_hash(conn, hash_api_key(key))
    if principal is None:
        raise Unauthenticated()
    return principal


class TokenIssuer:
    # Checking a signature costs more than the rest of a send's request handling; a token that
    # verified once is the same bytes next time, so its claims are kept (expiry is still checked).
    VERIFIED_CACHE = 10_000

    def __init__(self, *, secret: str, ttl_seconds: int, clock: Clock) -> None:
        self._verified: dict[str, tuple[int, int, int]] = {}
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def issue(self, principal: Principal) -> str:
        now = self._clock.now()
        claims = {
            "sub": str(principal.account_id),
            "kid": principal.key_id,
            "mode": principal.mode,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> tuple[int, int]:
        """(account id, key id) of a well-signed, unexpired token; anything else is Unauthenticated."""
        known = self._verified.get(token)
        if known is None:
            known = self._verify(token)
            if len(self._verified) >= self.VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = known
        account_id, key_id, expires = known
        # Expiry is checked against the injected clock, not the wall clock, so tests can move time.
        if expires <= int(self._clock.now().timestamp()):
            raise Unauthenticated("Token has expired.")
        return account_id, key_id

    def _verify(self, token: str) -> tuple[int, int, int]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "kid"], "verify_exp": False},
            )
            account_id = int(claims["sub"])
            key_id = int(claims["kid"])
            expires = int(claims["exp"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise Unauthenticated() from exc
        return account_id, key_id, expires


async def login(db: Database, issuer: TokenIssuer, *, api_key: str) -> str:
    return issuer.issue(await principal_for_key(db, api_key))


async def principal_for_token(db: Database, issuer: TokenIssuer, token: str) -> Principal:
    account_id, key_id = issuer.decode(token)
    async with db.read() as conn:
        principal = await store.principal_by_key_id(conn, key_id, account_id)
    if principal is None:
        raise Unauthenticated()
    return principal


async def refresh(db: Database, issuer: TokenIssuer, token: str) -> str:
    return issuer.issue(await principal_for_token(db, issuer, token))
