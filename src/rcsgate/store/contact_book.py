"""Queries of the contact book, contact lists (groups) and stop-list listings. Every query is scoped by account.

Searches arrive as ``Match`` values that the services have already validated and typed; this module only
knows how each searchable field maps onto SQL.
"""

from __future__ import annotations

import json
import operator as op
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import UnaryExpression

from rcsgate.store.tables import contact_group_members as members
from rcsgate.store.tables import contact_groups as groups
from rcsgate.store.tables import contacts, stop_list

STOP_LIST_TYPES: Final = ("sms", "rcs", "viber", "whatsapp")

Operator = Literal["like", "=", ">", ">=", "<", "<="]
Value = int | str | datetime
ContactSort = Literal["id", "phone"]
GroupSort = Literal["id", "items", "name", "description", "created_at"]

# Rows per multi-row INSERT: both drivers cap one statement at ~32k bound parameters.
_CHUNK: Final = 5000
# Namespace of the per-account advisory lock that serialises contact-book writes on PostgreSQL.
_LOCK_NAMESPACE: Final = 0x0C0B


@dataclass(frozen=True, slots=True)
class Match:
    """One validated search condition. ``field`` is a searchable field of the entity (a custom contact field
    is ``"field:<id>"``); ``value`` already has the field's type: int, str, or an aware UTC datetime."""

    field: str
    operator: Operator
    value: Value


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: int
    name: str
    description: str | None
    is_default: bool
    created_at: datetime
    items: int
    stop_list_count: int


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    phone: str
    fields: tuple[tuple[int, str], ...]
    created_at: datetime
    groups: tuple[GroupRecord, ...]


@dataclass(frozen=True, slots=True)
class StopListEntry:
    """One phone of an account's stop lists, with the list types it is on."""

    phone: str
    created_at: datetime
    types: frozenset[str]


# ------------------------------------------------------------------ shared pieces

_COMPARE: Final[dict[str, Callable[[Any, Any], ColumnElement[bool]]]] = {
    "=": op.eq,
    ">": op.gt,
    ">=": op.ge,
    "<": op.lt,
    "<=": op.le,
}


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compare(column: ColumnElement[Any], operator: Operator, value: Value) -> ColumnElement[bool]:
    if operator == "like":
        # "like" is a case-insensitive "contains"; the client's % and _ are literal characters.
        pattern = f"%{_escape_like(str(value).lower())}%"
        return func.lower(column).like(pattern, escape="\\")
    return _COMPARE[operator](column, value)


def _phone_order(column: ColumnElement[Any], descending: bool) -> list[UnaryExpression[Any]]:
    # Digits-only phones without a leading zero sort numerically by length first, then as text.
    keys = [func.length(column), column]
    return [k.desc() for k in keys] if descending else [k.asc() for k in keys]


def _insert_for(conn: AsyncConnection) -> Any:
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


