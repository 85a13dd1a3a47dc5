"""An in-repo asyncio SMSC for fault tests, the crash test and benchmarks.

It is an SMPP 3.4 server that accepts any bind and answers submit_sm with a message id, then
sends a delivery receipt. Faults (``Faults``) are flipped at run time by the test that owns the
instance. The scenarios follow the ones Jasmin tests its client against (no response, generic
nack, error status, unbind or a dropped connection mid-traffic, bind refused, receipt before
the response, receipt on another bind); the code is our own.

Behaviour worth knowing when writing a test against it:

* Message ids come from a counter (seeded from the clock unless ``first_id`` is given, so a
  restarted fake does not hand out the ids of the previous run). ``id_format="hex"`` gives 8
  zero-padded hex digits, upper case for odd ids and lower case for even ones; ``"dec"`` gives
  10 zero-padded decimal digits. The receipt *text* carries the same number unpadded (hex in
  lower case), the ``receipted_message_id`` TLV the id exactly as in the submit_sm_resp: a
  gateway that compares ids without normalising them loses receipts, as Jasmin did.
* Receipts are sent only when the submit_sm asks for one (registered_delivery bits 0-1: 1 any
  outcome, 2 failures only), as real SMSCs do; ``honour_registered_delivery=False`` sends one
  for every accepted submit.
* The outcome is ``outcome(destination_addr)``; by default DELIVRD, except destinations ending
  in ``0002`` (UNDELIV, err 001) and ``0003`` (REJECTD, err 001). err is 000 for DELIVRD,
  ACCEPTD and ENROUTE and 001 for anything else.
* A receipt or MO stays owed until a deliver_sm_resp with status 0 acks it: without one (no
  resp, non-zero status, connection gone) it is sent again after ``redeliver_after`` seconds
  to any bound receiver/transceiver. Nothing owed is dropped; while no such session is bound
  it waits for the next bind.
* The count-down faults (``*_next``) consume one submit_sm each, in the order the fields are
  declared; ``drop_after`` and ``unbind_after`` count accepted submits only.
* ``latency`` delays every submit_sm_resp (errors included) without serialising them: each
  answer is its own timer, so a window of N submits costs one latency, not N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from rcsgate.connectors.smpp.encoding import decode_text, encode_parts
from rcsgate.connectors.smpp.pdu import (
    Command,
    FrameError,
    Pdu,
    SmFields,
    Status,
    Tlv,
    decode_bind,
    decode_sm,
    encode,
    encode_c_string,
    encode_sm,
    tlv_int,
)

__all__ = ["FakeSmsc", "Faults", "SubmitRecord", "default_outcome", "main"]

_HEADER: Final = struct.Struct(">IIII")
_MAX_PDU: Final = 70_000
_RESPONSE_BIT: Final = 0x80000000
_MAX_SEQUENCE: Final = 0x7FFFFFFF
_READ_CHUNK: Final = 256 * 1024

_ESME_RALYBND: Final = 0x05
_ESME_RINVDSTADR: Final = 0x0B
_ESME_RBINDFAIL: Final = 0x0D

_STATES: Final = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}
_NOT_FAILED: Final = frozenset(("DELIVRD", "ACCEPTD", "ENROUTE"))
_TEXT_SAFE: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?-")
_TRANSMIT_BINDS: Final = frozenset((Command.BIND_TRANSMITTER, Command.BIND_TRANSCEIVER))
_RECEIVE_BINDS: Final = frozenset((Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER))


def default_outcome(destination: str) -> str:
    """DELIVRD, except destinations ending 0002 (UNDELIV) and 0003 (REJECTD)."""
    if destination.endswith("0002"):
        return "UNDELIV"
    if destination.endswith("0003"):
        return "REJECTD"
    return "DELIVRD"


@dataclass
class SubmitRecord:
    """One accepted submit_sm. ``bind`` numbers the connections from 1 in order of arrival."""

    bind: int
    sequence: int
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    message_id: str


@dataclass
class Faults:
    """Fault switches, all off by default; a test flips them while traffic runs."""

    throttle_next: int = 0  # answer the next N submit_sm with ESME_RTHROTTLED
    queue_full_next: int = 0  # ... with ESME_RMSGQFUL
    generic_nack_next: int = 0  # ... with generic_nack (ESME_RSYSERR)
    no_response_next: int = 0  # swallow the next N submit_sm: no resp, not accepted
    error_next: int = 0  # answer the next N with error_status
    error_status: int = 0x45
    # The Nth accepted submit from now (0 or 1: the next) is accepted but the connection is
    # closed before its resp; resps still waiting for `latency` are lost with it.
    drop_after: int | None = None
    # The Nth accepted submit from now is answered normally, then the fake sends unbind; later
    # submits on that session get ESME_RINVBNDSTS and it closes once unbind_resp arrives.
    unbind_after: int | None = None
    receipt_before_response: bool = False  # the receipt goes out ahead of the submit_sm_resp
    receipts_on_other_bind: bool = False  # receipts go to another bound session when one exists
    bind_status: int = 0  # non-zero: refuse binds with this status and close


@dataclass(slots=True, eq=False)
class _Owed:
    """A deliver_sm the ESME must ack: a receipt or an MO. The body is encoded once."""

    body: bytes
    is_receipt: bool
    acked: bool = False


class _Session:
    """One TCP connection and, once bound, its bind."""

    def __init__(self, number: int, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.number = number
        self.writer = writer
        self.loop = loop
        self.bind_command: int | None = None
        self.unbinding = False
        self.close_when_idle = False
        self.closed = False
        self.outstanding = 0
        self._sequence = 0
        self._out = bytearray()
        self._flush_pending = False

    @property
    def can_transmit(self) -> bool:
        return self.bind_command in _TRANSMIT_BINDS and not self.unbinding

    @property
    def can_receive(self) -> bool:
        return self.bind_command in _RECEIVE_BINDS and not self.unbinding and not self.closed

    def next_sequence(self) -> int:
        self._sequence = self._sequence % _MAX_SEQUENCE + 1
        return self._sequence

    def send(self, data: bytes) -> None:
        # PDUs are collected and written once per loop iteration: one syscall for a whole
        # batch of resps and receipts instead of one per PDU.
        if self.closed:
            return
        self._out += data
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        if self._out and not self.closed:
            data, self._out = self._out, bytearray()
            self.writer.write(data)

    def close(self, *, abort: bool = False) -> None:
        if self.closed:
            return
        if abort:
            self._out.clear()
            self.closed = True
            self.writer.transport.abort()
        else:
            self.flush()
            self.closed = True
            self.writer.close()


class FakeSmsc:
    """An SMPP 3.4 SMSC on a loopback port; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        receipts: bool = True,
        receipt_delay: float = 0.0,
        id_format: Literal["hex", "dec"] = "hex",
        receipt_tlvs: bool = True,
        outcome: Callable[[str], str] | None = None,
        redeliver_after: float = 5.0,
        system_id: str = "fake-smsc",
        honour_registered_delivery: bool = True,
        first_id: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.receipts = receipts
        self.receipt_delay = receipt_delay
        self.id_format = id_format
        self.receipt_tlvs = receipt_tlvs
        self.outcome = outcome or default_outcome
        self.redeliver_after = redeliver_after
        self.system_id = system_id
        self.honour_registered_delivery = honour_registered_delivery
        # Below 2**27 the ids keep leading zeros in both formats; the clock seed keeps a
        # restarted fake from reusing the ids of a previous run.
        self._next_id = first_id if first_id is not None else int(time.time() * 1000) % (1 << 27)

        self.faults = Faults()
        self.submits: list[SubmitRecord] = []
        self.receipts_sent = 0
        self.receipts_acked = 0
        self.mo_sent = 0
        self.mo_acked = 0

        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[int, _Session] = {}
        self._session_count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._waiting: deque[_Owed] = deque()
        # (session number, sequence) -> (what was sent, when), in sending order, so the sweeper
        # finds everything overdue at the front.
        self._in_flight: OrderedDict[tuple[int, int], tuple[_Owed, float]] = OrderedDict()
        self._receipts_created = 0
        self._seen: set[tuple[str, int, bytes, tuple[tuple[int, bytes], ...]]] = set()
        self._duplicates = 0
        self._max_outstanding = 0
        self._mo_reference = 0
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> int:
        """Listen and return the bound port."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())
        return self.port

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions.values()):
            session.close(abort=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    # --- what tests look at --------------------------------------------------------------

    def max_outstanding(self) -> int:
        """The most unanswered submit_sm one session had at once (swallowed ones not counted)."""
        return self._max_outstanding

    def duplicates(self) -> int:
        """Accepted submits equal to an earlier one in destination, esm_class, bytes and TLVs."""
        return self._duplicates

    def pending_receipts(self) -> int:
        """Receipts created and not yet acked (waiting, delayed, in flight)."""
        return self._receipts_created - self.receipts_acked

    def bound_sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if s.bind_command is not None and not s.closed)

    def stats(self) -> dict[str, int]:
        return {
            "submits": len(self.submits),
            "duplicates": self._duplicates,
            "receipts_sent": self.receipts_sent,
            "receipts_acked": self.receipts_acked,
            "pending_receipts": self.pending_receipts(),
            "max_outstanding": self._max_outstanding,
            "mo_sent": self.mo_sent,
            "mo_acked": self.mo_acked,
        }

    async def send_mo(self, source: str, destination: str, text: str) -> None:
        """An inbound SMS (a non-receipt deliver_sm; UDH parts when long), owed until acked."""
        self._mo_reference += 1
        for part in encode_parts(text, long_messages="udh", reference=self._mo_reference):
            body = encode_sm(
                SmFields(
                    source_addr_ton=1,
                    source_addr_npi=1,
                    source_addr=source,
                    destination_addr=destination,
                    esm_class=part.esm_class,
                    data_coding=part.data_coding,
                    short_message=part.short_message,
                    tlvs=dict(part.tlvs),
                )
            )
            self._deliver(_Owed(body, is_receipt=False), prefer=None)

    # --- connections ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._session_count += 1
        session = _Session(self._session_count, writer, asyncio.get_running_loop())
        self._sessions[session.number] = session
        buffer = bytearray()
        try:
            while not session.closed:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                buffer += data
                offset = self._handle_buffer(session, buffer)
                del buffer[:offset]
                session.flush()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            session.close(abort=True)
            del self._sessions[session.number]
            if task is not None:
                self._tasks.discard(task)

    def _handle_buffer(self, session: _Session, buffer: bytearray) -> int:
        """Handle every complete PDU in ``buffer``; return how many octets were used."""
        offset = 0
        end = len(buffer)
        while end - offset >= 16 and not session.closed:
            length, command, status, sequence = _HEADER.unpack_from(buffer, offset)
            if length < 16 or length > _MAX_PDU:
                # No way to find the next PDU boundary: say so and hang up.
                session.send(encode(Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDLEN, sequence)))
                session.close()
                return end
            if end - offset < length:
                break
            body = bytes(buffer[offset + 16 : offset + length])
            offset += length
            self._handle(session, Pdu(command, status, sequence, body))
        return offset

    def _handle(self, session: _Session, pdu: Pdu) -> None:
        command = pdu.command
        if command == Command.SUBMIT_SM:
            self._submit(session, pdu)
        elif command == Command.DELIVER_SM_RESP:
            self._acked(session, pdu.sequence, pdu.status)
        elif command == Command.ENQUIRE_LINK:
            session.send(encode(Pdu(Command.ENQUIRE_LINK_RESP, 0, pdu.sequence)))
        elif command in (Command.BIND_TRANSCEIVER, Command.BIND_TRANSMITTER, Command.BIND_RECEIVER):
            self._bind(session, pdu)
        elif command == Command.UNBIND:
            session.send(encode(Pdu(Command.UNBIND_RESP, 0, pdu.sequence)))
            session.unbinding = True
            session.close()
        elif command == Command.UNBIND_RESP:
            session.close_when_idle = True
            self._close_if_idle(session)
        elif not command & _RESPONSE_BIT:
            session.send(encode(Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDID, pdu.sequence)))
        # Other responses (enquire_link_resp, generic_nack) need nothing from us.

    def _bind(self, session: _Session, pdu: Pdu) -> None:
        resp_command = pdu.command | _RESPONSE_BIT
        if session.bind_command is not None:
            session.send(encode(Pdu(resp_command, _ESME_RALYBND, pdu.sequence)))
            return
        if self.faults.bind_status:
            session.send(encode(Pdu(resp_command, self.faults.bind_status, pdu.sequence)))
            session.close()
            return
        try:
            decode_bind(pdu.body)  # any credentials are accepted, but the body must parse
        except FrameError:
            session.send(encode(Pdu(resp_command, _ESME_RBINDFAIL, pdu.sequence)))
            return
        session.bind_command = pdu.command
        session.send(encode(Pdu(resp_command, 0, pdu.sequence, encode_c_string(self.system_id))))
        if session.can_receive:
            while self._waiting:
                owed = self._waiting.popleft()
                if not owed.acked:
                    self._send_owed(session, owed)

    # --- submit_sm -----------------------------------------------------------------------

    def _submit(self, session: _Session, pdu: Pdu) -> None:
        sequence = pdu.sequence
        if not session.can_transmit:
            self._answer(session, sequence, Status.ESME_RINVBNDSTS)
            return
        faults = self.faults
        if faults.throttle_next > 0:
            faults.throttle_next -= 1
            self._answer(session, sequence, Status.ESME_RTHROTTLED)
            return
        if faults.queue_full_next > 0:
            faults.queue_full_next -= 1
            self._answer(session, sequence, Status.ESME_RMSGQFUL)
            return
        if faults.generic_nack_next > 0:
            faults.generic_nack_next -= 1
            self._answer(session, sequence, Status.ESME_RSYSERR, command=Command.GENERIC_NACK)
            return
        if faults.no_response_next > 0:
            faults.no_response_next -= 1
            return
        if faults.error_next > 0:
            faults.error_next -= 1
            self._answer(session, sequence, faults.error_status)
            return
        try:
            fields = decode_sm(pdu.body)
        except FrameError:
            self._answer(session, sequence, Status.ESME_RINVCMDLEN)
            return
        # The checks an SMSC makes that catch an ESME's encoding bugs.
        if not fields.destination_addr:
            self._answer(session, sequence, _ESME_RINVDSTADR)
            return
        if fields.short_message and fields.tlvs.get(Tlv.MESSAGE_PAYLOAD):
            self._answer(session, sequence, Status.ESME_RINVMSGLEN)
            return

        message_id = self._new_message_id()
        self._record(session, sequence, fields, message_id)
        receipt = self._make_receipt(fields, message_id)
        drop = self._count_down("drop_after")
        unbind = self._count_down("unbind_after")

        if receipt is not None and faults.receipt_before_response:
            self._deliver(receipt, prefer=session)
            receipt = None
        if drop:
            session.close(abort=True)
            if receipt is not None:
                self._schedule_receipt(receipt, session)
            return
        self._answer(session, sequence, 0, body=encode_c_string(message_id), receipt=receipt)
        if unbind:
            session.unbinding = True
            session.send(encode(Pdu(Command.UNBIND, 0, session.next_sequence())))
            # An ESME that never answers the unbind still loses the connection.
            session.loop.call_later(2.0, session.close)

    def _count_down(self, name: Literal["drop_after", "unbind_after"]) -> bool:
        remaining = getattr(self.faults, name)
        if remaining is None:
            return False
        remaining -= 1
        if remaining > 0:
            setattr(self.faults, name, remaining)
            return False
        setattr(self.faults, name, None)
        return True

    def _new_message_id(self) -> str:
        number = self._next_id
        self._next_id += 1
        if self.id_format == "dec":
            return f"{number:010d}"
        return f"{number:08X}" if number % 2 else f"{number:08x}"

    def _record(self, session: _Session, sequence: int, fields: SmFields, message_id: str) -> None:
        record = SubmitRecord(
            bind=session.number,
            sequence=sequence,
            source_addr=fields.source_addr,
            destination_addr=fields.destination_addr,
            esm_class=fields.esm_class,
            data_coding=fields.data_coding,
            short_message=fields.short_message,
            tlvs=fields.tlvs,
            message_id=message_id,
        )
        self.submits.append(record)
        key = (
            record.destination_addr,
            record.esm_class,
            record.short_message,
            tuple(sorted(record.tlvs.items())),
        )
        if key in self._seen:
            self._duplicates += 1
        else:
            self._seen.add(key)

    def _answer(
        self,
        session: _Session,
        sequence: int,
        status: int,
        *,
        body: bytes = b"",
        command: int = Command.SUBMIT_SM_RESP,
        receipt: _Owed | None = None,
    ) -> None:
        data = encode(Pdu(command, status, sequence, body))
        session.outstanding += 1
        if session.outstanding > self._max_outstanding:
            self._max_outstanding = session.outstanding
        if self.latency > 0:
            session.loop.call_later(self.latency, self._respond, session, data, receipt)
        else:
            self._respond(session, data, receipt)

    def _respond(self, session: _Session, data: bytes, receipt: _Owed | None) -> None:
        session.outstanding -= 1
        session.send(data)  # a no-op when the connection is gone: the resp is lost
        if receipt is not None:
            # The message was accepted whether or not its resp got through.
            self._schedule_receipt(receipt, session)
        self._close_if_idle(session)

    def _close_if_idle(self, session: _Session) -> None:
        if session.close_when_idle and session.outstanding <= 0:
            session.close()

    # --- receipts and MOs ----------------------------------------------------------------

    def _make_receipt(self, fields: SmFields, message_id: str) -> _Owed | None:
        if not self.receipts:
            return None
        stat = self.outcome(fields.destination_addr)
        if self.honour_registered_delivery:
            wanted = fields.registered_delivery & 0x03
            if wanted == 0 or (wanted == 2 and stat in _NOT_FAILED):
                return None
        number = int(message_id, 16 if self.id_format == "hex" else 10)
        shown_id = f"{number:x}" if self.id_format == "hex" else str(number)
        raw = fields.short_message or fields.tlvs.get(Tlv.MESSAGE_PAYLOAD, b"")
        original = decode_text(fields.data_coding, raw, esm_class=fields.esm_class)[:20]
        excerpt = "".join(ch if ch in _TEXT_SAFE else "." for ch in original)
        submitted = time.strftime("%y%m%d%H%M")
        text = (
            f"id:{shown_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{submitted} done date:{time.strftime('%y%m%d%H%M')} stat:{stat} "
            f"err:{'000' if stat in _NOT_FAILED else '001'} text:{excerpt}"
        )
        tlvs: dict[int, bytes] = {}
        if self.receipt_tlvs:
            tlvs[Tlv.RECEIPTED_MESSAGE_ID] = encode_c_string(message_id)
            if stat in _STATES:
                tlvs[Tlv.MESSAGE_STATE] = tlv_int(_STATES[stat], 1)
        body = encode_sm(
            SmFields(
                source_addr_ton=fields.dest_addr_ton,
                source_addr_npi=fields.dest_addr_npi,
                source_addr=fields.destination_addr,
                dest_addr_ton=fields.source_addr_ton,
                dest_addr_npi=fields.source_addr_npi,
                destination_addr=fields.source_addr,
                esm_class=0x04,
                short_message=text.encode("ascii"),
                tlvs=tlvs,
            )
        )
        self._receipts_created += 1
        return _Owed(body, is_receipt=True)

    def _schedule_receipt(self, receipt: _Owed, session: _Session) -> None:
        if self.receipt_delay > 0:
            session.loop.call_later(self.receipt_delay, self._deliver, receipt, session)
        else:
            self._deliver(receipt, prefer=session)

    def _deliver(self, owed: _Owed, prefer: _Session | None, avoid: int | None = None) -> None:
        if self._stopping:
            return
        candidates = [s for s in self._sessions.values() if s.can_receive]
        if not candidates:
            self._waiting.append(owed)
            return
        target = None
        if owed.is_receipt and self.faults.receipts_on_other_bind:
            target = next((s for s in candidates if s is not prefer), None)
        if target is None and prefer is not None and prefer.can_receive:
            target = prefer
        if target is None:
            target = next((s for s in candidates if s.number != avoid), candidates[0])
        self._send_owed(target, owed)

    def _send_owed(self, session: _Session, owed: _Owed) -> None:
        sequence = session.next_sequence()
        session.send(encode(Pdu(Command.DELIVER_SM, 0, sequence, owed.body)))
        self._in_flight[(session.number, sequence)] = (owed, session.loop.time())
        if owed.is_receipt:
            self.receipts_sent += 1
        else:
            self.mo_sent += 1

    def _acked(self, session: _Session, sequence: int, status: int) -> None:
        if status != 0:
            return  # left in flight: the sweeper sends it again
        entry = self._in_flight.pop((session.number, sequence), None)
        if entry is None:
            return  # unknown, or already given up on and sent again
        owed = entry[0]
        if owed.acked:
            return
        owed.acked = True
        if owed.is_receipt:
            self.receipts_acked += 1
        else:
            self.mo_acked += 1

    async def _sweep(self) -> None:
        """Send again whatever has waited ``redeliver_after`` seconds for its ack."""
        interval = min(max(self.redeliver_after / 10, 0.01), 0.5)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            deadline = loop.time() - self.redeliver_after
            while self._in_flight:
                key, (owed, sent_at) = next(iter(self._in_flight.items()))
                if sent_at > deadline:
                    break
                del self._in_flight[key]
                if not owed.acked:
                    self._deliver(owed, prefer=None, avoid=key[0])


# --- running it as a process -----------------------------------------------------------------


def _write_stats(path: Path, stats: dict[str, int]) -> None:
    # Written aside and renamed, so a reader never sees a half-written file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


async def _run(args: argparse.Namespace) -> None:
    smsc = FakeSmsc(
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        receipts=not args.no_receipts,
        receipt_delay=args.receipt_delay_ms / 1000,
        id_format=args.id_format,
        redeliver_after=args.redeliver_after,
    )
    port = await smsc.start()
    print(f"listening on {args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stats_file = Path(args.stats_file) if args.stats_file else None
    try:
        while not stop.is_set():
            if stats_file is not None:
                _write_stats(stats_file, smsc.stats())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.2)
    finally:
        if stats_file is not None:
            _write_stats(stats_file, smsc.stats())
        await smsc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcsgate.connectors.smpp.fake_smsc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0)
    parser.add_argument("--redeliver-after", type=float, default=5.0, help="seconds")
    parser.add_argument("--id-format", choices=("hex", "dec"), default="hex")
    parser.add_argument("--no-receipts", action="store_true")
    parser.add_argument("--stats-file")
    args = parser.parse_args(argv)
    runner: Any = asyncio.run
    try:
        import uvloop  # the fake shares the cores with what it measures: take the faster loop

        runner = uvloop.run
    except ImportError:
        pass
    runner(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
