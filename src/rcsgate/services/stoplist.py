"""Stop lists: numbers an account must not message on a channel (checked when a request asks to)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.rcs_content import is_valid_phone
from rcsgate.store.db import Database
from rcsgate.store.tables import stop_list

TYPES = ("sms", "rcs", "viber", "whatsapp")


def _check(phones: list[str], list_type: str) -> list[str]:
    if list_type not in TYPES:
        raise InvalidInput.field("type", "The selected type is invalid.")
    cleaned = [p.lstrip("+") for p in phones]
    bad = [p for p in cleaned if not is_valid_phone(p)]
    if bad:
        raise InvalidInput.field("phones", f"Not a phone number: {bad[0]}")
    return list(dict.fromkeys(cleaned))


async def attach(db: Database, clock: Clock, *, account_id: int, phones: list[str], list_type: str) -> None:
    cleaned = _check(phones, list_type)
    if not cleaned:
        return
    now = clock.now()
    async with db.write() as conn:
        insert = sqlite_insert if db.is_sqlite else pg_insert
        rows = [{"account_id": account_id, "type": list_type, "phone": p, "created_at": now} for p in cleaned]
        await conn.execute(insert(stop_list).values(rows).on_conflict_do_nothing())


async def detach(db: Database, *, account_id: int, phones: list[str], list_type: str) -> None:
    cleaned = _check(phones, list_type)
    async with db.write() as conn:
        await conn.execute(
            delete(stop_list).where(
                stop_list.c.account_id == account_id,
                stop_list.c.type == list_type,
                stop_list.c.phone.in_(cleaned),
            )
        )