async def lock_account(conn: AsyncConnection, account_id: int) -> None:
    """Serialise this account's contact-book writes until the transaction ends (rules such as unique list
    names are checked by reading first). SQLite's write transactions are serial already."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
            {"namespace": _LOCK_NAMESPACE, "key": account_id % 2_147_483_647},
        )


async def owned_ids(
    conn: AsyncConnection, kind: Literal["contacts", "groups"], account_id: int, ids: Sequence[int]
) -> set[int]:
    table = contacts if kind == "contacts" else groups
    if not ids:
        return set()
    rows = await conn.execute(select(table.c.id).where(table.c.account_id == account_id, table.c.id.in_(ids)))
    return {int(r[0]) for r in rows}


# ------------------------------------------------------------------ groups


def _items(group_id: ColumnElement[Any]) -> Any:
    return select(func.count()).select_from(members).where(members.c.group_id == group_id).scalar_subquery()


def _stop_listed(group_id: ColumnElement[Any]) -> Any:
    # Listing every type lets PostgreSQL probe the (account_id, type, phone) primary key instead of scanning.
    on_a_list = exists().where(
        stop_list.c.account_id == contacts.c.account_id,
        stop_list.c.type.in_(STOP_LIST_TYPES),
        stop_list.c.phone == contacts.c.phone,
    )
    return (
        select(func.count())
        .select_from(members.join(contacts, contacts.c.id == members.c.contact_id))
        .where(members.c.group_id == group_id, on_a_list)
        .scalar_subquery()
    )


def _group_select() -> Select[Any]:
    return select(
        groups,
        _items(groups.c.id).label("items"),
        _stop_listed(groups.c.id).label("stop_list_count"),
    )


def _group(row: Any) -> GroupRecord:
    return GroupRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        is_default=bool(row.is_default),
        created_at=row.created_at,
        items=int(row.items),
        stop_list_count=int(row.stop_list_count),
    )


def _group_condition(match: Match) -> ColumnElement[bool]:
    if match.field == "items":
        return _compare(_items(groups.c.id), match.operator, match.value)
    if match.field == "phone":
        return exists(
            select(literal(1))
            .select_from(members.join(contacts, contacts.c.id == members.c.contact_id))
            .where(members.c.group_id == groups.c.id, _compare(contacts.c.phone, match.operator, match.value))
        )
    column = {
        "id": groups.c.id,
        "name": groups.c.name,
        "description": groups.c.description,
        "created_at": groups.c.created_at,
    }[match.field]
    return _compare(column, match.operator, match.value)


def _group_order(sort: GroupSort, descending: bool) -> list[UnaryExpression[Any]]:
    column: Any = _items(groups.c.id) if sort == "items" else groups.c[sort]
    # NULL descriptions sort first ascending on both engines (PostgreSQL would put them last).
    first = column.desc().nulls_last() if descending else column.asc().nulls_first()
    tie = groups.c.id.desc() if descending else groups.c.id.asc()
    return [first, tie]


async def group_page(
    conn: AsyncConnection,
    *,
    account_id: int,
    matches: Sequence[Match] = (),
    sort: GroupSort = "id",
    descending: bool = False,
    offset: int,
    limit: int,
) -> tuple[list[GroupRecord], int]:
    conditions = [groups.c.account_id == account_id, *(_group_condition(m) for m in matches)]
    total = (await conn.execute(select(func.count()).select_from(groups).where(*conditions))).scalar_one()
    query = _group_select().where(*conditions).order_by(*_group_order(sort, descending))
    rows = await conn.execute(query.offset(offset).limit(limit))
    return [_group(r) for r in rows], int(total)


async def groups_by_id(conn: AsyncConnection, account_id: int, ids: Iterable[int]) -> dict[int, GroupRecord]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = _group_select().where(groups.c.account_id == account_id, groups.c.id.in_(wanted))
    return {r.id: _group(r) for r in await conn.execute(query)}


async def group_name_taken(
    conn: AsyncConnection, account_id: int, name: str, *, other_than: int | None
) -> bool:
    query = select(groups.c.id).where(
        groups.c.account_id == account_id, func.lower(groups.c.name) == name.lower()
    )
    if other_than is not None:
        query = query.where(groups.c.id != other_than)
    return (await conn.execute(query.limit(1))).first() is not None


async def insert_group(
    conn: AsyncConnection,
    *,
    account_id: int,
    name: str,
    description: str | None,
    is_default: bool,
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(groups)
        .values(
            account_id=account_id, name=name, description=description, is_default=is_default, created_at=now
        )
        .returning(groups.c.id)
    )
    return int(result.scalar_one())


async def update_group(
    conn: AsyncConnection, *, account_id: int, group_id: int, values: dict[str, Any]
) -> None:
    await conn.execute(
        update(groups).where(groups.c.account_id == account_id, groups.c.id == group_id).values(**values)
    )


async def clear_default_group(conn: AsyncConnection, *, account_id: int, except_id: int) -> None:
    await conn.execute(
        update(groups)
        .where(groups.c.account_id == account_id, groups.c.id != except_id, groups.c.is_default.is_(True))
        .values(is_default=False)
    )


async def delete_group(conn: AsyncConnection, *, account_id: int, group_id: int) -> bool:
    # Memberships go with the group (ON DELETE CASCADE); the contacts stay in the book.
    result = await conn.execute(
        delete(groups).where(groups.c.account_id == account_id, groups.c.id == group_id)
    )
    return result.rowcount == 1


# ------------------------------------------------------------------ memberships


async def membership_counts(conn: AsyncConnection, contact_ids: Sequence[int]) -> dict[int, int]:
    if not contact_ids:
        return {}
    rows = await conn.execute(
        select(members.c.contact_id, func.count())
        .where(members.c.contact_id.in_(contact_ids))
        .group_by(members.c.contact_id)
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def existing_memberships(
    conn: AsyncConnection, contact_ids: Sequence[int], group_ids: Sequence[int]
) -> set[tuple[int, int]]:
    """(contact id, group id) pairs that already exist among the given ones."""
    rows = await conn.execute(
        select(members.c.contact_id, members.c.group_id).where(
            members.c.contact_id.in_(contact_ids), members.c.group_id.in_(group_ids)
        )
    )
    return {(int(r[0]), int(r[1])) for r in rows}


async def add_memberships(conn: AsyncConnection, pairs: Iterable[tuple[int, int]]) -> None:
    """Insert (contact id, group id) pairs; existing ones stay as they are. Callers own both ids."""
    rows = [{"contact_id": c, "group_id": g} for c, g in pairs]
    statement = _insert_for(conn)(members)
    for chunk in _chunks(rows):
        await conn.execute(statement.values(list(chunk)).on_conflict_do_nothing())


async def remove_memberships(
    conn: AsyncConnection, contact_ids: Sequence[int], group_ids: Sequence[int]
) -> None:
    await conn.execute(
        delete(members).where(members.c.contact_id.in_(contact_ids), members.c.group_id.in_(group_ids))
    )


async def set_memberships(conn: AsyncConnection, contact_id: int, group_ids: Sequence[int]) -> None:
    """Make the contact a member of exactly these groups (which the caller owns)."""
    keep = list(group_ids)
    removal = delete(members).where(members.c.contact_id == contact_id)
    if keep:
        removal = removal.where(members.c.group_id.not_in(keep))
    await conn.execute(removal)
    await add_memberships(conn, ((contact_id, g) for g in keep))


# ------------------------------------------------------------------ contacts


def encode_fields(fields: Sequence[tuple[int, str]]) -> str | None:
    if not fields:
        return None
    return json.dumps([{"id": i, "value": v} for i, v in sorted(fields)], ensure_ascii=False)


def _decode_fields(raw: str | None) -> tuple[tuple[int, str], ...]:
    if not raw:
        return ()
    return tuple((int(item["id"]), str(item["value"])) for item in json.loads(raw))


def _custom_field(dialect: str, field_id: int, operator: Operator, value: Value) -> ColumnElement[bool]:
    """The contact has custom field ``field_id`` with a value matching; fields are a JSON text column."""
    entry_id: Any
    wanted_id: Any
    entry_value: Any
    if dialect == "sqlite":
        entries = func.json_each(contacts.c.fields).table_valued("value")
        entry_id, wanted_id = func.json_extract(entries.c.value, "$.id"), field_id
        entry_value = func.json_extract(entries.c.value, "$.value")
    else:
        entries = func.json_array_elements(cast(contacts.c.fields, JSON)).table_valued("value")
        # ->> yields text on PostgreSQL, so the id is compared as text.
        entry_id, wanted_id = entries.c.value.op("->>")("id"), str(field_id)
        entry_value = entries.c.value.op("->>")("value")
    return exists(
        select(literal(1))
        .select_from(entries)
        .where(entry_id == wanted_id, _compare(entry_value, operator, value))
    )


def _contact_condition(dialect: str, match: Match) -> ColumnElement[bool]:
    if match.field.startswith("field:"):
        return _custom_field(dialect, int(match.field.removeprefix("field:")), match.operator, match.value)
    if match.field == "group_id":
        in_group = select(members.c.contact_id).where(
            _compare(members.c.group_id, match.operator, match.value)
        )
        return contacts.c.id.in_(in_group)
    column = {"id": contacts.c.id, "phone": contacts.c.phone, "created_at": contacts.c.created_at}[
        match.field
    ]
    return _compare(column, match.operator, match.value)


async def _with_groups(conn: AsyncConnection, account_id: int, rows: Sequence[Any]) -> list[ContactRecord]:
    ids = [r.id for r in rows]
    membership: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        pairs = await conn.execute(
            select(members.c.contact_id, members.c.group_id)
            .where(members.c.contact_id.in_(ids))
            .order_by(members.c.contact_id, members.c.group_id)
        )
        for contact_id, group_id in pairs:
            membership[int(contact_id)].append(int(group_id))
    found = await groups_by_id(conn, account_id, (g for gs in membership.values() for g in gs))
    return [
        ContactRecord(
            id=r.id,
            phone=r.phone,
            fields=_decode_fields(r.fields),
            created_at=r.created_at,
            groups=tuple(found[g] for g in membership[r.id] if g in found),
        )
        for r in rows
    ]


async def contact_page(
    conn: AsyncConnection,
    *,
    account_id: int,
    group_ids: Sequence[int] = (),
    matches: Sequence[Match] = (),
    sort: ContactSort = "id",
    descending: bool = False,
    offset: int,
    limit: int,
) -> tuple[list[ContactRecord], int]:
    conditions = [contacts.c.account_id == account_id]
    if group_ids:
        conditions.append(
            contacts.c.id.in_(select(members.c.contact_id).where(members.c.group_id.in_(group_ids)))
        )
    conditions += [_contact_condition(conn.dialect.name, m) for m in matches]
    total = (await conn.execute(select(func.count()).select_from(contacts).where(*conditions))).scalar_one()
    if sort == "phone":
        order = [*_phone_order(contacts.c.phone, descending), contacts.c.id.asc()]
    else:
        order = [contacts.c.id.desc() if descending else contacts.c.id.asc()]
    rows = list(
        await conn.execute(select(contacts).where(*conditions).order_by(*order).offset(offset).limit(limit))
    )
    return await _with_groups(conn, account_id, rows), int(total)


async def get_contact(conn: AsyncConnection, account_id: int, contact_id: int) -> ContactRecord | None:
    row = (
        await conn.execute(
            select(contacts).where(contacts.c.account_id == account_id, contacts.c.id == contact_id)
        )
    ).first()
    if row is None:
        return None
    return (await _with_groups(conn, account_id, [row]))[0]


async def insert_contact(
    conn: AsyncConnection, *, account_id: int, phone: str, fields: str | None, now: datetime
) -> int | None:
    """The new contact's id, or None when the account already has a contact with this phone."""
    statement = (
        _insert_for(conn)(contacts)
        .values(account_id=account_id, phone=phone, verified=False, fields=fields, created_at=now)
        .on_conflict_do_nothing(index_elements=["account_id", "phone"])
        .returning(contacts.c.id)
    )
    value = (await conn.execute(statement)).scalar_one_or_none()
    return int(value) if value is not None else None


