"""Request dependencies: the caller's identity (bearer token or v1 X-API-KEY) and paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from rcsgate.domain.errors import Unauthenticated
from rcsgate.domain.records import Principal
from rcsgate.services import auth
from rcsgate.services.sending import Caller, TokenClaims

from .context import AppContext, get_context

# Declared for the OpenAPI document and /docs; the header is parsed below because BSG's
# own documentation writes "Bearer: <token>", which HTTPBearer would refuse.
_bearer_scheme = HTTPBearer(auto_error=False, scheme_name="ExternalAuth", bearerFormat="JWT")
_api_key_scheme = APIKeyHeader(name="X-API-KEY", auto_error=False, scheme_name="ApiKey")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.rstrip(":").lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    return token.strip()


async def current_principal(
    request: Request,
    ctx: Annotated[AppContext, Depends(get_context)],
    _bearer: Annotated[object, Security(_bearer_scheme)] = None,
    _api_key: Annotated[object, Security(_api_key_scheme)] = None,
) -> Principal:
    token = bearer_token(request)
    if token is not None:
        principal = await auth.principal_for_token(ctx.db, ctx.tokens, token)
    else:
        api_key = request.headers.get("x-api-key")
        if not api_key:
            raise Unauthenticated()
        principal = await auth.principal_for_key(ctx.db, api_key.strip())
    request.state.account_id = principal.account_id
    await ctx.limiter.hit(principal.account_id)
    return principal


# The hot route declares its schemes in its OpenAPI entry (SEND_SECURITY) rather than as
# sub-dependencies, which would run on every request only to be ignored.
SEND_SECURITY: dict[str, Any] = {
    "security": [{_bearer_scheme.scheme_name: []}, {_api_key_scheme.scheme_name: []}]
}


async def send_caller(request: Request, ctx: AppContext) -> Caller:
    """``current_principal`` for single sends: a bearer token's key is checked to be live by the
    transaction that accepts the send (services.sending), saving a read per request."""
    token = bearer_token(request)
    if token is None:
        return await current_principal(request, ctx)
    account_id, key_id = ctx.tokens.decode(token)
    request.state.account_id = account_id
    await ctx.limiter.hit(account_id)
    return TokenClaims(account_id=account_id, key_id=key_id)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Context = Annotated[AppContext, Depends(get_context)]

# Every integer parameter is bounded so that it fits the databases' 64-bit integers (a larger one
# crashed the query with an OverflowError); tests/test_bad_input.py holds each to it.
INT64_MAX = 2**63 - 1

PageOffset = Annotated[
    int, Query(alias="page[offset]", ge=0, le=INT64_MAX, description="Skip this many items.")
]
PageLimit = Annotated[
    int, Query(alias="page[limit]", ge=15, le=500, description="Items per page, 15 to 500.")
]
