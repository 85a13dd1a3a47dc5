"""Request and response models of the contact book, contact lists and stop lists (BSG One-API wire format).

Input leniency, as for the send endpoints: unknown fields are ignored, ``null`` means "not given", phones and
ids may be JSON integers (what the official client sends) or digit strings, and a contact's ``groups`` may
be list ids or list objects with an ``id`` (the official client's StoreContact sends objects).
Errors use Laravel's wording through ``rcs_requests.format_errors``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar

from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from rcsgate.api.bodies import decode_json
from rcsgate.api.rcs_requests import (
    ARRAY,
    BOOLEAN,
    INTEGER,
    MAX_CHARS,
    MAX_ITEMS,
    MAX_NUMBER,
    MIN_ITEMS,
    MIN_NUMBER,
    REQUIRED,
    STRING,
    format_errors,
)
from rcsgate.api.schemas import PageMeta
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.phones import PHONE_PATTERN, normalize_phone
from rcsgate.domain.timefmt import format_ts
from rcsgate.services import contact_book as book
from rcsgate.services import stoplist
from rcsgate.services.contact_book import Criterion
from rcsgate.store.contact_book import ContactRecord, GroupRecord, StopListEntry

M = TypeVar("M", bound=BaseModel)

ID_MAX: Final = 9_223_372_036_854_775_807  # a 64-bit id column
PHONE_FORMAT: Final = "The {attribute} format is invalid."
HLR_UNKNOWN: Final = "unknown"
# Generous: BSG's own example repeats a type, and repeats are dropped.
TYPES_MAX: Final = 16

# --------------------------------------------------------------- field rules


def _error(template: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("rcsgate", template, context or None)


def _id(value: object) -> int:
    if value is None:
        raise _error(REQUIRED)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(INTEGER)
    if value < 1:
        raise _error(MIN_NUMBER, min=1)
    if value > ID_MAX:
        raise _error(MAX_NUMBER, max=ID_MAX)
    return value


def _group_ref(value: object) -> int:
    # The official client sends ContactGroupSchema objects where BSG's examples send bare ids.
    if isinstance(value, Mapping):
        return _id(value.get("id"))
    return _id(value)


def _phone(value: object) -> str:
    if value is None:
        raise _error(REQUIRED)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _error(PHONE_FORMAT)
    phone = normalize_phone(value)
    if phone is None:
        raise _error(PHONE_FORMAT)
    return phone


def _text(value: object) -> str:
    if value is None:
        raise _error(REQUIRED)
    # Custom fields of type Number may reasonably arrive as JSON numbers; they are kept as text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _error(STRING)
    return value


def _flag(value: object) -> bool:
    if type(value) in (bool, int, str):
        if value in (True, 1, "true", "1"):
            return True
        if value in (False, 0, "false", "0"):
            return False
    raise _error(BOOLEAN)


def _string(max_len: int) -> BeforeValidator:
    def check(value: object) -> str:
        if value is None:
            raise _error(REQUIRED)
        if not isinstance(value, str):
            raise _error(STRING)
        if len(value) > max_len:
            raise _error(MAX_CHARS, max=max_len)
        return value

    return BeforeValidator(check)


def _items(lo: int, hi: int) -> BeforeValidator:
    def check(value: object) -> list[Any]:
        if value is None:
            raise _error(REQUIRED)
        if not isinstance(value, list):
            raise _error(ARRAY)
        if len(value) < lo:
            raise _error(MIN_ITEMS, min=lo)
        if len(value) > hi:
            raise _error(MAX_ITEMS, max=hi)
        return value

    return BeforeValidator(check)


# What a valid value looks like, for the OpenAPI document (clients, generated tests); the validators
# above stay the rule, and accept the other spellings the module docstring lists as well.
_ID_SCHEMA: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
Id = Annotated[int, BeforeValidator(_id), WithJsonSchema(_ID_SCHEMA)]
GroupRef = Annotated[int, BeforeValidator(_group_ref), WithJsonSchema(_ID_SCHEMA)]
Phone = Annotated[
    str,
    BeforeValidator(_phone),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PHONE_PATTERN,
            "description": "9-15 digits, country code first (a JSON integer works too)",
        }
    ),
]
Text = Annotated[str, BeforeValidator(_text), WithJsonSchema({"type": "string"})]
Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]
ListType = Annotated[str, WithJsonSchema({"type": "string", "enum": list(stoplist.TYPES)})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------- requests


class FieldValueIn(_Body):
    id: Id
    value: Text


class ContactIn(_Body):
    """POST /api/contacts (StoreContact) and PUT /api/contacts/{id} (ContactUpdateRequest)."""

    phone: Phone
    fields: Annotated[list[FieldValueIn], _items(0, book.FIELDS_MAX)] | None = None
    groups: Annotated[list[GroupRef], _items(0, book.GROUPS_PER_CONTACT_MAX)] | None = None

    def field_pairs(self) -> list[tuple[int, str]] | None:
        return None if self.fields is None else [(f.id, f.value) for f in self.fields]


class GroupIn(_Body):
    """POST /api/groups (ContactListCreateRequest) and PUT /api/groups/{id} (ContactListUpdateRequest).
    ``is_default`` (the search answer's spelling) is accepted beside ``default``."""

    name: Annotated[
        str,
        _string(book.GROUP_NAME_MAX),
        WithJsonSchema(
            {"type": "string", "minLength": book.GROUP_NAME_MIN, "maxLength": book.GROUP_NAME_MAX}
        ),
    ]
    description: (
        Annotated[
            str,
            _string(book.GROUP_DESCRIPTION_MAX),
            WithJsonSchema({"type": "string", "maxLength": book.GROUP_DESCRIPTION_MAX}),
        ]
        | None
    ) = None
    default: Flag | None = None
    is_default: Flag | None = None

    def default_flag(self) -> bool | None:
        return self.default if self.default is not None else self.is_default


class MembershipIn(_Body):
    """POST /api/groups/attach and /api/groups/detach."""

    contacts: Annotated[list[Id], _items(1, book.ATTACH_CONTACTS_MAX)]
    groups: Annotated[list[Id], _items(1, book.ATTACH_GROUPS_MAX)]


class ContactsDeleteIn(_Body):
    """POST /api/contacts/delete also takes its ids as a JSON body (an rcsgate addition): 5000 ids do not fit
    the request line that proxies and clients allow (nginx: 8 KB by default, httpx: 64 KB)."""

    contact_ids: Annotated[list[Id], _items(0, book.DELETE_CONTACTS_MAX)] | None = None
    group_ids: Annotated[list[Id], _items(0, book.DELETE_GROUPS_MAX)] | None = None


class StopListAddIn(_Body):
    """POST /api/stoplist/attach (StoplistAddRequest)."""

    phones: Annotated[list[Phone], _items(1, stoplist.ATTACH_PHONES_MAX)]
    types: Annotated[list[ListType], _items(1, TYPES_MAX)]


class StopListRemoveIn(_Body):
    """POST /api/stoplist/detach (StoplistRemoveRequest: entry ids); ``phones`` is an rcsgate addition."""

    ids: Annotated[list[Phone], _items(0, stoplist.DETACH_IDS_MAX)] | None = None
    phones: Annotated[list[Phone], _items(0, stoplist.DETACH_PHONES_MAX)] | None = None
    types: Annotated[list[ListType], _items(1, TYPES_MAX)]


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that the handler validates itself (for BSG-style errors)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def parse_body(
    request: Request,
    model: type[M],
    *,
    field_messages: Mapping[str, str] | None = None,
    optional: bool = False,
) -> M:
    """Validate the JSON body; when the only fault is a field listed in ``field_messages``, that text
    becomes the answer's message (BSG reports a bad phone as "Invalid phone number format").
    With ``optional``, an empty body reads as ``{}``."""
    raw = await request.body()
    if optional and not raw.strip():
        return model.model_validate({})
    data = decode_json(raw)
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        errors = format_errors(exc.errors(include_url=False))
        special = (field_messages or {}).get(next(iter(errors))) if len(errors) == 1 else None
        raise (InvalidInput(errors, message=special) if special else InvalidInput(errors)) from exc


# --------------------------------------------------------------- search parameters

_SEARCH_FIELDS_RE: Final = re.compile(r"search_fields\[([0-9]{1,3})\]\[(field|operator|value)\]")


def _criterion(parts: Mapping[str, str], source: str) -> Criterion:
    if not parts.get("value"):
        raise InvalidInput.field(f"{source}[value]", f"The {source}[value] field is required.")
    return Criterion(
        field=parts.get("field", ""),
        operator=parts.get("operator") or "=",
        value=parts["value"],
        source=source,
    )


def search_criteria(request: Request) -> list[Criterion]:
    """``search[field|operator|value]`` and ``search_fields[n][field|operator|value]``: all must hold.
    A criterion without a field is ignored; the operator defaults to "="."""
    params = request.query_params
    criteria: list[Criterion] = []
    if params.get("search[field]"):
        criteria.append(
            _criterion(
                {k: params.get(f"search[{k}]", "") for k in ("field", "operator", "value")},
                "search",
            )
        )
    indexed: dict[int, dict[str, str]] = {}
    for key, value in params.multi_items():
        found = _SEARCH_FIELDS_RE.fullmatch(key)
        if found:
            indexed.setdefault(int(found[1]), {})[found[2]] = value
    for index in sorted(indexed):
        if indexed[index].get("field"):
            criteria.append(_criterion(indexed[index], f"search_fields[{index}]"))
    return criteria


# --------------------------------------------------------------- responses


class GroupOut(BaseModel):
    """ContactGroupSchema."""

    id: int
    name: str
    description: str | None
    default: bool
    created_at: str
    items: int
    stop_list_count: int = Field(
        description="Contacts of the list that are on any stop list (sms, rcs, viber, whatsapp)"
    )

    @classmethod
    def of(cls, group: GroupRecord, tz: str) -> GroupOut:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            default=group.is_default,
            created_at=format_ts(group.created_at, tz) or "",
            items=group.items,
            stop_list_count=group.stop_list_count,
        )