async def contact_phone(conn: AsyncConnection, account_id: int, contact_id: int) -> str | None:
    query = select(contacts.c.phone).where(contacts.c.account_id == account_id, contacts.c.id == contact_id)
    value = (await conn.execute(query)).scalar_one_or_none()
    return str(value) if value is not None else None


async def phone_taken(conn: AsyncConnection, account_id: int, phone: str, *, other_than: int) -> bool:
    query = select(contacts.c.id).where(
        contacts.c.account_id == account_id, contacts.c.phone == phone, contacts.c.id != other_than
    )
    return (await conn.execute(query)).first() is not None


async def update_contact(
    conn: AsyncConnection, *, account_id: int, contact_id: int, values: dict[str, Any]
) -> None:
    await conn.execute(
        update(contacts)
        .where(contacts.c.account_id == account_id, contacts.c.id == contact_id)
        .values(**values)
    )


async def delete_contacts(conn: AsyncConnection, *, account_id: int, ids: Sequence[int]) -> int:
    """Delete these contacts (memberships go with them, ON DELETE CASCADE); returns how many were deleted."""
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        result = await conn.execute(
            delete(contacts).where(
                contacts.c.account_id == account_id, contacts.c.id.in_(ids[start : start + _CHUNK])
            )
        )
        deleted += result.rowcount
    return deleted


