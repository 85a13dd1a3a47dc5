"""A small codec for the SMPP 3.4 PDUs an ESME needs: the header, bind, submit_sm/deliver_sm and TLVs.

Written here rather than taken from a library: we use about a dozen PDUs, the codec is the part
an SMPP library gets right most easily, and owning it keeps the session free of a third-party
object model (smpp34's core acks deliver_sm itself; smpplib is blocking). ``smpp34.decode`` is
used in the tests as an independent check of the wire format.

Wire rules (SMPP v3.4 Issue 1.2, section 3 and 5):

* Every PDU starts with a 16-byte header of four big-endian unsigned 32-bit integers:
  command_length (including the header), command_id, command_status, sequence_number.
* C-Octet Strings are NUL-terminated; the spec's maximum sizes include the NUL. We send ASCII
  (latin-1 at most) because the spec defines them as ASCII and SMSCs differ beyond that.
* ``short_message`` holds at most 254 octets and must be empty when the ``message_payload`` TLV
  is used.
* TLVs are tag (2 bytes), length (2 bytes), value, in any order after the mandatory fields.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

__all__ = [
    "HEADER_LENGTH",
    "STATUS_NAMES",
    "BindFields",
    "Command",
    "FrameError",
    "Pdu",
    "SmFields",
    "Status",
    "Tlv",
    "decode",
    "decode_bind",
    "decode_c_string",
    "decode_message_id",
    "decode_sm",
    "decode_tlvs",
    "encode",
    "encode_bind",
    "encode_c_string",
    "encode_sm",
    "encode_tlvs",
    "read_pdu",
    "status_name",
    "tlv_int",
    "tlv_value_int",
]

HEADER_LENGTH: Final = 16
_HEADER: Final = struct.Struct(">IIII")
_TLV_HEADER: Final = struct.Struct(">HH")

# Maximum sizes of C-Octet Strings, NUL included (SMPP 3.4 section 4).
MAX_SYSTEM_ID: Final = 16
MAX_PASSWORD: Final = 9
MAX_SYSTEM_TYPE: Final = 13
MAX_ADDRESS_RANGE: Final = 41
MAX_SERVICE_TYPE: Final = 6
MAX_ADDR: Final = 21
MAX_TIME: Final = 17
MAX_MESSAGE_ID: Final = 65
MAX_SHORT_MESSAGE: Final = 254


class Command(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class Tlv(IntEnum):
    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class Status(IntEnum):
    """The command_status values the session reasons about by name."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RSYSERR = 0x08
    ESME_RMSGQFUL = 0x14
    ESME_RTHROTTLED = 0x58
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RUNKNOWNERR = 0xFF


# command_status names from SMPP 3.4 section 5.1.3 (table 5-2). Codes the spec reserves or
# that vendors define (0x400-0x4FF) have no name and are shown in hex by status_name().
STATUS_NAMES: Final[dict[int, str]] = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL",
    0x14: "ESME_RMSGQFUL",
    0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME",
    0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI",
    0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM",
    0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM",
    0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}


def status_name(code: int) -> str:
    """The spec name of a command_status, or ``0x%08x`` for codes without one."""
    return STATUS_NAMES.get(code) or f"0x{code:08x}"


class FrameError(Exception):
    """A PDU that cannot be framed or parsed: bad command_length, truncated or overrunning body."""


@dataclass(slots=True)
class Pdu:
    """One PDU: the header fields (command_length is derived) and the undecoded body.

    ``command`` is an int, not a ``Command``, so unknown command ids survive framing and can be
    answered with generic_nack.
    """

    command: int
    status: int
    sequence: int
    body: bytes = b""


def encode(pdu: Pdu) -> bytes:
    """The wire form: 16-byte header followed by the body."""
    return _HEADER.pack(HEADER_LENGTH + len(pdu.body), pdu.command, pdu.status, pdu.sequence) + pdu.body


def decode(data: bytes) -> Pdu:
    """Parse one complete PDU (header and body) held in memory."""
    if len(data) < HEADER_LENGTH:
        raise FrameError(f"PDU of {len(data)} bytes is shorter than the header")
    length, command, status, sequence = _HEADER.unpack_from(data)
    if length != len(data):
        raise FrameError(f"command_length {length} does not match the {len(data)} bytes given")
    return Pdu(command, status, sequence, bytes(data[HEADER_LENGTH:]))


async def read_pdu(reader: asyncio.StreamReader, *, max_length: int = 70_000) -> Pdu:
    """Read exactly one PDU from the stream.

    A command_length below 16 or above ``max_length`` means the stream is out of step (or
    hostile): there is no way to find the next PDU boundary, so the caller must drop the
    connection. ``max_length`` defaults to a little over a 64K message_payload plus the fixed
    fields. EOF, including EOF in the middle of a PDU, raises ``asyncio.IncompleteReadError``.
    """
    header = await reader.readexactly(HEADER_LENGTH)
    length, command, status, sequence = _HEADER.unpack(header)
    if length < HEADER_LENGTH or length > max_length:
        raise FrameError(f"command_length {length} outside 16..{max_length}")
    body = await reader.readexactly(length - HEADER_LENGTH) if length > HEADER_LENGTH else b""
    return Pdu(command, status, sequence, body)


