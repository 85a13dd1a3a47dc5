"""Response models of the campaign endpoints (BSG's CampaignSchema and DetailCampaignSchema)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rcsgate.api.schemas import Meta


class ShortStats(BaseModel):
    delivered: int = Field(description="delivered + read")
    sent: int = Field(description="delivered, sent, accepted, sending, undelivered, failed, expired, unknown")


class SmsShortStats(BaseModel):
    statistic: ShortStats
    # The group page's table says `statistics`, its example `statistic`: both are sent.
    statistics: ShortStats


class CampaignAlternativeChannels(BaseModel):
    sms: SmsShortStats


class CampaignOut(BaseModel):
    id: int
    name: str
    sender: str
    status: str
    message_type: str
    start_at: str | None
    real_start_at: str | None
    finished_at: str | None
    created_at: str
    statistics: ShortStats
    calculated_price: float
    currency: str
    alternative_channels: CampaignAlternativeChannels


class CampaignResponse(BaseModel):
    data: CampaignOut


class CampaignsResponse(BaseModel):
    data: list[CampaignOut]
    meta: Meta


class StatusCounts(BaseModel):
    delivered: int
    sent: int
    scheduled: int
    moderation: int
    accepted: int
    sending: int
    expired: int
    failed: int
    undelivered: int
    unknown: int
    read: int
    not_viber_user: int
    not_rcs_user: int


class SmsDetailStats(BaseModel):
    statistics: StatusCounts


class DetailAlternativeChannels(BaseModel):
    sms: SmsDetailStats


class CampaignDetailOut(BaseModel):
    id: int
    name: str
    sender: str
    status: str
    type: str
    started_at: str | None
    actual_start_at: str | None
    finished_at: str | None
    created_at: str
    statistics: StatusCounts
    alternative_channels: DetailAlternativeChannels
    total_messages: int
    total_phones: int
    total_price: str
    currency: str


class CampaignDetailResponse(BaseModel):
    data: CampaignDetailOut