async def delete_group_contacts(conn: AsyncConnection, *, account_id: int, group_ids: Sequence[int]) -> int:
    """Delete every contact of the account that is a member of any of these groups."""
    in_groups = select(members.c.contact_id).where(members.c.group_id.in_(group_ids))
    result = await conn.execute(
        delete(contacts).where(contacts.c.account_id == account_id, contacts.c.id.in_(in_groups))
    )
    return result.rowcount


# ------------------------------------------------------------------ stop lists


def _stop_condition(match: Match) -> ColumnElement[bool]:
    if match.field == "id":
        # A stop-list entry's id is its phone number read as an integer.
        return _compare(cast(stop_list.c.phone, BigInteger), match.operator, match.value)
    column = {"phone": stop_list.c.phone, "created_at": stop_list.c.created_at, "type": stop_list.c.type}[
        match.field
    ]
    return _compare(column, match.operator, match.value)


def _stop_entry(row: Any) -> StopListEntry:
    return StopListEntry(
        phone=row.phone,
        created_at=row.created_at,
        types=frozenset(t for t in STOP_LIST_TYPES if row._mapping[t]),
    )


def _stop_entries_select(account_id: int, matching: Select[Any]) -> Select[Any]:
    """One row per phone of ``matching`` (a select of phones): its first listing time and a flag per type."""
    flags = [func.max(case((stop_list.c.type == t, 1), else_=0)).label(t) for t in STOP_LIST_TYPES]
    return (
        select(stop_list.c.phone, func.min(stop_list.c.created_at).label("created_at"), *flags)
        .where(stop_list.c.account_id == account_id, stop_list.c.phone.in_(matching))
        .group_by(stop_list.c.phone)
    )


