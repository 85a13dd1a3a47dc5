"""/api/stoplist: phones an account must not message, one entry per phone with a flag per list type."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from rcsgate.api.contact_book_schemas import (
    ID_MAX,
    StopListAddIn,
    StopListAddResponse,
    StopListEntryOut,
    StopListItemsResponse,
    StopListRemoveIn,
    StopListSearchResponse,
    openapi_body,
    parse_body,
    search_criteria,
    search_meta,
)
from rcsgate.api.deps import Context, CurrentPrincipal, PageLimit, PageOffset
from rcsgate.api.schemas import ErrorBody
from rcsgate.services import stoplist

router = APIRouter(prefix="/api/stoplist", tags=["Stop lists"], responses={401: {"model": ErrorBody}})

_FAULTS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}
ListType = Literal["sms", "viber", "rcs", "whatsapp"]


@router.get("", response_model=StopListItemsResponse, responses=_FAULTS, summary="Stop-listed phones")
async def list_entries(
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    type: Annotated[ListType | None, Query(description="Only phones on this list")] = None,
) -> StopListItemsResponse:
    page = await stoplist.list_entries(
        ctx.db, account_id=principal.account_id, list_type=type, offset=offset, limit=limit
    )
    return StopListItemsResponse(
        data=[StopListEntryOut.of(e, page.timezone) for e in page.items], total=page.total
    )


@router.get(
    "/search",
    response_model=StopListSearchResponse,
    responses=_FAULTS,
    summary="Search stop lists: id, created_at (=, >, >=, <, <=); phone (like, =); type (=)",
)
async def search_entries(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    sort: Annotated[Literal["id", "phone"], Query(description="Both order by the phone number")] = "id",
    way: Annotated[Literal["asc", "desc"], Query()] = "asc",
    contact_group_id: Annotated[
        int | None, Query(ge=1, le=ID_MAX, description="Only this list's contacts")
    ] = None,
    _field: Annotated[str | None, Query(alias="search[field]")] = None,
    _operator: Annotated[str | None, Query(alias="search[operator]")] = None,
    _value: Annotated[str | None, Query(alias="search[value]")] = None,
) -> StopListSearchResponse:
    page = await stoplist.search_entries(
        ctx.db,
        account_id=principal.account_id,
        criteria=search_criteria(request),
        group_id=contact_group_id,
        descending=way == "desc",
        offset=offset,
        limit=limit,
    )
    return StopListSearchResponse(
        data=[StopListEntryOut.of(e, page.timezone) for e in page.items],
        meta=search_meta(page, offset=offset, limit=limit),
    )


@router.post(
    "/attach",
    response_model=StopListAddResponse,
    responses=_FAULTS,
    summary="Put up to 1000 phones on the given stop lists",
    openapi_extra=openapi_body(StopListAddIn),
)
async def attach(request: Request, principal: CurrentPrincipal, ctx: Context) -> StopListAddResponse:
    body = await parse_body(request, StopListAddIn)
    shown = await stoplist.add_entries(
        ctx.db, ctx.clock, account_id=principal.account_id, phones=body.phones, list_types=body.types
    )
    return StopListAddResponse(data=[StopListEntryOut.of(e, shown.timezone) for e in shown.item])


@router.post(
    "/detach",
    responses=_FAULTS,
    summary="Take up to 200 entries (by id) off the given stop lists; `phones` works too",
    openapi_extra=openapi_body(StopListRemoveIn),
)
async def detach(request: Request, principal: CurrentPrincipal, ctx: Context) -> dict[str, Any]:
    body = await parse_body(request, StopListRemoveIn)
    await stoplist.remove_entries(
        ctx.db,
        account_id=principal.account_id,
        ids=[int(i) for i in body.ids or []],
        phones=body.phones or [],
        list_types=body.types,
    )
    return {}
