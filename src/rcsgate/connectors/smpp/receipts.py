"""Delivery receipts: recognising them, reading them, and normalising SMSC message ids.

A receipt is a deliver_sm whose esm_class message type says so. What it reports is read from
the receipted_message_id and message_state TLVs first and from the text second (Kannel and
Jasmin both do it in that order), because the TLVs are typed and the text is vendor-specific:
keys in either case, 10- or 12-digit dates, ``Text:`` or ``text:``, fields missing.

The message id is kept exactly as received; ``normalise_id`` turns it into the form the id
mapping is keyed by. Jasmin's lost receipts (#643, #916) were ids that differed between the
submit_sm_resp and the receipt only in leading zeros, letter case, or hex against decimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from rcsgate.connectors.smpp.encoding import DATA_CODING_UCS2
from rcsgate.connectors.smpp.pdu import SmFields, Tlv, tlv_value_int

__all__ = ["Outcome", "Receipt", "is_receipt", "normalise_id", "parse_receipt"]

Outcome = Literal["delivered", "undelivered"]

# esm_class bits 2-5 (SMPP 3.4 5.2.12, message type on an SMSC -> ESME PDU).
_MESSAGE_TYPE_MASK: Final = 0x3C
_SMSC_DELIVERY_RECEIPT: Final = 0x04
_SME_DELIVERY_ACK: Final = 0x08
_INTERMEDIATE_NOTIFICATION: Final = 0x20
_RECEIPT_TYPES: Final = frozenset((_SMSC_DELIVERY_RECEIPT, _SME_DELIVERY_ACK, _INTERMEDIATE_NOTIFICATION))

# message_state TLV values (SMPP 3.4 5.2.28) under the names the receipt text uses.
_STATE_NAMES: Final = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_OUTCOMES: Final[dict[str, Outcome | None]] = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "REJECTD": "undelivered",
    "EXPIRED": "undelivered",
    "DELETED": "undelivered",
    "UNKNOWN": "undelivered",  # final, as Kannel treats it: the SMSC has given up on it
    "ACCEPTD": None,
    "ENROUTE": None,
}
# Spellings seen from vendors that write the word out.
_STAT_ALIASES: Final = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}

# A key is recognised only at the start or after whitespace, so "msgid:" is not "id:". Dates may
# be written with a space, an underscore or nothing between the words.
_KEY: Final = re.compile(r"(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:", re.I)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt says about one submitted PDU.

    ``stat`` is DELIVRD, UNDELIV, REJECTD, EXPIRED, DELETED, UNKNOWN, ACCEPTD or ENROUTE; a
    status outside that list is kept upper-cased as received (``""`` when there is none) and
    has no outcome. ``outcome`` None means not final: the message may still be delivered.
    """

    smsc_id: str
    stat: str
    err: str | None
    outcome: Outcome | None


def is_receipt(fields: SmFields) -> bool:
    """True for an SMSC delivery receipt, an SME delivery ack or an intermediate notification."""
    return (fields.esm_class & _MESSAGE_TYPE_MASK) in _RECEIPT_TYPES


def _text_fields(text: str) -> dict[str, str]:
    """The ``key:value`` pairs of a receipt text, keys lower-cased without separators."""
    matches = list(_KEY.finditer(text))
    values: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = re.sub(r"[ _]", "", match.group(1).lower())
        if key == "text":
            # The free text is last and may itself contain "id:" or "stat:".
            values.setdefault(key, text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        values.setdefault(key, text[match.end() : end].strip())
    return values


def _receipt_text(fields: SmFields) -> str:
    raw = fields.short_message or fields.tlvs.get(Tlv.MESSAGE_PAYLOAD, b"")
    if fields.data_coding == DATA_CODING_UCS2:
        text = raw.decode("utf-16-be", "replace")
    else:
        # Receipt texts are ASCII; latin-1 reads any octet, and the keys and values we use are
        # the same in GSM-7 and ASCII.
        text = raw.decode("latin-1")
    # Some SMSCs write the text as a C string, NUL and all.
    return text.split("\0", 1)[0]


def _first_token(value: str | None) -> str | None:
    tokens = value.split() if value else []
    return tokens[0] if tokens else None


def _network_error(raw: bytes | None) -> str | None:
    # network_error_code: network type (1 octet) then the error code (2 octets).
    if raw is None or len(raw) < 3:
        return None
    return f"{int.from_bytes(raw[1:3], 'big'):03d}"


def parse_receipt(fields: SmFields) -> Receipt | None:
    """The receipt in a deliver_sm, or None when it is not one or names no message id."""
    if not is_receipt(fields):
        return None
    text = _text_fields(_receipt_text(fields))

    tlv_id = fields.tlvs.get(Tlv.RECEIPTED_MESSAGE_ID)
    smsc_id = tlv_id.split(b"\0", 1)[0].decode("latin-1").strip() if tlv_id is not None else ""
    if not smsc_id:
        smsc_id = _first_token(text.get("id")) or ""
    if not smsc_id:
        return None

    state = fields.tlvs.get(Tlv.MESSAGE_STATE)
    stat = _STATE_NAMES.get(tlv_value_int(state), "") if state else ""
    if not stat:
        stat = (_first_token(text.get("stat")) or "").upper()
        stat = _STAT_ALIASES.get(stat, stat)

    err = _first_token(text.get("err")) or _network_error(fields.tlvs.get(Tlv.NETWORK_ERROR_CODE))

    outcome = _OUTCOMES.get(stat)
    if fields.esm_class & _MESSAGE_TYPE_MASK == _INTERMEDIATE_NOTIFICATION:
        # An intermediate notification reports progress by definition, never the end.
        outcome = None
    return Receipt(smsc_id=smsc_id, stat=stat, err=err, outcome=outcome)


_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_DEC: Final = re.compile(r"[0-9]+")


def normalise_id(raw: str, base: Literal["text", "hex", "dec"] = "text") -> str:
    """The SMSC message id in the form the id mapping is keyed by.

    ``text``: whitespace stripped, lower case, leading zeros dropped (all zeros give "0").
    ``hex`` / ``dec``: the id read as a number in that base, returned in decimal, so a connector
    whose submit_sm_resp ids are hex and whose receipts say decimal (or the other way round)
    normalises both sides to the same string. ValueError for an id that does not parse (empty,
    signs, ``0x`` prefixes, underscores and non-ASCII digits are refused, unlike ``int()``).
    """
    value = raw.strip()
    if base == "text":
        if not value:
            raise ValueError("empty SMSC message id")
        return value.lower().lstrip("0") or "0"
    pattern, radix = (_HEX, 16) if base == "hex" else (_DEC, 10) if base == "dec" else (None, 0)
    if pattern is None:
        raise ValueError(f"unknown id base {base!r}")
    if not pattern.fullmatch(value):
        raise ValueError(f"SMSC message id {raw!r} is not {base}")
    return str(int(value, radix))
