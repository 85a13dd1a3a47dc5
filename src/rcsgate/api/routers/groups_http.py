"""/api/groups: contact lists (create, read, update, delete, list, search) and their members."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from rcsgate.api.contact_book_schemas import (
    ID_MAX,
    GroupIn,
    GroupOut,
    GroupResponse,
    GroupSearchOut,
    GroupsResponse,
    GroupsSearchResponse,
    MembershipIn,
    openapi_body,
    parse_body,
    search_criteria,
    search_meta,
)
from rcsgate.api.deps import Context, CurrentPrincipal, PageLimit, PageOffset
from rcsgate.api.schemas import ErrorBody
from rcsgate.services import contact_book as book

router = APIRouter(prefix="/api/groups", tags=["Contact lists"], responses={401: {"model": ErrorBody}})

GroupId = Annotated[int, Path(alias="id", ge=1, le=ID_MAX, description="Contact list id")]
_FAULTS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


@router.get(
    "/search",
    response_model=GroupsSearchResponse,
    responses=_FAULTS,
    summary="Search lists: id, items, created_at (=, >, >=, <, <=); name, description, phone (like, =)",
)
async def search_groups(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    sort: Annotated[Literal["id", "items", "name", "description", "created_at"], Query()] = "id",
    way: Annotated[Literal["asc", "desc"], Query()] = "asc",
    _field: Annotated[str | None, Query(alias="search[field]")] = None,
    _operator: Annotated[str | None, Query(alias="search[operator]")] = None,
    _value: Annotated[str | None, Query(alias="search[value]")] = None,
) -> GroupsSearchResponse:
    page = await book.search_groups(
        ctx.db,
        account_id=principal.account_id,
        criteria=search_criteria(request),
        sort=sort,
        descending=way == "desc",
        offset=offset,
        limit=limit,
    )
    return GroupsSearchResponse(
        data=[GroupSearchOut.of(g, page.timezone) for g in page.items],
        meta=search_meta(page, offset=offset, limit=limit),
    )


@router.post(
    "/attach",
    responses=_FAULTS,
    summary="Add up to 200 contacts to up to 100 lists",
    openapi_extra=openapi_body(MembershipIn),
)
async def attach(request: Request, principal: CurrentPrincipal, ctx: Context) -> dict[str, Any]:
    body = await parse_body(request, MembershipIn)
    await book.attach(
        ctx.db, account_id=principal.account_id, contact_ids=body.contacts, group_ids=body.groups
    )
    return {}


@router.post(
    "/detach",
    responses=_FAULTS,
    summary="Remove up to 200 contacts from up to 100 lists",
    openapi_extra=openapi_body(MembershipIn),
)
async def detach(request: Request, principal: CurrentPrincipal, ctx: Context) -> dict[str, Any]:
    body = await parse_body(request, MembershipIn)
    await book.detach(
        ctx.db, account_id=principal.account_id, contact_ids=body.contacts, group_ids=body.groups
    )
    return {}


@router.get("", response_model=GroupsResponse, responses=_FAULTS, summary="List contact lists")
async def list_groups(
    principal: CurrentPrincipal, ctx: Context, offset: PageOffset = 0, limit: PageLimit = 50
) -> GroupsResponse:
    page = await book.list_groups(ctx.db, account_id=principal.account_id, offset=offset, limit=limit)
    return GroupsResponse(data=[GroupOut.of(g, page.timezone) for g in page.items], total=page.total)


@router.post(
    "",
    status_code=201,
    response_model=GroupResponse,
    responses=_FAULTS,
    summary="Create a contact list (names are unique per account, ignoring case)",
    openapi_extra=openapi_body(GroupIn),
)
async def create_group(request: Request, principal: CurrentPrincipal, ctx: Context) -> GroupResponse:
    body = await parse_body(request, GroupIn)
    shown = await book.create_group(
        ctx.db,
        ctx.clock,
        account_id=principal.account_id,
        name=body.name,
        description=body.description,
        is_default=bool(body.default_flag()),
    )
    return GroupResponse(data=GroupOut.of(shown.item, shown.timezone))


@router.get("/{id}", response_model=GroupResponse, responses=_NOT_FOUND, summary="A contact list")
async def get_group(group_id: GroupId, principal: CurrentPrincipal, ctx: Context) -> GroupResponse:
    shown = await book.get_group(ctx.db, account_id=principal.account_id, group_id=group_id)
    return GroupResponse(data=GroupOut.of(shown.item, shown.timezone))


@router.put(
    "/{id}",
    response_model=GroupResponse,
    responses={**_NOT_FOUND, **_FAULTS},
    summary='Update a contact list (a null or absent description stays; "" clears it)',
    openapi_extra=openapi_body(GroupIn),
)
async def update_group(
    request: Request, group_id: GroupId, principal: CurrentPrincipal, ctx: Context
) -> GroupResponse:
    body = await parse_body(request, GroupIn)
    shown = await book.update_group(
        ctx.db,
        account_id=principal.account_id,
        group_id=group_id,
        name=body.name,
        description=book.KEEP if body.description is None else body.description,
        is_default=body.default_flag(),
    )
    return GroupResponse(data=GroupOut.of(shown.item, shown.timezone))


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses=_NOT_FOUND,
    summary="Delete a contact list (its contacts stay in the contact book)",
)
async def delete_group(group_id: GroupId, principal: CurrentPrincipal, ctx: Context) -> Response:
    await book.delete_group(ctx.db, account_id=principal.account_id, group_id=group_id)
    return Response(status_code=204)