class GroupSearchOut(BaseModel):
    """ContactGroupSearchSchema (BSG's search answer spells the flag ``is_default``)."""

    id: int
    name: str
    description: str | None
    is_default: bool
    items: int
    created_at: str

    @classmethod
    def of(cls, group: GroupRecord, tz: str) -> GroupSearchOut:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            is_default=group.is_default,
            items=group.items,
            created_at=format_ts(group.created_at, tz) or "",
        )


class ContactOut(BaseModel):
    """ContactSchema. ``fields`` holds one ``{"<field id>": "<value>"}`` object per custom field value."""

    id: int
    phone: int
    fields: list[dict[str, str]]
    groups: list[GroupOut]
    hlr_status: str = HLR_UNKNOWN
    hlr_last_check: str | None = None
    created_at: str

    @classmethod
    def of(cls, contact: ContactRecord, tz: str) -> ContactOut:
        return cls(
            id=contact.id,
            phone=int(contact.phone),
            fields=[{str(field_id): value} for field_id, value in contact.fields],
            groups=[GroupOut.of(g, tz) for g in contact.groups],
            created_at=format_ts(contact.created_at, tz) or "",
        )


class SearchCriteriaOut(BaseModel):
    field: str
    operator: str
    value: str

    @classmethod
    def of(cls, criterion: Criterion | None) -> SearchCriteriaOut | None:
        if criterion is None:
            return None
        return cls(field=criterion.field, operator=criterion.operator, value=criterion.value)