async def stop_list_page(
    conn: AsyncConnection,
    *,
    account_id: int,
    matches: Sequence[Match] = (),
    group_id: int | None = None,
    descending: bool = False,
    offset: int,
    limit: int,
) -> tuple[list[StopListEntry], int]:
    """Phones having an entry that satisfies every match (and, with ``group_id``, a contact in that group)."""
    conditions = [stop_list.c.account_id == account_id, *(_stop_condition(m) for m in matches)]
    if group_id is not None:
        conditions.append(
            stop_list.c.phone.in_(
                select(contacts.c.phone)
                .join(members, members.c.contact_id == contacts.c.id)
                .where(contacts.c.account_id == account_id, members.c.group_id == group_id)
            )
        )
    total = (
        await conn.execute(select(func.count(func.distinct(stop_list.c.phone))).where(*conditions))
    ).scalar_one()
    matching = select(stop_list.c.phone).where(*conditions)
    query = _stop_entries_select(account_id, matching).order_by(*_phone_order(stop_list.c.phone, descending))
    rows = await conn.execute(query.offset(offset).limit(limit))
    return [_stop_entry(r) for r in rows], int(total)


async def stop_list_entries(
    conn: AsyncConnection, account_id: int, phones: Sequence[str]
) -> dict[str, StopListEntry]:
    if not phones:
        return {}
    matching = select(stop_list.c.phone).where(
        stop_list.c.account_id == account_id, stop_list.c.phone.in_(phones)
    )
    rows = await conn.execute(_stop_entries_select(account_id, matching))
    return {r.phone: _stop_entry(r) for r in rows}


async def add_to_stop_lists(
    conn: AsyncConnection, *, account_id: int, phones: Sequence[str], list_types: Sequence[str], now: datetime
) -> None:
    """Put the phones on the lists; an entry that exists keeps its original time."""
    rows = [
        {"account_id": account_id, "type": t, "phone": p, "created_at": now}
        for t in list_types
        for p in phones
    ]
    statement = _insert_for(conn)(stop_list)
    for chunk in _chunks(rows):
        await conn.execute(statement.values(list(chunk)).on_conflict_do_nothing())


async def remove_from_stop_lists(
    conn: AsyncConnection, *, account_id: int, phones: Sequence[str], list_types: Sequence[str]
) -> None:
    await conn.execute(
        delete(stop_list).where(
            stop_list.c.account_id == account_id,
            stop_list.c.type.in_(list_types),
            stop_list.c.phone.in_(phones),
        )
    )
