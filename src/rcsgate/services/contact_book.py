"""Contact book use cases: contacts, contact lists (groups) and memberships, and the searches over them.

Each function owns its transaction. Ids of another account are indistinguishable from missing ones: a 404
for the object addressed by the path, a per-item 422 inside lists of ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, Generic, Literal, TypeVar, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.phones import normalize_phone
from rcsgate.domain.timefmt import parse_ts, zone
from rcsgate.store import accounts as account_store
from rcsgate.store import contact_book as store
from rcsgate.store.contact_book import ContactRecord, ContactSort, GroupRecord, GroupSort, Match, Operator
from rcsgate.store.db import Database

T = TypeVar("T")

# The official client's ContactSchema refuses a contact embedded in more lists than this.
GROUPS_PER_CONTACT_MAX: Final = 100
ATTACH_CONTACTS_MAX: Final = 200
ATTACH_GROUPS_MAX: Final = 100
DELETE_CONTACTS_MAX: Final = 5000
DELETE_GROUPS_MAX: Final = 100
FILTER_GROUPS_MAX: Final = 1000
FIELDS_MAX: Final = 100
FIELD_VALUE_MAX: Final = 255
GROUP_NAME_MIN: Final = 3
GROUP_NAME_MAX: Final = 50
GROUP_DESCRIPTION_MAX: Final = 255
CRITERIA_MAX: Final = 10
SEARCH_TEXT_MAX: Final = 255

DUPLICATE_PHONE: Final = "Phone number is already exist in contact book"
DUPLICATE_GROUP: Final = "Contact group is already exists"
CONTACT_NOT_FOUND: Final = "Invalid contact id"
GROUP_NOT_FOUND: Final = "Contact group is not found"
PHONE_FORMAT: Final = "Invalid phone number format"


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""For an update: leave this attribute as it is."""


@dataclass(frozen=True)
class Shown(Generic[T]):
    """One object and the account's time zone, in which its times are shown."""

    item: T
    timezone: str


@dataclass(frozen=True)
class Criterion:
    """A search condition as the client wrote it; ``source`` names its query parameters in errors
    (``search`` → ``search[field]``, ``search_fields[1]`` → ``search_fields[1][value]``)."""

    field: str
    operator: str
    value: str
    source: str = "search"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    timezone: str
    # The first search condition, normalised ("date" → "created_at"), echoed in search answers.
    search: Criterion | None = None


@dataclass(frozen=True)
class FieldSpec:
    operators: frozenset[str]
    kind: Literal["int", "phone", "text", "time", "list_type"]


ORDERED: Final = frozenset({"=", ">", ">=", "<", "<="})
TEXTUAL: Final = frozenset({"like", "="})
EQUAL: Final = frozenset({"="})
ALIASES: Final = {"date": "created_at"}

CONTACT_SEARCH: Final = {
    "id": FieldSpec(ORDERED, "int"),
    "phone": FieldSpec(TEXTUAL, "phone"),
    "group_id": FieldSpec(EQUAL, "int"),
    "created_at": FieldSpec(ORDERED, "time"),
}
# Custom fields carry no type here (there is no field registry), so they are searched as text.
CUSTOM_FIELD_SEARCH: Final = FieldSpec(TEXTUAL, "text")
GROUP_SEARCH: Final = {
    "id": FieldSpec(ORDERED, "int"),
    "name": FieldSpec(TEXTUAL, "text"),
    "description": FieldSpec(TEXTUAL, "text"),
    "items": FieldSpec(ORDERED, "int"),
    "created_at": FieldSpec(ORDERED, "time"),
    "phone": FieldSpec(TEXTUAL, "phone"),
}

_INT_RE: Final = re.compile(r"-?[0-9]{1,18}")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,15}")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIELD_ID_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


# ------------------------------------------------------------------ input rules


def valid_phone(value: str | int, field_name: str = "phone") -> str:
    phone = normalize_phone(value)
    if phone is None:
        raise InvalidInput({field_name: [PHONE_FORMAT]}, message=PHONE_FORMAT)
    return phone


def _unique_ids(ids: Sequence[int], field_name: str, *, most: int, least: int = 0) -> list[int]:
    if len(ids) < least:
        raise InvalidInput.field(field_name, f"The {field_name} must have at least {least} items.")
    if len(ids) > most:
        raise InvalidInput.field(field_name, f"The {field_name} may not have more than {most} items.")
    return list(dict.fromkeys(ids))