class SearchMeta(BaseModel):
    page: PageMeta
    search: SearchCriteriaOut | None


class ContactResponse(BaseModel):
    data: ContactOut


class ContactsResponse(BaseModel):
    data: list[ContactOut]
    total: int


class ContactsSearchResponse(BaseModel):
    data: list[ContactOut]
    meta: SearchMeta


class GroupResponse(BaseModel):
    data: GroupOut


class GroupsResponse(BaseModel):
    data: list[GroupOut]
    total: int


class GroupsSearchResponse(BaseModel):
    data: list[GroupSearchOut]
    meta: SearchMeta


class StopListEntryOut(BaseModel):
    """StopListCollection / StopListPaginateSchema; ``whatsapp_stoplist`` is an rcsgate addition."""

    id: int = Field(description="The phone number as an integer: stable, and what /api/stoplist/detach takes")
    phone: int
    created_at: str = Field(description="When the phone was first put on any stop list")
    sms_stoplist: bool
    viber_stoplist: bool
    rcs_stoplist: bool
    whatsapp_stoplist: bool

    @classmethod
    def of(cls, entry: StopListEntry, tz: str) -> StopListEntryOut:
        return cls(
            id=stoplist.entry_id(entry.phone),
            phone=int(entry.phone),
            created_at=format_ts(entry.created_at, tz) or "",
            sms_stoplist="sms" in entry.types,
            viber_stoplist="viber" in entry.types,
            rcs_stoplist="rcs" in entry.types,
            whatsapp_stoplist="whatsapp" in entry.types,
        )


class StopListAddResponse(BaseModel):
    data: list[StopListEntryOut]


class StopListItemsResponse(BaseModel):
    data: list[StopListEntryOut]
    total: int


class StopListSearchResponse(BaseModel):
    data: list[StopListEntryOut]
    meta: SearchMeta


def search_meta(page: book.Page[Any], *, offset: int, limit: int) -> SearchMeta:
    return SearchMeta(
        page=PageMeta(total=page.total, offset=offset, limit=limit), search=SearchCriteriaOut.of(page.search)
    )
