"""/api/contacts: the contact book (create, read, update, delete, bulk delete, list, search)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field

from rcsgate.api.contact_book_schemas import (
    ID_MAX,
    ContactIn,
    ContactOut,
    ContactResponse,
    ContactsDeleteIn,
    ContactsResponse,
    ContactsSearchResponse,
    openapi_body,
    parse_body,
    search_criteria,
    search_meta,
)
from rcsgate.api.deps import Context, CurrentPrincipal, PageLimit, PageOffset
from rcsgate.api.schemas import ErrorBody
from rcsgate.services import contact_book as book

router = APIRouter(prefix="/api/contacts", tags=["Contact book"], responses={401: {"model": ErrorBody}})

ContactId = Annotated[int, Path(alias="id", ge=1, le=ID_MAX, description="Contact id")]
IdList = list[Annotated[int, Field(ge=1, le=ID_MAX)]]
_FAULTS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}
_PHONE_MESSAGE = {"phone": book.PHONE_FORMAT}


@router.get(
    "/search",
    response_model=ContactsSearchResponse,
    responses=_FAULTS,
    summary="Search contacts: id (=, >, >=, <, <=), phone (like, =), group_id (=), created_at "
    "(=, >, >=, <, <=), a custom field id (like, =); several criteria with search_fields[n][...]",
)
async def search_contacts(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    sort: Annotated[Literal["id", "phone"], Query()] = "id",
    way: Annotated[Literal["asc", "desc"], Query()] = "asc",
    _field: Annotated[str | None, Query(alias="search[field]")] = None,
    _operator: Annotated[str | None, Query(alias="search[operator]")] = None,
    _value: Annotated[str | None, Query(alias="search[value]")] = None,
) -> ContactsSearchResponse:
    page = await book.search_contacts(
        ctx.db,
        account_id=principal.account_id,
        criteria=search_criteria(request),
        sort=sort,
        descending=way == "desc",
        offset=offset,
        limit=limit,
    )
    return ContactsSearchResponse(
        data=[ContactOut.of(c, page.timezone) for c in page.items],
        meta=search_meta(page, offset=offset, limit=limit),
    )


@router.post(
    "/delete",
    status_code=204,
    response_class=Response,
    responses=_FAULTS,
    summary="Delete contacts by id (up to 5000) and/or every contact of the given lists; the ids may "
    "also come as a JSON body {contact_ids, group_ids}",
    openapi_extra={"requestBody": {**openapi_body(ContactsDeleteIn)["requestBody"], "required": False}},
)
async def delete_contacts(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    contact_ids: Annotated[IdList | None, Query(alias="contact_ids[]")] = None,
    group_ids: Annotated[IdList | None, Query(alias="group_ids[]")] = None,
) -> Response:
    body = await parse_body(request, ContactsDeleteIn, optional=True)
    await book.delete_contacts(
        ctx.db,
        account_id=principal.account_id,
        contact_ids=[*(contact_ids or []), *(body.contact_ids or [])],
        group_ids=[*(group_ids or []), *(body.group_ids or [])],
    )
    return Response(status_code=204)


@router.get("", response_model=ContactsResponse, responses=_FAULTS, summary="List contacts")
async def list_contacts(
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    groups: Annotated[
        IdList | None, Query(alias="groups[]", description="Only contacts of these lists")
    ] = None,
) -> ContactsResponse:
    page = await book.list_contacts(
        ctx.db, account_id=principal.account_id, group_ids=groups or [], offset=offset, limit=limit
    )
    return ContactsResponse(data=[ContactOut.of(c, page.timezone) for c in page.items], total=page.total)


@router.post(
    "",
    status_code=201,
    response_model=ContactResponse,
    responses=_FAULTS,
    summary="Create a contact (one per phone number)",
    openapi_extra=openapi_body(ContactIn),
)
async def create_contact(request: Request, principal: CurrentPrincipal, ctx: Context) -> ContactResponse:
    body = await parse_body(request, ContactIn, field_messages=_PHONE_MESSAGE)
    shown = await book.create_contact(
        ctx.db,
        ctx.clock,
        account_id=principal.account_id,
        phone=body.phone,
        fields=body.field_pairs() or [],
        group_ids=body.groups or [],
    )
    return ContactResponse(data=ContactOut.of(shown.item, shown.timezone))


@router.get(
    "/{id}", response_model=ContactResponse, responses={404: {"model": ErrorBody}}, summary="A contact"
)
async def get_contact(contact_id: ContactId, principal: CurrentPrincipal, ctx: Context) -> ContactResponse:
    shown = await book.get_contact(ctx.db, account_id=principal.account_id, contact_id=contact_id)
    return ContactResponse(data=ContactOut.of(shown.item, shown.timezone))


@router.put(
    "/{id}",
    response_model=ContactResponse,
    responses={404: {"model": ErrorBody}, **_FAULTS},
    summary="Update a contact: phone; fields and groups, when given, replace the contact's",
    openapi_extra=openapi_body(ContactIn),
)
async def update_contact(
    request: Request, contact_id: ContactId, principal: CurrentPrincipal, ctx: Context
) -> ContactResponse:
    body = await parse_body(request, ContactIn, field_messages=_PHONE_MESSAGE)
    shown = await book.update_contact(
        ctx.db,
        account_id=principal.account_id,
        contact_id=contact_id,
        phone=body.phone,
        fields=body.field_pairs(),
        group_ids=body.groups,
    )
    return ContactResponse(data=ContactOut.of(shown.item, shown.timezone))


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses={404: {"model": ErrorBody}},
    summary="Delete a contact (it leaves its lists too)",
)
async def delete_contact(contact_id: ContactId, principal: CurrentPrincipal, ctx: Context) -> Response:
    await book.delete_contact(ctx.db, account_id=principal.account_id, contact_id=contact_id)
    return Response(status_code=204)
