"""Response models of the BSG contract (account side). Field names and types are the wire format."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    message: str
    errors: dict[str, list[str]] = Field(default_factory=dict)


class LoginRequest(BaseModel):
    api_key: str = Field(min_length=1, max_length=200, description="A live_ or test_ API key.")


class TokenOut(BaseModel):
    bearer: str


class BalanceOut(BaseModel):
    balance: float = Field(
        description="Funds on the account (reservations of messages in flight not subtracted)."
    )
    currency: str
    credit: float = Field(description="Credit limit: how far the balance may go below zero.")


class BalanceResponse(BaseModel):
    data: BalanceOut


class TariffOut(BaseModel):
    id: int
    name: str
    code: int
    is_active: bool
    is_default: bool


class TariffsResponse(BaseModel):
    data: list[TariffOut]
    total: int


class SenderOut(BaseModel):
    id: int
    status: Literal["active", "blocked", "registering"]
    country: str | None
    sender: str
    created_at: str
    is_default: bool


class SendersResponse(BaseModel):
    data: list[SenderOut]
    total: int


class Health(BaseModel):
    status: str
