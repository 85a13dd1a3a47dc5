"""An account's dashboard figures: messages per day and status over the last 7 days (in the account's
time zone), the rates derived from them, and the campaigns running now.

The counts are one GROUP BY over the account's messages created since the first day's midnight
(the index ``(account_id, created_at)``), bucketed by day in SQL, so a busy week costs one scan of
that week's index entries and no more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, select

from rcsgate.domain.message_states import STATUSES
from rcsgate.domain.records import Account
from rcsgate.domain.timefmt import zone
from rcsgate.services import accounts, campaigns
from rcsgate.services.campaigns import CampaignView
from rcsgate.store.db import Database
from rcsgate.store.tables import campaigns as campaigns_table
from rcsgate.store.tables import messages

DAYS = 7
RUNNING = ("sending", "paused")
MAX_RUNNING = 10
DELIVERED = ("delivered", "read")
# Outcomes a delivery rate is taken over: a message still on its way is in none of them.
OUTCOMES = ("delivered", "read", "undelivered", "expired", "failed", "unknown")
IN_QUEUE = ("scheduled", "moderation", "accepted", "sending")


@dataclass(slots=True)
class Counts:
    """Messages by status: all of them, the RCS ones, and the SMS sent as an RCS message's fallback."""

    by_status: dict[str, int] = field(default_factory=dict)
    rcs: dict[str, int] = field(default_factory=dict)
    sms_fallbacks: int = 0

    def add(self, kind: str, is_fallback: bool, status: str, n: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + n
        if kind == "rcs":
            self.rcs[status] = self.rcs.get(status, 0) + n
        elif is_fallback:
            self.sms_fallbacks += n

    def merge(self, other: Counts) -> None:
        for status, n in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + n
        for status, n in other.rcs.items():
            self.rcs[status] = self.rcs.get(status, 0) + n
        self.sms_fallbacks += other.sms_fallbacks

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def count(self, *statuses: str) -> int:
        return sum(self.by_status.get(s, 0) for s in statuses)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered (or read) among the messages that reached an outcome, RCS and SMS alike."""
        done = self.count(*OUTCOMES)
        return self.count(*DELIVERED) / done if done else None

    @property
    def read_rate(self) -> float | None:
        """Read among the RCS messages delivered."""
        delivered = sum(self.rcs.get(s, 0) for s in DELIVERED)
        return self.rcs.get("read", 0) / delivered if delivered else None

    @property
    def fallback_share(self) -> float | None:
        """RCS messages that fell back to SMS, among all RCS messages."""
        rcs = sum(self.rcs.values())
        return self.sms_fallbacks / rcs if rcs else None

    def statuses(self) -> list[tuple[str, int]]:
        """Non-zero statuses in the state machine's order."""
        return [(s, self.by_status[s]) for s in STATUSES if self.by_status.get(s)]


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    counts: Counts

    @property
    def label(self) -> str:
        return self.day.strftime("%a %d")


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    campaign: CampaignView

    @property
    def total(self) -> int:
        return max(self.campaign.total_phones, sum(self.campaign.rcs.values()))

    def _n(self, statuses: Iterable[str]) -> int:
        return sum(self.campaign.rcs.get(s, 0) for s in statuses)

    @property
    def delivered(self) -> int:
        return self._n(DELIVERED)

    @property
    def sent(self) -> int:
        return self._n(("sent",))

    @property
    def failed(self) -> int:
        # Undelivered for lack of RCS is counted apart by the campaign's statistics (not_rcs_user).
        return self._n(("undelivered", "expired", "failed", "unknown", "not_rcs_user"))

    @property
    def queued(self) -> int:
        return self._n(IN_QUEUE)

    @property
    def processed(self) -> int:
        return self.delivered + self.sent + self.failed

    @property
    def ratio(self) -> float:
        return self.processed / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    account: Account
    days: list[Day]  # oldest first; the last one is today
    running: list[CampaignProgress]

    @property
    def today(self) -> Counts:
        return self.days[-1].counts

    @property
    def week(self) -> Counts:
        total = Counts()
        for d in self.days:
            total.merge(d.counts)
        return total


def day_starts(now: datetime, tz: str, days: int = DAYS) -> list[datetime]:
    """The UTC moments of the local midnights starting each of the last ``days`` days (today last)."""
    local = zone(tz)
    today = now.astimezone(local).date()
    return [
        datetime.combine(today - timedelta(days=back), time(0), tzinfo=local).astimezone(now.tzinfo)
        for back in range(days - 1, -1, -1)
    ]


async def _counts(db: Database, account_id: int, starts: list[datetime], end: datetime) -> list[Counts]:
    c = messages.c
    bucket = case(
        *[(c.created_at >= start, index) for index, start in reversed(list(enumerate(starts)))],
        else_=0,
    ).label("bucket")
    fallback = c.parent_id.is_not(None).label("fallback")
    query: Any = (
        select(bucket, c.type, fallback, c.status, func.count())
        .where(c.account_id == account_id, c.created_at >= starts[0], c.created_at <= end)
        .group_by(bucket, c.type, fallback, c.status)
    )
    out = [Counts() for _ in starts]
    async with db.read() as conn:
        for index, kind, is_fallback, status, n in await conn.execute(query):
            out[int(index)].add(kind, bool(is_fallback), status, int(n))
    return out


async def running_campaigns(db: Database, *, account_id: int) -> list[CampaignProgress]:
    t = campaigns_table.c
    async with db.read() as conn:
        ids = list(
            (
                await conn.execute(
                    select(t.id)
                    .where(t.account_id == account_id, t.status.in_(RUNNING))
                    .order_by(t.id.desc())
                    .limit(MAX_RUNNING)
                )
            ).scalars()
        )
    views = [await campaigns.get_campaign(db, account_id=account_id, campaign_id=int(i)) for i in ids]
    return [CampaignProgress(v) for v in views]


async def overview(db: Database, *, account_id: int, now: datetime) -> Overview:
    account = await accounts.get_account(db, account_id)
    starts = day_starts(now, account.timezone)
    counts = await _counts(db, account_id, starts, now)
    days = [
        Day(start.astimezone(zone(account.timezone)).date(), n)
        for start, n in zip(starts, counts, strict=True)
    ]
    return Overview(account=account, days=days, running=await running_campaigns(db, account_id=account_id))