# --- C-Octet Strings and integers ------------------------------------------------------------


def encode_c_string(value: str, max_length: int | None = None) -> bytes:
    """``value`` as a NUL-terminated latin-1 string.

    ``max_length`` is the spec's maximum size, NUL included; a longer value raises ValueError
    rather than being cut, because a truncated address or id would silently go to the wrong
    place. Characters outside latin-1, and embedded NULs, raise ValueError too.
    """
    if "\0" in value:
        raise ValueError("C-Octet String contains a NUL")
    raw = value.encode("latin-1")  # UnicodeEncodeError is a ValueError
    if max_length is not None and len(raw) + 1 > max_length:
        raise ValueError(f"{value!r} is longer than {max_length - 1} octets")
    return raw + b"\0"


def decode_c_string(body: bytes, offset: int) -> tuple[str, int]:
    """The C-Octet String starting at ``offset`` and the offset just past its NUL."""
    end = body.find(b"\0", offset)
    if end < 0:
        raise FrameError(f"unterminated C-Octet String at offset {offset}")
    return body[offset:end].decode("latin-1"), end + 1


def _byte(value: int, name: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name}={value} does not fit in one octet")
    return bytes((value,))


def _read_byte(body: bytes, offset: int, name: str) -> tuple[int, int]:
    if offset >= len(body):
        raise FrameError(f"body ends before {name}")
    return body[offset], offset + 1


def tlv_int(value: int, size: int) -> bytes:
    """A TLV integer value: big-endian unsigned of ``size`` octets (1, 2 or 4)."""
    if size not in (1, 2, 4):
        raise ValueError(f"TLV integer size must be 1, 2 or 4, not {size}")
    return value.to_bytes(size, "big")  # OverflowError (an ArithmeticError) if it does not fit


def tlv_value_int(raw: bytes) -> int:
    """A TLV integer value read back, whatever its size (vendors differ on 1 vs 2 octets)."""
    return int.from_bytes(raw, "big")


# --- TLVs --------------------------------------------------------------------------------------


def encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    parts: list[bytes] = []
    for tag, value in tlvs.items():
        if not 0 <= tag <= 0xFFFF:
            raise ValueError(f"TLV tag {tag:#x} does not fit in two octets")
        if len(value) > 0xFFFF:
            raise ValueError(f"TLV {tag:#06x} value of {len(value)} octets is over 65535")
        parts.append(_TLV_HEADER.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def decode_tlvs(body: bytes, offset: int) -> dict[int, bytes]:
    """All TLVs from ``offset`` to the end of the body. A repeated tag keeps its last value."""
    tlvs: dict[int, bytes] = {}
    end = len(body)
    while offset < end:
        if offset + 4 > end:
            raise FrameError(f"truncated TLV header at offset {offset}")
        tag, length = _TLV_HEADER.unpack_from(body, offset)
        offset += 4
        if offset + length > end:
            raise FrameError(f"TLV {tag:#06x} of {length} octets overruns the body")
        tlvs[tag] = bytes(body[offset : offset + length])
        offset += length
    return tlvs


# --- submit_sm / deliver_sm ----------------------------------------------------------------------


@dataclass(slots=True)
class SmFields:
    """The body of submit_sm and deliver_sm, which share one layout (SMPP 3.4 4.4.1 and 4.6.1).

    ``sm_length`` is not stored: it is always ``len(short_message)``.
    """

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)


def encode_sm(fields: SmFields) -> bytes:
    """The submit_sm / deliver_sm body. ValueError when a field breaks the spec's limits."""
    if len(fields.short_message) > MAX_SHORT_MESSAGE:
        raise ValueError(f"short_message of {len(fields.short_message)} octets is over {MAX_SHORT_MESSAGE}")
    if fields.short_message and fields.tlvs.get(Tlv.MESSAGE_PAYLOAD):
        # The spec forbids both; SMSCs pick one or the other, so the text would be cut.
        raise ValueError("short_message and message_payload must not be used together")
    return b"".join(
        (
            encode_c_string(fields.service_type, MAX_SERVICE_TYPE),
            _byte(fields.source_addr_ton, "source_addr_ton"),
            _byte(fields.source_addr_npi, "source_addr_npi"),
            encode_c_string(fields.source_addr, MAX_ADDR),
            _byte(fields.dest_addr_ton, "dest_addr_ton"),
            _byte(fields.dest_addr_npi, "dest_addr_npi"),
            encode_c_string(fields.destination_addr, MAX_ADDR),
            _byte(fields.esm_class, "esm_class"),
            _byte(fields.protocol_id, "protocol_id"),
            _byte(fields.priority_flag, "priority_flag"),
            encode_c_string(fields.schedule_delivery_time, MAX_TIME),
            encode_c_string(fields.validity_period, MAX_TIME),
            _byte(fields.registered_delivery, "registered_delivery"),
            _byte(fields.replace_if_present_flag, "replace_if_present_flag"),
            _byte(fields.data_coding, "data_coding"),
            _byte(fields.sm_default_msg_id, "sm_default_msg_id"),
            bytes((len(fields.short_message),)),
            fields.short_message,
            encode_tlvs(fields.tlvs),
        )
    )


