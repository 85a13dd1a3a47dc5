"""The upstream interface. A connector submits messages and reports back asynchronously.

Reports (status changes, suggestion clicks) may arrive late, twice or out of order:
the dispatcher applies them as compare-and-set transitions, so a connector never
needs to de-duplicate or order them itself.

Submissions carry our message id, which the upstream must treat as an idempotency
key (Google RBM lets the client choose the message id): a worker that dies after
submitting but before recording the answer resubmits, and must not send twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Channel = Literal["rcs", "sms"]
ReportStatus = Literal["delivered", "read", "undelivered", "expired"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: int
    channel: Channel
    phone: str  # digits only
    sender: str
    # RCS: {"text": ...} or {"cards": [...]} as stored (suggestions carry "type"); SMS: {"text": ...}
    content: dict[str, Any]
    expires_at: datetime
    # The RCS agent whose connector takes the message; None for SMS.
    agent_id: int | None = None
    # The account (an SMS sender is routed per account and name) and how many times it has been
    # claimed, this claim included: above 1, an earlier submit may have reached the upstream.
    account_id: int | None = None
    attempts: int = 1
    # Whether the claim may still be written upstream now: False once this process's liveness beat
    # is too old (dispatch/liveness.py), when another may take the claim over. Connectors that wait
    # before writing (SMPP's window) ask right before the write; None: always.
    may_write: Callable[[], bool] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The upstream took the message: it is now `sent`."""

    upstream_id: str


@dataclass(frozen=True, slots=True)
class NotCapable:
    """The recipient cannot receive this channel (e.g. no RCS): `undelivered` at once, fallback may follow."""

    reason: str = "not_rcs_user"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A permanent refusal: `failed`, never retried. ``code`` becomes the message's fail reason,
    ``reason`` the upstream's words in its history."""

    reason: str
    code: str = "rejected"


@dataclass(frozen=True, slots=True)
class TryLater:
    """A transient problem (timeout, 5xx, connection refused): retried with backoff until validity ends."""

    error: str


SubmitResult = Accepted | NotCapable | Rejected | TryLater


@dataclass(frozen=True, slots=True)
class Revoked:
    """The upstream withdrew the undelivered message: it will never reach the phone."""


@dataclass(frozen=True, slots=True)
class AlreadyDelivered:
    """Too late to withdraw: the upstream delivered it (its delivery report follows)."""


RevokeResult = Revoked | AlreadyDelivered | TryLater


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: int
    status: ReportStatus
    at: datetime
    # Why it ended undelivered or expired, in the upstream's words (default: the status).
    reason: str | None = None
    # The connector that reports it, recorded when the report overtakes the submit's answer.
    upstream: str | None = None


@dataclass(frozen=True, slots=True)
class ClickReport:
    message_id: int
    text: str
    postback_data: str | None
    at: datetime


Report = StatusReport | ClickReport
# Reports arrive in batches (one transaction applies a batch); a batch that raises is redelivered.
ReportSink = Callable[[Sequence[Report]], Awaitable[None]]


class Connector(Protocol):
    name: str
    # Whether messages whose validity ends are withdrawn upstream (``revoke``) before they expire.
    revokes: bool

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        """Hand one message to the upstream. Must not raise for upstream trouble: return TryLater."""
        ...

    def admits(self) -> int | None:
        """How many submits the connector takes now: None for no limit, 0 while it would refuse
        every one (an open circuit breaker), 1 for a probe. The dispatcher claims no more than that,
        so messages wait unclaimed instead of burning retries."""
        ...

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        """Withdraw a sent message that was not delivered in time (only called when ``revokes``)."""
        ...

    async def start(self, sink: ReportSink) -> None:
        """Begin delivering reports to ``sink`` (background tasks, webhook listeners...)."""
        ...

    async def stop(self) -> None: ...


@dataclass
class SubmitLog:
    """Counts submissions per message id; lets tests and crash checks see what reached an upstream."""

    counts: dict[int, int] = field(default_factory=dict)

    def record(self, message_id: int) -> int:
        self.counts[message_id] = self.counts.get(message_id, 0) + 1
        return self.counts[message_id]
