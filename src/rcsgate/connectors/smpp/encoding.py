"""SMS text to submit_sm parts and back (GSM 03.38 / UCS-2, UDH or SAR concatenation).

The split is never our own: the parts are exactly ``sms_segments.split_segments(text)``, the
same parts the API reports and bills, so a message is charged for what goes on the wire.

* GSM-7 texts go out with data_coding 0 as *unpacked* septets, one septet per octet and
  extension characters as ESC (0x1B) + code, which is what smpplib sends. Packing is the
  SMSC's job on the radio side; SMSCs that want packed 7-bit from an ESME are rare and would
  need a per-connector option. Unpacked, a full 153-septet part is 153 octets and with its
  6-octet UDH 159 octets: over the 140 of the air interface but well within the 254 that
  ``short_message`` allows, and the SMSC packs the 153 septets into 134 octets + UDH.
* Everything else goes out with data_coding 8 as UTF-16BE. Characters outside the BMP become
  surrogate pairs, which every network passes through (see sms_segments). A part holds at most
  67 code units, so 134 octets + 6 octets of UDH = 140.
* Long texts use one of three methods, configured per connector:
  ``udh`` (esm_class 0x40 and the 8-bit-reference concatenation UDH ahead of each part; the
  default because every SMSC understands it), ``sar`` (the sar_* TLVs, esm_class 0) or
  ``payload`` (one PDU, the whole text in message_payload, for SMSCs that split themselves).
* The concatenation reference comes from the caller, derived from our message id, so a resend
  of the same message carries the same reference and the handset does not mix two copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from rcsgate.connectors.smpp.pdu import Tlv, tlv_int
from rcsgate.domain.sms_segments import is_gsm7, split_segments

__all__ = [
    "DATA_CODING_GSM7",
    "DATA_CODING_LATIN1",
    "DATA_CODING_UCS2",
    "ESM_CLASS_UDHI",
    "LongMessages",
    "SmsPart",
    "decode_text",
    "encode_gsm7",
    "encode_parts",
    "strip_udh",
]

LongMessages = Literal["udh", "sar", "payload"]

DATA_CODING_GSM7: Final = 0x00  # "SMSC default alphabet"; we always mean GSM 03.38 by it
DATA_CODING_IA5: Final = 0x01
DATA_CODING_LATIN1: Final = 0x03
DATA_CODING_UCS2: Final = 0x08
ESM_CLASS_UDHI: Final = 0x40

# UDH: length 5, IEI 0x00 (concatenation, 8-bit reference), IE length 3, ref, total, seq.
_UDH_CONCAT_8BIT: Final = b"\x05\x00\x03"
_MAX_PARTS: Final = 255  # total and seq are one octet in both the UDH and the SAR TLVs

_ESC: Final = 0x1B

# GSM 03.38 default alphabet in code order; position 0x1B is the escape to the extension table
# (a placeholder here, never produced by the encoder, see sms_segments on why ESC is not GSM-7).
_GSM7_BASIC_TABLE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION_TABLE: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_ENCODE_GSM7: Final[dict[str, bytes]] = {
    **{ch: bytes((code,)) for code, ch in enumerate(_GSM7_BASIC_TABLE) if code != _ESC},
    **{ch: bytes((_ESC, code)) for ch, code in _GSM7_EXTENSION_TABLE.items()},
}
_DECODE_GSM7_BASIC: Final = {code: ch for code, ch in enumerate(_GSM7_BASIC_TABLE)}
_DECODE_GSM7_EXTENSION: Final = {code: ch for ch, code in _GSM7_EXTENSION_TABLE.items()}


@dataclass(frozen=True, slots=True)
class SmsPart:
    """The fields of one submit_sm that differ between the parts of a message."""

    data_coding: int
    esm_class: int
    short_message: bytes
    tlvs: dict[int, bytes] = field(default_factory=dict)


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7: one octet per septet, ESC + code for extension characters.

    KeyError names the first character that is not GSM-7; callers check ``is_gsm7`` first.
    """
    return b"".join(_ENCODE_GSM7[ch] for ch in text)


def _encode_ucs2(text: str) -> bytes:
    # surrogatepass: a lone surrogate (possible in a Python str, counted as one unit by
    # sms_segments) goes out as its code unit instead of failing the whole message.
    return text.encode("utf-16-be", "surrogatepass")