def decode_sm(body: bytes) -> SmFields:
    """Parse a submit_sm / deliver_sm body. FrameError when it is truncated or malformed.

    Lengths are not checked against the spec's maxima on the way in: being lenient with what an
    SMSC sends costs nothing, and rejecting a receipt would only make it come back.
    """
    service_type, i = decode_c_string(body, 0)
    source_addr_ton, i = _read_byte(body, i, "source_addr_ton")
    source_addr_npi, i = _read_byte(body, i, "source_addr_npi")
    source_addr, i = decode_c_string(body, i)
    dest_addr_ton, i = _read_byte(body, i, "dest_addr_ton")
    dest_addr_npi, i = _read_byte(body, i, "dest_addr_npi")
    destination_addr, i = decode_c_string(body, i)
    esm_class, i = _read_byte(body, i, "esm_class")
    protocol_id, i = _read_byte(body, i, "protocol_id")
    priority_flag, i = _read_byte(body, i, "priority_flag")
    schedule_delivery_time, i = decode_c_string(body, i)
    validity_period, i = decode_c_string(body, i)
    registered_delivery, i = _read_byte(body, i, "registered_delivery")
    replace_if_present_flag, i = _read_byte(body, i, "replace_if_present_flag")
    data_coding, i = _read_byte(body, i, "data_coding")
    sm_default_msg_id, i = _read_byte(body, i, "sm_default_msg_id")
    sm_length, i = _read_byte(body, i, "sm_length")
    if i + sm_length > len(body):
        raise FrameError(f"short_message of {sm_length} octets overruns the body")
    short_message = bytes(body[i : i + sm_length])
    tlvs = decode_tlvs(body, i + sm_length)
    return SmFields(
        service_type=service_type,
        source_addr_ton=source_addr_ton,
        source_addr_npi=source_addr_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_addr_ton,
        dest_addr_npi=dest_addr_npi,
        destination_addr=destination_addr,
        esm_class=esm_class,
        protocol_id=protocol_id,
        priority_flag=priority_flag,
        schedule_delivery_time=schedule_delivery_time,
        validity_period=validity_period,
        registered_delivery=registered_delivery,
        replace_if_present_flag=replace_if_present_flag,
        data_coding=data_coding,
        sm_default_msg_id=sm_default_msg_id,
        short_message=short_message,
        tlvs=tlvs,
    )


# --- bind ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class BindFields:
    """The body of bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 4.1)."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def __repr__(self) -> str:
        # Never let the password reach a log line through a repr.
        return (
            f"BindFields(system_id={self.system_id!r}, password='***', system_type={self.system_type!r}, "
            f"interface_version={self.interface_version:#x}, addr_ton={self.addr_ton}, "
            f"addr_npi={self.addr_npi}, address_range={self.address_range!r})"
        )


def encode_bind(fields: BindFields) -> bytes:
    return b"".join(
        (
            encode_c_string(fields.system_id, MAX_SYSTEM_ID),
            encode_c_string(fields.password, MAX_PASSWORD),
            encode_c_string(fields.system_type, MAX_SYSTEM_TYPE),
            _byte(fields.interface_version, "interface_version"),
            _byte(fields.addr_ton, "addr_ton"),
            _byte(fields.addr_npi, "addr_npi"),
            encode_c_string(fields.address_range, MAX_ADDRESS_RANGE),
        )
    )


def decode_bind(body: bytes) -> BindFields:
    system_id, i = decode_c_string(body, 0)
    password, i = decode_c_string(body, i)
    system_type, i = decode_c_string(body, i)
    interface_version, i = _read_byte(body, i, "interface_version")
    addr_ton, i = _read_byte(body, i, "addr_ton")
    addr_npi, i = _read_byte(body, i, "addr_npi")
    address_range, i = decode_c_string(body, i)
    return BindFields(system_id, password, system_type, interface_version, addr_ton, addr_npi, address_range)


def decode_message_id(body: bytes) -> str:
    """The leading C-Octet String of a submit_sm_resp / bind_resp body (message_id / system_id).

    Tolerant on purpose, because this is the answer to something we already sent: an empty body
    (the spec allows it on error responses) gives ``""``, TLVs after the NUL are ignored, and a
    missing NUL takes the whole body (some SMSCs forget it).
    """
    end = body.find(b"\0")
    return (body if end < 0 else body[:end]).decode("latin-1")
