from __future__ import annotations

from fastapi import APIRouter, Request

from rcsgate.api.bodies import body_schema, json_body, parse
from rcsgate.api.deps import Context, bearer_token
from rcsgate.api.schemas import ErrorBody, LoginRequest, TokenOut
from rcsgate.domain.errors import Unauthenticated
from rcsgate.services import auth

router = APIRouter(prefix="/api/auth", tags=["Auth"])


@router.post(
    "/login",
    response_model=TokenOut,
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Exchange an API key for a bearer token",
    openapi_extra=body_schema(LoginRequest),
)
async def login(request: Request, ctx: Context) -> TokenOut:
    # Read by hand, as every body is: decode_json refuses what no string may hold, parse words errors.
    data = await json_body(request)
    body = parse(LoginRequest, data if isinstance(data, dict) else {})
    return TokenOut(bearer=await auth.login(ctx.db, ctx.tokens, api_key=body.api_key.strip()))


@router.post(
    "/refresh",
    response_model=TokenOut,
    responses={401: {"model": ErrorBody}},
    summary="A new token for a still-valid one",
)
async def refresh(request: Request, ctx: Context) -> TokenOut:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated()
    return TokenOut(bearer=await auth.refresh(ctx.db, ctx.tokens, token))
