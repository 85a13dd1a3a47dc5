"""The wire format between rcsgate and the simulator service (docs/simulator.md), in one place so
the service, the HTTP connector and the report ingress cannot drift apart.

* submit: ``POST /v1/messages`` with an :class:`OutboundMessage` as JSON; the answer is 200 with
  ``{"result": "accepted" | "not_capable" | "rejected", ...}`` or, for transient trouble, 503.
* reports: the service POSTs ``{"reports": [...]}`` batches to rcsgate, signed with the shared
  secret by the Standard Webhooks scheme (HMAC-SHA256 over ``id.timestamp.body``; see
  webhooks/signing.py), so a captured batch cannot be replayed after five minutes and a forged one
  is refused.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from rcsgate.connectors.base import (
    Accepted,
    ClickReport,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    StatusReport,
    SubmitResult,
    TryLater,
)
from rcsgate.webhooks.signing import SECRET_PREFIX, WebhookSignatureError, signed_headers, verify

__all__ = [
    "MAX_REPORT_BATCH",
    "MIN_SECRET_CHARS",
    "WebhookSignatureError",
    "answer_body",
    "decode_answer",
    "decode_reports",
    "decode_submit",
    "encode_reports",
    "encode_submit",
    "sign_reports",
    "verify_reports",
]

# Reports per signed batch; the ingress applies one batch in one transaction.
MAX_REPORT_BATCH: Final = 500
MIN_SECRET_CHARS: Final = 16
# Names the submitting process (host:pid) in the simulator's submit journal.
CLIENT_HEADER: Final = "X-Rcsgate-Client"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmitBody(_Wire):
    message_id: int = Field(ge=1)
    channel: Literal["rcs", "sms"]
    phone: str = Field(pattern=r"^\d{5,20}$")
    sender: str = Field(min_length=1, max_length=100)
    content: dict[str, Any]
    expires_at: AwareDatetime


class _Answer(BaseModel):
    # Lenient on purpose: an upstream may add fields without breaking us.
    result: Literal["accepted", "not_capable", "rejected", "unavailable"]
    upstream_id: str | None = None
    reason: str | None = None
    error: str | None = None


class StatusItem(_Wire):
    type: Literal["status"] = "status"
    message_id: int = Field(ge=1)
    status: Literal["delivered", "read", "undelivered", "expired"]
    at: AwareDatetime


class ClickItem(_Wire):
    type: Literal["click"] = "click"
    message_id: int = Field(ge=1)
    text: str = Field(max_length=200)
    postback_data: str | None = Field(default=None, max_length=4096)
    at: AwareDatetime


class ReportBatch(_Wire):
    reports: list[Annotated[StatusItem | ClickItem, Field(discriminator="type")]] = Field(
        max_length=MAX_REPORT_BATCH
    )


# ------------------------------------------------------------------ submits


def encode_submit(message: OutboundMessage) -> bytes:
    return json.dumps(
        {
            "message_id": message.message_id,
            "channel": message.channel,
            "phone": message.phone,
            "sender": message.sender,
            "content": message.content,
            "expires_at": _aware(message.expires_at).isoformat(),
        },
        separators=(",", ":"),
    ).encode()


def decode_submit(body: bytes) -> OutboundMessage:
    """The message in a submit body; ValueError when it is not a valid one."""
    try:
        parsed = SubmitBody.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None
    return OutboundMessage(
        message_id=parsed.message_id,
        channel=parsed.channel,
        phone=parsed.phone,
        sender=parsed.sender,
        content=parsed.content,
        expires_at=parsed.expires_at,
    )


def answer_body(result: SubmitResult) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of the service's answer to a submit."""
    match result:
        case Accepted(upstream_id=upstream_id):
            return 200, {"result": "accepted", "upstream_id": upstream_id}
        case NotCapable(reason=reason):
            return 200, {"result": "not_capable", "reason": reason}
        case Rejected(reason=reason):
            return 200, {"result": "rejected", "reason": reason}
        case TryLater(error=error):
            # A 200: this message cannot go now (9997), but the upstream itself is up, so a circuit
            # breaker must not count it. Only a failing upstream answers 5xx (fault injection).
            return 200, {"result": "unavailable", "error": error}


def decode_answer(body: bytes) -> SubmitResult:
    """The submit result in a 200 answer; ValueError when the body is not one."""
    try:
        answer = _Answer.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None
    match answer.result:
        case "accepted":
            if not answer.upstream_id:
                raise ValueError("accepted without an upstream_id")
            return Accepted(upstream_id=answer.upstream_id[:200])
        case "not_capable":
            return NotCapable(reason=(answer.reason or "not_rcs_user")[:200])
        case "rejected":
            return Rejected(reason=(answer.reason or "rejected by upstream")[:200])
        case "unavailable":
            return TryLater(error=(answer.error or "upstream unavailable")[:200])


# ------------------------------------------------------------------ reports


def encode_reports(reports: Sequence[Report]) -> bytes:
    items: list[dict[str, Any]] = []
    for report in reports:
        at = _aware(report.at).isoformat()
        if isinstance(report, StatusReport):
            items.append(
                {"type": "status", "message_id": report.message_id, "status": report.status, "at": at}
            )
        else:
            items.append(
                {
                    "type": "click",
                    "message_id": report.message_id,
                    "text": report.text,
                    "postback_data": report.postback_data,
                    "at": at,
                }
            )
    return json.dumps({"reports": items}, separators=(",", ":")).encode()


def decode_reports(body: bytes) -> list[Report]:
    """The reports in a batch body; ValueError when it is not a valid batch."""
    try:
        batch = ReportBatch.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None
    reports: list[Report] = []
    for item in batch.reports:
        at = item.at.astimezone(UTC)
        if isinstance(item, StatusItem):
            reports.append(StatusReport(message_id=item.message_id, status=item.status, at=at))
        else:
            reports.append(ClickReport(item.message_id, item.text, item.postback_data, at))
    return reports


def _signing_secret(shared: str) -> str:
    # Operators choose any passphrase; the Standard Webhooks code wants "whsec_" + base64 of the key
    # bytes, so the passphrase's UTF-8 bytes are the HMAC key.
    if len(shared) < MIN_SECRET_CHARS:
        raise ValueError(f"the shared secret must be at least {MIN_SECRET_CHARS} characters")
    return SECRET_PREFIX + base64.b64encode(shared.encode()).decode("ascii")


def sign_reports(shared_secret: str, body: bytes, *, now: datetime | None = None) -> dict[str, str]:
    """Headers that authenticate ``body`` (sent byte for byte) to rcsgate's report ingress."""
    return signed_headers(
        secret=_signing_secret(shared_secret),
        webhook_id=f"rep_{uuid.uuid4().hex}",
        timestamp=now or datetime.now(UTC),
        body=body,
    )


def verify_reports(shared_secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise WebhookSignatureError unless ``body`` was signed with the shared secret in the last 5 minutes."""
    verify(secret=_signing_secret(shared_secret), headers=headers, body=body)


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back naive; they are UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "body"
    return f"{where}: {error.get('msg', 'invalid')}"
