"""The SMPP connector: SMS through one bind to an SMSC (see docs/connectors/smpp.md).

A message is split into the parts the API counted and billed (encoding.encode_parts), each part a
submit_sm asking for a delivery receipt. A part holds one window slot from the moment its PDU is
written until the SMSC's answer is committed (services/smpp_records.py): so at most a window of
parts is ever written but not recorded, and only those can be sent twice after a crash (SMPP has
no idempotency key). A resubmitted message skips the parts already recorded as accepted, and
reuses its concatenation reference, so a handset still joins the parts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    OutboundMessage,
    Rejected,
    ReportSink,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.connectors.smpp import receipts
from rcsgate.connectors.smpp.encoding import decode_text, encode_parts
from rcsgate.connectors.smpp.pdu import SmFields, Tlv
from rcsgate.connectors.smpp.session import SessionSettings, SmppSession, SubmitAnswer
from rcsgate.connectors.smpp.settings import SmppSettings
from rcsgate.logging_setup import get_logger
from rcsgate.services.smpp_records import InboundSms, SmppRecords
from rcsgate.store.smpp import AcceptedPart, ReceiptRow

log = get_logger("rcsgate.smpp")

# How long a submit waits for a bind that is down (a re-bind after a drop takes about a second);
# then the message is retried later, by when a route may send it over another link.
BIND_WAIT_SECONDS: Final = 2.0

# TON/NPI: an alphanumeric sender is TON 5 (alphanumeric) / NPI 0; a number is international.
_ALPHANUMERIC = (5, 0)
_INTERNATIONAL = (1, 1)


def source_address(sender: str, settings: SmppSettings) -> tuple[str, int, int]:
    """(source_addr, ton, npi) for an SMS sender name."""
    digits = sender.lstrip("+")
    ton, npi = _INTERNATIONAL if digits.isdigit() else _ALPHANUMERIC
    address = digits if digits.isdigit() else sender
    return (
        address,
        settings.source_ton if settings.source_ton is not None else ton,
        settings.source_npi if settings.source_npi is not None else npi,
    )


class SmppConnector:
    revokes = False  # SMPP's cancel_sm is not offered: an SMS past its validity is left to the SMSC

    def __init__(
        self,
        *,
        name: str,
        connector_id: int,
        settings: SmppSettings,
        records: SmppRecords,
        clock: Clock,
    ) -> None:
        self.name = name
        self.connector_id = connector_id
        self.settings = settings
        self.records = records
        self.clock = clock
        self._resp_base, self._receipt_base = {
            "same": ("text", "text"),
            "hex-to-dec": ("hex", "dec"),
            "dec-to-hex": ("dec", "hex"),
        }[settings.receipt_ids]
        self.session = SmppSession(
            SessionSettings(
                host=settings.host,
                port=settings.port,
                system_id=settings.system_id,
                password=settings.password,
                system_type=settings.system_type,
                window=settings.window,
                rate=settings.rate,
                enquire_link_seconds=settings.enquire_link_seconds,
                response_timeout=settings.response_timeout,
            ),
            on_deliver=self._on_deliver,
            name=name,
        )

    # ------------------------------------------------------------------ Connector

    @property
    def link_up(self) -> bool:
        return self.session.bound

    def admits(self) -> int | None:
        return None  # the window holds submits back; a message waits for its slot, not for a claim

    async def start(self, sink: ReportSink) -> None:
        # Receipts are applied by SmppRecords in the transaction that keeps them, not through sink.
        await self.session.start()

    async def stop(self) -> None:
        await self.session.stop()

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        return TryLater("SMPP connectors do not withdraw messages")

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        text = message.content.get("text")
        if not isinstance(text, str) or not text:
            return Rejected("an SMS needs a text", code="invalid_content")
        try:
            parts = encode_parts(
                text, long_messages=self.settings.long_messages, reference=message.message_id
            )
        except ValueError as exc:
            return Rejected(str(exc)[:200], code="invalid_content")
        if not self.session.bound:
            # Wait for the bind here, not holding a window slot: a dead link would otherwise keep
            # the whole window (and the dispatcher's batch) waiting one re-bind timeout per part.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.session.bound_event.wait(), BIND_WAIT_SECONDS)
            if not self.session.bound:
                return TryLater("not bound to the SMSC")
        # Parts an SMSC already took on an earlier attempt are not sent again.
        done = await self.records.accepted_parts(message.message_id) if message.attempts > 1 else {}
        source, ton, npi = source_address(message.sender, self.settings)
        first: str | None = done.get(1)
        for number, part in enumerate(parts, start=1):
            if number in done:
                continue
            fields = SmFields(
                source_addr_ton=ton,
                source_addr_npi=npi,
                source_addr=source,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=message.phone,
                esm_class=part.esm_class,
                registered_delivery=1,  # a receipt on every part: a part without one could not be settled
                data_coding=part.data_coding,
                short_message=part.short_message,
                tlvs=dict(part.tlvs),
            )
            async with self.session.slot():
                # The link may have died while this part waited for its slot: the parts queued behind
                # a dead bind go back at once (retried, maybe over another link of a route).
                answer = (
                    await self.session.submit(fields, slot_held=True, may_write=message.may_write)
                    if self.session.bound
                    else SubmitAnswer("not_sent", error="not bound to the SMSC")
                )
                if answer.kind == "ok":
                    smsc_id = self._normalise(answer.message_id or "", self._resp_base)
                    await self.records.accepted(AcceptedPart(smsc_id, message.message_id, number, len(parts)))
            if answer.kind != "ok":
                return self._failure(answer, number, len(parts))
            first = first or smsc_id
        return Accepted(upstream_id=(first or "")[:64])

    def _failure(self, answer: SubmitAnswer, number: int, total: int) -> SubmitResult:
        kind: str = answer.kind
        if answer.status and answer.status in self.settings.error_classes:
            kind = self.settings.error_classes[answer.status]
        where = f" (part {number} of {total})" if total > 1 else ""
        error = answer.error or kind
        if kind == "permanent":
            return Rejected(f"{error}{where}", code=error[:32])
        return TryLater(f"{kind}: {error}{where}")

    @staticmethod
    def _normalise(raw: str, base: Any) -> str:
        try:
            return receipts.normalise_id(raw, base)[:64]
        except ValueError:
            return receipts.normalise_id(raw, "text")[:64]

    # ------------------------------------------------------------------ from the SMSC

    async def _on_deliver(self, fields: SmFields) -> int:
        """Keep what the SMSC delivered; the session acknowledges it once this returns (a raise
        makes it answer ESME_RX_T_APPN, and the SMSC delivers it again)."""
        if receipts.is_receipt(fields):
            receipt = receipts.parse_receipt(fields)
            if receipt is None or receipt.outcome is None:
                return 0  # an intermediate notification (ENROUTE, ACCEPTD) changes nothing
            await self.records.receipt(
                ReceiptRow(
                    self._normalise(receipt.smsc_id, self._receipt_base),
                    receipt.outcome,
                    receipt.stat,
                    receipt.err,
                )
            )
            return 0
        payload = fields.short_message or fields.tlvs.get(Tlv.MESSAGE_PAYLOAD, b"")
        text = decode_text(fields.data_coding, payload, esm_class=fields.esm_class)
        source = "".join(ch for ch in fields.source_addr if ch.isdigit())
        if not source:
            log.info("smpp_inbound_without_number", connector=self.name)
            return 0
        await self.records.inbound(InboundSms(source, fields.destination_addr, text))
        return 0
