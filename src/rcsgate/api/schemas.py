"""Response models of the BSG contract (account side). Field names and types are the wire format."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field


class ErrorBody(BaseModel):
    message: str
    errors: dict[str, list[str]] = Field(default_factory=dict)


def _blank_is_null(value: object) -> object:
    # As for every other body: an empty (or here, blank) string is "not given", so "required".
    return None if isinstance(value, str) and not value.strip() else value


class LoginRequest(BaseModel):
    api_key: Annotated[str, BeforeValidator(_blank_is_null)] = Field(
        min_length=1, max_length=200, description="A live_ or test_ API key."
    )


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


class Amount(BaseModel):
    value: str = Field(description="7 decimal places")
    currency: str


class MessageInfo(BaseModel):
    id: int
    reference_id: str | None
    source: str = "rest"
    type: Literal["rcs", "sms"]
    phone: int
    status: str
    validity: int = Field(description="hours, 1-72")
    amount: Amount
    sender: str
    created_at: str
    sent_at: str | None
    delivered_at: str | None


class MessageResponse(BaseModel):
    data: MessageInfo


class FallbackSms(BaseModel):
    parts: int
    id: list[int]


class AlternativeChannels(BaseModel):
    sms: FallbackSms


class MessageListItem(MessageInfo):
    campaign_id: int | None
    country: str | None
    text: str | None = None
    parts: int | None = None
    rcs_options: dict[str, Any] | None = None
    alternative_channels: AlternativeChannels | None = None
    fail_reason: str | None = Field(
        default=None,
        description="rcsgate addition: why a failed, undelivered or expired message did not reach the "
        "recipient (country, invalid_number, stop_list, not_verified, no_price, stopped, rejected, "
        "agent_not_launched, invalid_content, not_rcs_user, undelivered, validity, upstream_unavailable); "
        "null otherwise",
    )


class PageMeta(BaseModel):
    total: int
    offset: int
    limit: int


class Meta(BaseModel):
    page: PageMeta


class MessagesResponse(BaseModel):
    data: list[MessageListItem]
    meta: Meta
