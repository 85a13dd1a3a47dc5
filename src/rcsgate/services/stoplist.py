"""Stop lists: numbers an account must not message on a channel (checked when a request asks to).

A phone may be on several lists (sms, rcs, viber, whatsapp); the API shows one entry per phone with a flag
per list. An entry's id is its phone number read as an integer: stable, unique within the account, needing
no column of its own, and mapping straight back to the phone when a client detaches by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.phones import normalize_phone
from rcsgate.services.contact_book import (
    EQUAL,
    ORDERED,
    TEXTUAL,
    Criterion,
    FieldSpec,
    Page,
    Shown,
    account_timezone,
    search_matches,
)
from rcsgate.store import contact_book as store
from rcsgate.store.contact_book import StopListEntry
from rcsgate.store.db import Database

TYPES: Final = store.STOP_LIST_TYPES
ATTACH_PHONES_MAX: Final = 1000
DETACH_IDS_MAX: Final = 200
DETACH_PHONES_MAX: Final = 1000

SEARCH_FIELDS: Final = {
    "id": FieldSpec(ORDERED, "int"),
    "phone": FieldSpec(TEXTUAL, "phone"),
    "created_at": FieldSpec(ORDERED, "time"),
    "type": FieldSpec(EQUAL, "list_type"),
}


def entry_id(phone: str) -> int:
    return int(phone)


def _check(phones: list[str], list_type: str) -> list[str]:
    if list_type not in TYPES:
        raise InvalidInput.field("type", "The selected type is invalid.")
    cleaned = [normalize_phone(p) for p in phones]
    bad = [p for p, c in zip(phones, cleaned, strict=True) if c is None]
    if bad:
        raise InvalidInput.field("phones", f"Not a phone number: {bad[0]}")
    return list(dict.fromkeys(c for c in cleaned if c is not None))


def _types(list_types: Sequence[str]) -> list[str]:
    if not list_types:
        raise InvalidInput.field("types", "The types field is required.")
    errors = {
        f"types.{i}": [f"The selected types.{i} is invalid."]
        for i, t in enumerate(list_types)
        if t not in TYPES
    }
    if errors:
        raise InvalidInput(errors)
    return list(dict.fromkeys(list_types))


def _phones(phones: Sequence[str | int], field_name: str, most: int) -> list[str]:
    if len(phones) > most:
        raise InvalidInput.field(field_name, f"The {field_name} may not have more than {most} items.")
    cleaned = [normalize_phone(p) for p in phones]
    errors = {
        f"{field_name}.{i}": [f"The {field_name}.{i} format is invalid."]
        for i, c in enumerate(cleaned)
        if c is None
    }
    if errors:
        raise InvalidInput(errors)
    return list(dict.fromkeys(c for c in cleaned if c is not None))


async def attach(db: Database, clock: Clock, *, account_id: int, phones: list[str], list_type: str) -> None:
    cleaned = _check(phones, list_type)
    if not cleaned:
        return
    async with db.write() as conn:
        await store.add_to_stop_lists(
            conn, account_id=account_id, phones=cleaned, list_types=[list_type], now=clock.now()
        )


async def detach(db: Database, *, account_id: int, phones: list[str], list_type: str) -> None:
    cleaned = _check(phones, list_type)
    async with db.write() as conn:
        await store.remove_from_stop_lists(
            conn, account_id=account_id, phones=cleaned, list_types=[list_type]
        )


async def add_entries(
    db: Database, clock: Clock, *, account_id: int, phones: Sequence[str | int], list_types: Sequence[str]
) -> Shown[list[StopListEntry]]:
    """Put the phones on every given list; answers each phone's entry as it now is, in request order."""
    cleaned = _phones(phones, "phones", ATTACH_PHONES_MAX)
    wanted_types = _types(list_types)
    async with db.write() as conn:
        await store.add_to_stop_lists(
            conn, account_id=account_id, phones=cleaned, list_types=wanted_types, now=clock.now()
        )
        entries = await store.stop_list_entries(conn, account_id, cleaned)
        tz = await account_timezone(conn, account_id)
    return Shown([entries[p] for p in cleaned], tz)


async def remove_entries(
    db: Database,
    *,
    account_id: int,
    ids: Sequence[int] = (),
    phones: Sequence[str | int] = (),
    list_types: Sequence[str],
) -> None:
    """Take entries (by id, or by phone) off the given lists; an entry that is not there is fine."""
    if not ids and not phones:
        raise InvalidInput.field("ids", "The ids field is required.")
    if len(ids) > DETACH_IDS_MAX:
        raise InvalidInput.field("ids", f"The ids may not have more than {DETACH_IDS_MAX} items.")
    by_id = _phones(ids, "ids", DETACH_IDS_MAX)
    wanted = list(dict.fromkeys([*by_id, *_phones(phones, "phones", DETACH_PHONES_MAX)]))
    wanted_types = _types(list_types)
    async with db.write() as conn:
        await store.remove_from_stop_lists(
            conn, account_id=account_id, phones=wanted, list_types=wanted_types
        )


async def list_entries(
    db: Database, *, account_id: int, list_type: str | None = None, offset: int, limit: int
) -> Page[StopListEntry]:
    """Every stop-listed phone of the account by id; with ``list_type``, those on that list."""
    if list_type is not None and list_type not in TYPES:
        raise InvalidInput.field("type", "The selected type is invalid.")
    matches = [store.Match("type", "=", list_type)] if list_type else []
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        items, total = await store.stop_list_page(
            conn, account_id=account_id, matches=matches, offset=offset, limit=limit
        )
    return Page(items, total, tz)


async def search_entries(
    db: Database,
    *,
    account_id: int,
    criteria: Sequence[Criterion],
    group_id: int | None = None,
    descending: bool = False,
    offset: int,
    limit: int,
) -> Page[StopListEntry]:
    """Phones having one entry that meets every criterion; with ``group_id``, only the list's contacts."""
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        shown, matches = search_matches(criteria, SEARCH_FIELDS, tz)
        items, total = await store.stop_list_page(
            conn,
            account_id=account_id,
            matches=matches,
            group_id=group_id,
            descending=descending,
            offset=offset,
            limit=limit,
        )
    return Page(items, total, tz, shown)