def _valid_fields(fields: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    if len(fields) > FIELDS_MAX:
        raise InvalidInput.field("fields", f"The fields may not have more than {FIELDS_MAX} items.")
    errors: dict[str, list[str]] = {}
    seen: set[int] = set()
    for i, (field_id, value) in enumerate(fields):
        if field_id < 1:
            errors[f"fields.{i}.id"] = [f"The fields.{i}.id must be at least 1."]
        elif field_id in seen:
            errors[f"fields.{i}.id"] = [f"The fields.{i}.id field has a duplicate value."]
        if len(value) > FIELD_VALUE_MAX:
            errors[f"fields.{i}.value"] = [
                f"The fields.{i}.value may not be greater than {FIELD_VALUE_MAX} characters."
            ]
        seen.add(field_id)
    if errors:
        raise InvalidInput(errors)
    return list(fields)


def _group_name(name: str) -> str:
    cleaned = name.strip()
    if not GROUP_NAME_MIN <= len(cleaned) <= GROUP_NAME_MAX:
        raise InvalidInput.field(
            "name", f"The name must be between {GROUP_NAME_MIN} and {GROUP_NAME_MAX} characters."
        )
    return cleaned


def _group_description(description: str | None) -> str | None:
    # The official client refuses an empty description, so "" is stored as no description.
    if not description:
        return None
    if len(description) > GROUP_DESCRIPTION_MAX:
        raise InvalidInput.field(
            "description", f"The description may not be greater than {GROUP_DESCRIPTION_MAX} characters."
        )
    return description


# ------------------------------------------------------------------ search criteria


def _time_matches(name: str, operator: str, value: str, tz: str) -> list[Match]:
    """A date means the whole day and a timestamp the whole second, in the account's time zone."""
    text = value.strip()
    start = parse_ts(text, tz)
    if _DATE_RE.fullmatch(text):
        local = start.astimezone(zone(tz))
        end = parse_ts((local + timedelta(days=1)).strftime("%Y-%m-%d"), tz)
    else:
        start = start.replace(microsecond=0)
        end = start + timedelta(seconds=1)
    bounds: dict[str, list[tuple[Operator, datetime]]] = {
        "=": [(">=", start), ("<", end)],
        ">": [(">=", end)],
        ">=": [(">=", start)],
        "<": [("<", start)],
        "<=": [("<", end)],
    }
    return [Match(name, o, moment) for o, moment in bounds[operator]]


def _typed_value(spec: FieldSpec, value: str, key: str) -> int | str:
    if spec.kind == "int":
        if not _INT_RE.fullmatch(value.strip()):
            raise InvalidInput.field(key, f"The {key} must be an integer.")
        return int(value)
    if spec.kind == "phone":
        digits = value.strip().removeprefix("+")
        if not _DIGITS_RE.fullmatch(digits):
            raise InvalidInput.field(key, f"The {key} must contain only digits.")
        return digits
    if spec.kind == "list_type":
        if value not in store.STOP_LIST_TYPES:
            raise InvalidInput.field(key, f"The selected {key} is invalid.")
        return value
    if len(value) > SEARCH_TEXT_MAX:
        raise InvalidInput.field(key, f"The {key} may not be greater than {SEARCH_TEXT_MAX} characters.")
    return value


def _criterion_matches(
    criterion: Criterion, fields: dict[str, FieldSpec], tz: str, *, custom_fields: bool
) -> tuple[Criterion, list[Match]]:
    src = criterion.source
    name = ALIASES.get(criterion.field, criterion.field)
    spec = fields.get(name)
    store_name = name
    if spec is None and custom_fields and _FIELD_ID_RE.fullmatch(name):
        spec, store_name = CUSTOM_FIELD_SEARCH, f"field:{int(name)}"
    if spec is None:
        raise InvalidInput.field(f"{src}[field]", f"The selected {src}[field] is invalid.")
    if criterion.operator not in spec.operators:
        allowed = ", ".join(sorted(spec.operators))
        raise InvalidInput.field(
            f"{src}[operator]", f"The {src}[operator] for {name} must be one of: {allowed}."
        )
    key = f"{src}[value]"
    if spec.kind == "time":
        try:
            matches = _time_matches(store_name, criterion.operator, criterion.value, tz)
        except ValueError as exc:
            raise InvalidInput.field(key, f"The {key} does not match the format Y-m-d H:i:s.") from exc
    else:
        value = _typed_value(spec, criterion.value, key)
        matches = [Match(store_name, cast(Operator, criterion.operator), value)]
    normalised = Criterion(field=name, operator=criterion.operator, value=criterion.value, source=src)
    return normalised, matches


def search_matches(
    criteria: Sequence[Criterion], fields: dict[str, FieldSpec], tz: str, *, custom_fields: bool = False
) -> tuple[Criterion | None, list[Match]]:
    """Validate the client's criteria (all must hold) against the searchable fields of one entity."""
    if len(criteria) > CRITERIA_MAX:
        raise InvalidInput.field(
            "search_fields", f"The search_fields may not have more than {CRITERIA_MAX} items."
        )
    errors: dict[str, list[str]] = {}
    shown: list[Criterion] = []
    matches: list[Match] = []
    for criterion in criteria:
        try:
            normalised, found = _criterion_matches(criterion, fields, tz, custom_fields=custom_fields)
        except InvalidInput as exc:
            errors.update(exc.errors)
            continue
        shown.append(normalised)
        matches += found
    if errors:
        raise InvalidInput(errors)
    return (shown[0] if shown else None), matches


# ------------------------------------------------------------------ shared steps


async def account_timezone(conn: AsyncConnection, account_id: int) -> str:
    account = await account_store.get_account(conn, account_id)
    if account is None:
        raise NotFound("Account was not found.")
    return account.timezone


async def _unowned(
    conn: AsyncConnection,
    kind: Literal["contacts", "groups"],
    account_id: int,
    ids: Sequence[int],
    field_name: str,
) -> dict[str, list[str]]:
    """An error naming each id (and its position) that is not one of the account's contacts or groups."""
    owned = await store.owned_ids(conn, kind, account_id, ids)
    what = "Contact" if kind == "contacts" else "Contact list"
    return {f"{field_name}.{i}": [f"{what} {x} was not found."] for i, x in enumerate(ids) if x not in owned}


async def _require_owned(
    conn: AsyncConnection,
    account_id: int,
    *,
    contacts: tuple[Sequence[int], str] | None = None,
    groups: tuple[Sequence[int], str] | None = None,
) -> None:
    """422 unless every id (given with the name of its request field) is the account's own."""
    errors: dict[str, list[str]] = {}
    if contacts is not None:
        errors.update(await _unowned(conn, "contacts", account_id, *contacts))
    if groups is not None:
        errors.update(await _unowned(conn, "groups", account_id, *groups))
    if errors:
        raise InvalidInput(errors)


async def _shown_contact(conn: AsyncConnection, account_id: int, contact_id: int) -> Shown[ContactRecord]:
    record = await store.get_contact(conn, account_id, contact_id)
    if record is None:
        raise NotFound(CONTACT_NOT_FOUND)
    return Shown(record, await account_timezone(conn, account_id))


async def _shown_group(conn: AsyncConnection, account_id: int, group_id: int) -> Shown[GroupRecord]:
    found = await store.groups_by_id(conn, account_id, [group_id])
    if group_id not in found:
        raise NotFound(GROUP_NOT_FOUND)
    return Shown(found[group_id], await account_timezone(conn, account_id))


def _duplicate_phone() -> InvalidInput:
    # BSG puts this text in "message"; errors.phone carries it too, where field errors are looked for.
    return InvalidInput({"phone": [DUPLICATE_PHONE]}, message=DUPLICATE_PHONE)


def _duplicate_group() -> InvalidInput:
    return InvalidInput({"name": [DUPLICATE_GROUP]}, message=DUPLICATE_GROUP)


# ------------------------------------------------------------------ contacts


async def create_contact(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    phone: str | int,
    fields: Sequence[tuple[int, str]] = (),
    group_ids: Sequence[int] = (),
) -> Shown[ContactRecord]:
    number = valid_phone(phone)
    values = _valid_fields(fields)
    wanted = _unique_ids(group_ids, "groups", most=GROUPS_PER_CONTACT_MAX)
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        await _require_owned(conn, account_id, groups=(group_ids, "groups"))
        contact_id = await store.insert_contact(
            conn, account_id=account_id, phone=number, fields=store.encode_fields(values), now=clock.now()
        )
        if contact_id is None:
            raise _duplicate_phone()
        await store.add_memberships(conn, ((contact_id, g) for g in wanted))
        return await _shown_contact(conn, account_id, contact_id)


async def get_contact(db: Database, *, account_id: int, contact_id: int) -> Shown[ContactRecord]:
    async with db.read() as conn:
        return await _shown_contact(conn, account_id, contact_id)


async def update_contact(
    db: Database,
    *,
    account_id: int,
    contact_id: int,
    phone: str | int,
    fields: Sequence[tuple[int, str]] | None = None,
    group_ids: Sequence[int] | None = None,
) -> Shown[ContactRecord]:
    """Change the phone; ``fields`` and ``group_ids``, when given, replace the contact's values and lists."""
    number = valid_phone(phone)
    values = _valid_fields(fields) if fields is not None else None
    wanted = _unique_ids(group_ids, "groups", most=GROUPS_PER_CONTACT_MAX) if group_ids is not None else None
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        current = await store.contact_phone(conn, account_id, contact_id)
        if current is None:
            raise NotFound(CONTACT_NOT_FOUND)
        if wanted is not None:
            await _require_owned(conn, account_id, groups=(group_ids or (), "groups"))
        changes: dict[str, object] = {}
        if number != current:
            if await store.phone_taken(conn, account_id, number, other_than=contact_id):
                raise _duplicate_phone()
            # Verification vouches for a number, not for a row: a new number starts unverified.
            changes.update(phone=number, verified=False)
        if values is not None:
            changes["fields"] = store.encode_fields(values)
        if changes:
            await _apply_contact_changes(conn, account_id, contact_id, changes)
        if wanted is not None:
            await store.set_memberships(conn, contact_id, wanted)
        return await _shown_contact(conn, account_id, contact_id)


async def _apply_contact_changes(
    conn: AsyncConnection, account_id: int, contact_id: int, changes: dict[str, object]
) -> None:
    try:
        # A savepoint, so that losing a race for the phone (e.g. to a send adding it) leaves a usable transaction.
        async with conn.begin_nested():
            await store.update_contact(conn, account_id=account_id, contact_id=contact_id, values=changes)
    except IntegrityError as exc:
        raise _duplicate_phone() from exc


async def delete_contact(db: Database, *, account_id: int, contact_id: int) -> None:
    async with db.write() as conn:
        if not await store.delete_contacts(conn, account_id=account_id, ids=[contact_id]):
            raise NotFound(CONTACT_NOT_FOUND)


async def delete_contacts(
    db: Database, *, account_id: int, contact_ids: Sequence[int] = (), group_ids: Sequence[int] = ()
) -> int:
    """Delete the given contacts and every contact of the given lists (the lists stay); all or nothing."""
    if not contact_ids and not group_ids:
        raise InvalidInput.field(
            "contact_ids", "The contact ids field is required when group ids is not present."
        )
    contacts_wanted = _unique_ids(contact_ids, "contact_ids", most=DELETE_CONTACTS_MAX)
    groups_wanted = _unique_ids(group_ids, "group_ids", most=DELETE_GROUPS_MAX)
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        await _require_owned(
            conn, account_id, contacts=(contact_ids, "contact_ids"), groups=(group_ids, "group_ids")
        )
        deleted = await store.delete_contacts(conn, account_id=account_id, ids=contacts_wanted)
        if groups_wanted:
            deleted += await store.delete_group_contacts(conn, account_id=account_id, group_ids=groups_wanted)
        return deleted


async def list_contacts(
    db: Database, *, account_id: int, group_ids: Sequence[int] = (), offset: int, limit: int
) -> Page[ContactRecord]:
    """The account's contacts by id; with ``group_ids``, those in any of these lists."""
    wanted = _unique_ids(group_ids, "groups", most=FILTER_GROUPS_MAX)
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        items, total = await store.contact_page(
            conn, account_id=account_id, group_ids=wanted, offset=offset, limit=limit
        )
    return Page(items, total, tz)


async def search_contacts(
    db: Database,
    *,
    account_id: int,
    criteria: Sequence[Criterion],
    sort: ContactSort = "id",
    descending: bool = False,
    offset: int,
    limit: int,
) -> Page[ContactRecord]:
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        shown, matches = search_matches(criteria, CONTACT_SEARCH, tz, custom_fields=True)
        items, total = await store.contact_page(
            conn,
            account_id=account_id,
            matches=matches,
            sort=sort,
            descending=descending,
            offset=offset,
            limit=limit,
        )
    return Page(items, total, tz, shown)


# ------------------------------------------------------------------ contact lists


async def create_group(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    name: str,
    description: str | None = None,
    is_default: bool = False,
) -> Shown[GroupRecord]:
    clean_name, clean_description = _group_name(name), _group_description(description)
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        if await store.group_name_taken(conn, account_id, clean_name, other_than=None):
            raise _duplicate_group()
        group_id = await store.insert_group(
            conn,
            account_id=account_id,
            name=clean_name,
            description=clean_description,
            is_default=is_default,
            now=clock.now(),
        )
        if is_default:
            await store.clear_default_group(conn, account_id=account_id, except_id=group_id)
        return await _shown_group(conn, account_id, group_id)


async def get_group(db: Database, *, account_id: int, group_id: int) -> Shown[GroupRecord]:
    async with db.read() as conn:
        return await _shown_group(conn, account_id, group_id)


async def update_group(
    db: Database,
    *,
    account_id: int,
    group_id: int,
    name: str,
    description: str | _Keep | None = KEEP,
    is_default: bool | None = None,
) -> Shown[GroupRecord]:
    """Rename; ``description`` KEEP leaves it, None or "" clears it; ``is_default`` None leaves it."""
    values: dict[str, object] = {"name": _group_name(name)}
    if description is not KEEP:
        values["description"] = _group_description(description)
    if is_default is not None:
        values["is_default"] = is_default
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        if group_id not in await store.owned_ids(conn, "groups", account_id, [group_id]):
            raise NotFound(GROUP_NOT_FOUND)
        if await store.group_name_taken(conn, account_id, str(values["name"]), other_than=group_id):
            raise _duplicate_group()
        await store.update_group(conn, account_id=account_id, group_id=group_id, values=values)
        if is_default:
            await store.clear_default_group(conn, account_id=account_id, except_id=group_id)
        return await _shown_group(conn, account_id, group_id)


async def delete_group(db: Database, *, account_id: int, group_id: int) -> None:
    async with db.write() as conn:
        if not await store.delete_group(conn, account_id=account_id, group_id=group_id):
            raise NotFound(GROUP_NOT_FOUND)


async def list_groups(db: Database, *, account_id: int, offset: int, limit: int) -> Page[GroupRecord]:
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        items, total = await store.group_page(conn, account_id=account_id, offset=offset, limit=limit)
    return Page(items, total, tz)


async def search_groups(
    db: Database,
    *,
    account_id: int,
    criteria: Sequence[Criterion],
    sort: GroupSort = "id",
    descending: bool = False,
    offset: int,
    limit: int,
) -> Page[GroupRecord]:
    async with db.read() as conn:
        tz = await account_timezone(conn, account_id)
        shown, matches = search_matches(criteria, GROUP_SEARCH, tz)
        items, total = await store.group_page(
            conn,
            account_id=account_id,
            matches=matches,
            sort=sort,
            descending=descending,
            offset=offset,
            limit=limit,
        )
    return Page(items, total, tz, shown)


# ------------------------------------------------------------------ memberships


def _membership(contact_ids: Sequence[int], group_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    return (
        _unique_ids(contact_ids, "contacts", least=1, most=ATTACH_CONTACTS_MAX),
        _unique_ids(group_ids, "groups", least=1, most=ATTACH_GROUPS_MAX),
    )


async def attach(
    db: Database, *, account_id: int, contact_ids: Sequence[int], group_ids: Sequence[int]
) -> None:
    """Add every contact to every list (all or nothing); existing memberships stay."""
    contacts, groups = _membership(contact_ids, group_ids)
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        await _require_owned(
            conn, account_id, contacts=(contact_ids, "contacts"), groups=(group_ids, "groups")
        )
        existing = await store.existing_memberships(conn, contacts, groups)
        counts = await store.membership_counts(conn, contacts)
        errors: dict[str, list[str]] = {}
        for i, contact_id in enumerate(contact_ids):
            added = sum(1 for g in groups if (contact_id, g) not in existing)
            if counts.get(contact_id, 0) + added > GROUPS_PER_CONTACT_MAX:
                errors[f"contacts.{i}"] = [
                    f"Contact {contact_id} would be in more than {GROUPS_PER_CONTACT_MAX} contact lists."
                ]
        if errors:
            raise InvalidInput(errors)
        await store.add_memberships(conn, ((c, g) for c in contacts for g in groups))


async def detach(
    db: Database, *, account_id: int, contact_ids: Sequence[int], group_ids: Sequence[int]
) -> None:
    """Take every contact out of every list; a contact that was not in a list is fine."""
    contacts, groups = _membership(contact_ids, group_ids)
    async with db.write() as conn:
        await store.lock_account(conn, account_id)
        await _require_owned(
            conn, account_id, contacts=(contact_ids, "contacts"), groups=(group_ids, "groups")
        )
        await store.remove_memberships(conn, contacts, groups)