def encode_parts(text: str, *, long_messages: LongMessages = "udh", reference: int) -> list[SmsPart]:
    """The submit_sm parts for ``text``.

    One segment: one part, esm_class 0, whatever ``long_messages`` says. Longer: one part per
    ``split_segments`` segment (``udh`` / ``sar``), or a single message_payload part
    (``payload``). ValueError for the empty text (nothing to send; validation rejects it
    earlier) and for texts of more than 255 segments (the count does not fit the headers).
    """
    segments = split_segments(text)
    if not segments:
        raise ValueError("cannot encode an empty SMS text")
    gsm7 = is_gsm7(text)
    data_coding = DATA_CODING_GSM7 if gsm7 else DATA_CODING_UCS2
    encode = encode_gsm7 if gsm7 else _encode_ucs2
    if len(segments) == 1:
        return [SmsPart(data_coding, 0, encode(text), {})]
    if long_messages == "payload":
        return [SmsPart(data_coding, 0, b"", {Tlv.MESSAGE_PAYLOAD: encode(text)})]
    total = len(segments)
    if total > _MAX_PARTS:
        raise ValueError(f"text needs {total} SMS parts, more than {_MAX_PARTS}")
    if long_messages == "udh":
        header = _UDH_CONCAT_8BIT + bytes((reference % 256, total))
        return [
            SmsPart(data_coding, ESM_CLASS_UDHI, header + bytes((seq,)) + encode(segment), {})
            for seq, segment in enumerate(segments, start=1)
        ]
    if long_messages == "sar":
        ref = tlv_int(reference % 65536, 2)
        total_tlv = tlv_int(total, 1)
        return [
            SmsPart(
                data_coding,
                0,
                encode(segment),
                {
                    Tlv.SAR_MSG_REF_NUM: ref,
                    Tlv.SAR_TOTAL_SEGMENTS: total_tlv,
                    Tlv.SAR_SEGMENT_SEQNUM: tlv_int(seq, 1),
                },
            )
            for seq, segment in enumerate(segments, start=1)
        ]
    raise ValueError(f"unknown long_messages method {long_messages!r}")


def strip_udh(esm_class: int, payload: bytes) -> bytes:
    """``payload`` without its User Data Header when esm_class has the UDHI bit (0x40).

    The first octet is the header length (UDHL) not counting itself. A UDHL that overruns the
    payload leaves nothing, rather than raising: an inbound PDU is acked either way.
    """
    if not esm_class & ESM_CLASS_UDHI or not payload:
        return payload
    return payload[1 + payload[0] :]


def _decode_gsm7(payload: bytes) -> str:
    chars: list[str] = []
    escaped = False
    for octet in payload:
        if escaped:
            # 23.038: an escape to an undefined extension code shows the basic character.
            chars.append(_DECODE_GSM7_EXTENSION.get(octet) or _DECODE_GSM7_BASIC[octet])
            escaped = False
        elif octet == _ESC:
            escaped = True
        else:
            chars.append(_DECODE_GSM7_BASIC[octet])
    if escaped:  # a dangling ESC at the end: 23.038 says show a space
        chars.append(" ")
    return "".join(chars)


def _alphabet(data_coding: int) -> Literal["gsm7", "ascii", "latin1", "ucs2", "octets"]:
    if data_coding == DATA_CODING_GSM7:
        return "gsm7"
    if data_coding == DATA_CODING_IA5:
        return "ascii"
    if data_coding == DATA_CODING_LATIN1:
        return "latin1"
    if data_coding == DATA_CODING_UCS2:
        return "ucs2"
    # SMSCs sometimes pass the GSM 03.38 DCS byte through instead of the SMPP value. Group
    # 1111 (message class): bit 2 set is 8-bit data, clear is GSM-7. Groups 00xx (general, with
    # a class or compression flag above 0x0F): bits 3-2 give GSM-7, 8-bit or UCS-2.
    if data_coding & 0xF0 == 0xF0:
        return "octets" if data_coding & 0x04 else "gsm7"
    if 0x10 <= data_coding <= 0x3F and not data_coding & 0x20:  # not compressed
        return ("gsm7", "octets", "ucs2", "octets")[(data_coding >> 2) & 0x03]
    return "octets"


def decode_text(data_coding: int, payload: bytes, *, esm_class: int = 0) -> str:
    """Text of an inbound short_message or message_payload; best effort, never raises.

    ``esm_class`` with the UDHI bit strips the UDH first. data_coding 0 is read as unpacked
    GSM-7 (what SMSCs send an ESME); if an octet is above 0x7F it cannot be that, and the payload
    is read as latin-1, the usual other meaning of "SMSC default". 1 is ASCII, 3 latin-1, 8
    UTF-16BE (lone or broken surrogates replaced). Binary and vendor codings are tried as UTF-8
    and fall back to latin-1, which maps every octet.
    """
    payload = strip_udh(esm_class, payload)
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm7":
        if any(octet > 0x7F for octet in payload):
            return payload.decode("latin-1")
        return _decode_gsm7(payload)
    if alphabet == "ascii":
        return payload.decode("ascii", "replace")
    if alphabet == "latin1":
        return payload.decode("latin-1")
    if alphabet == "ucs2":
        return payload.decode("utf-16-be", "replace")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")
