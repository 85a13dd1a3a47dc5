"""Tests for rcsgate.connectors.smpp.receipts: receipt recognition, TLV-then-text parsing over
receipt texts as vendors write them, and SMSC message id normalisation (the id-format mismatches
behind Jasmin's lost receipts: leading zeros, letter case, hex against decimal)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcsgate.connectors.smpp.pdu import SmFields, Tlv, tlv_int
from rcsgate.connectors.smpp.receipts import Receipt, is_receipt, normalise_id, parse_receipt


def _deliver(
    text: str | bytes = b"",
    *,
    esm_class: int = 0x04,
    tlvs: dict[int, bytes] | None = None,
    data_coding: int = 0,
) -> SmFields:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    return SmFields(
        source_addr="447700900001",
        destination_addr="RCSGATE",
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=raw,
        tlvs=tlvs or {},
    )


APPENDIX_B = (
    "id:0123456789 sub:001 dlvrd:001 submit date:0610191018 done date:0610191018 stat:DELIVRD err:000 "
    "text:Hello world"
)


@pytest.mark.parametrize(
    ("esm_class", "expected"),
    [
        (0x00, False),  # default message type: an MO
        (0x04, True),  # SMSC delivery receipt
        (0x08, True),  # SME delivery acknowledgement
        (0x10, False),  # SME manual/user acknowledgement
        (0x20, True),  # intermediate delivery notification
        (0x40, False),  # UDHI alone: a concatenated MO
        (0x44, True),  # receipt with other bits set
        (0x84, True),
        (0x0C, False),  # reserved combination
        (0x24, False),
    ],
)
def test_is_receipt(esm_class: int, expected: bool) -> None:
    assert is_receipt(_deliver(esm_class=esm_class)) is expected


def test_spec_example_text() -> None:
    assert parse_receipt(_deliver(APPENDIX_B)) == Receipt(
        smsc_id="0123456789", stat="DELIVRD", err="000", outcome="delivered"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Kannel-style lower-case hex id, 12-digit dates.
        (
            "id:1a2b3c4d sub:001 dlvrd:000 submit date:250101120000 done date:250101120105 stat:UNDELIV "
            "err:001 text:",
            Receipt("1a2b3c4d", "UNDELIV", "001", "undelivered"),
        ),
        # Capitalised keys and "Text:".
        (
            "ID:7F3A0001 Sub:001 Dlvrd:001 Submit date:2501011200 Done date:2501011201 Stat:DELIVRD Err:0 "
            "Text:Your code",
            Receipt("7F3A0001", "DELIVRD", "0", "delivered"),
        ),
        # Missing sub/dlvrd/text, underscores in the date keys.
        (
            "id:00000000000000123 submit_date:2501011200 done_date:2501011201 stat:EXPIRED err:027",
            Receipt("00000000000000123", "EXPIRED", "027", "undelivered"),
        ),
        # A UUID-like id with dashes, status spelled out, no err.
        (
            "id:c0ffee00-1234-4bcd-9f00-123456789abc sub:1 dlvrd:0 stat:REJECTED text:x",
            Receipt("c0ffee00-1234-4bcd-9f00-123456789abc", "REJECTD", None, "undelivered"),
        ),
        ("id:42 stat:deleted err:005", Receipt("42", "DELETED", "005", "undelivered")),
        ("id:42 stat:UNKNOWN err:000", Receipt("42", "UNKNOWN", "000", "undelivered")),
        ("id:42 stat:ACCEPTD err:000", Receipt("42", "ACCEPTD", "000", None)),
        ("id:42 stat:ENROUTE err:000", Receipt("42", "ENROUTE", "000", None)),
        # A status we do not know: kept, not final.
        ("id:42 stat:BUFFRED err:000", Receipt("42", "BUFFRED", "000", None)),
        # No status at all.
        ("id:42 sub:001 dlvrd:001", Receipt("42", "", None, None)),
        # The free text may contain key-like words; they do not override the real fields.
        (
            "id:99 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 "
            "text:your id: 123 stat: UNDELIV",
            Receipt("99", "DELIVRD", "000", "delivered"),
        ),
        # Extra spaces around the separators, trailing NUL some SMSCs leave in.
        ("id: 555  stat: DELIVRD  err: 000\0", Receipt("555", "DELIVRD", "000", "delivered")),
        # "msgid:" is not "id:".
        ("msgid:111 id:222 stat:DELIVRD", Receipt("222", "DELIVRD", None, "delivered")),
    ],
)
def test_vendor_texts(text: str, expected: Receipt) -> None:
    assert parse_receipt(_deliver(text)) == expected


def test_tlvs_win_over_the_text() -> None:
    fields = _deliver(
        "id:1234 sub:001 dlvrd:000 stat:ENROUTE err:000",
        tlvs={Tlv.RECEIPTED_MESSAGE_ID: b"4D2\0", Tlv.MESSAGE_STATE: tlv_int(2, 1)},
    )
    assert parse_receipt(fields) == Receipt("4D2", "DELIVRD", "000", "delivered")


@pytest.mark.parametrize(
    ("state", "stat", "outcome"),
    [
        (1, "ENROUTE", None),
        (2, "DELIVRD", "delivered"),
        (3, "EXPIRED", "undelivered"),
        (4, "DELETED", "undelivered"),
        (5, "UNDELIV", "undelivered"),
        (6, "ACCEPTD", None),
        (7, "UNKNOWN", "undelivered"),
        (8, "REJECTD", "undelivered"),
    ],
)
def test_message_state_tlv_alone(state: int, stat: str, outcome: str | None) -> None:
    # No text at all, a 2-octet message_state as some vendors send it.
    fields = _deliver(tlvs={Tlv.RECEIPTED_MESSAGE_ID: b"abc\0", Tlv.MESSAGE_STATE: tlv_int(state, 2)})
    assert parse_receipt(fields) == Receipt("abc", stat, None, outcome)  # type: ignore[arg-type]


def test_unknown_message_state_falls_back_to_the_text() -> None:
    fields = _deliver("id:1 stat:DELIVRD", tlvs={Tlv.MESSAGE_STATE: tlv_int(9, 1)})
    assert parse_receipt(fields) == Receipt("1", "DELIVRD", None, "delivered")


def test_network_error_code_when_the_text_has_no_err() -> None:
    fields = _deliver(
        tlvs={
            Tlv.RECEIPTED_MESSAGE_ID: b"77",  # no NUL: tolerated
            Tlv.MESSAGE_STATE: tlv_int(5, 1),
            Tlv.NETWORK_ERROR_CODE: b"\x03\x00\x22",
        }
    )
    assert parse_receipt(fields) == Receipt("77", "UNDELIV", "034", "undelivered")


def test_text_in_message_payload() -> None:
    fields = _deliver(tlvs={Tlv.MESSAGE_PAYLOAD: APPENDIX_B.encode()})
    assert parse_receipt(fields) == Receipt("0123456789", "DELIVRD", "000", "delivered")


def test_ucs2_receipt_text() -> None:
    fields = _deliver(APPENDIX_B.encode("utf-16-be"), data_coding=8)
    assert parse_receipt(fields) == Receipt("0123456789", "DELIVRD", "000", "delivered")


def test_intermediate_notification_is_never_final() -> None:
    receipt = parse_receipt(_deliver("id:5 stat:UNDELIV err:001", esm_class=0x20))
    assert receipt == Receipt("5", "UNDELIV", "001", None)


def test_sme_ack_is_read_like_a_receipt() -> None:
    assert parse_receipt(_deliver("id:5 stat:DELIVRD", esm_class=0x08)) == Receipt(
        "5", "DELIVRD", None, "delivered"
    )


def test_not_a_receipt_or_no_id() -> None:
    assert parse_receipt(_deliver(APPENDIX_B, esm_class=0x00)) is None  # an MO that looks like one
    assert parse_receipt(_deliver("sub:001 dlvrd:001 stat:DELIVRD")) is None
    assert parse_receipt(_deliver("id: stat:DELIVRD")) is None
    assert parse_receipt(_deliver("")) is None
    assert parse_receipt(_deliver("garbage \xff\x00 bytes")) is None
    assert parse_receipt(_deliver(tlvs={Tlv.RECEIPTED_MESSAGE_ID: b"\0"})) is None


# --- id normalisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0A1B2C", "a1b2c"),
        ("a1b2c", "a1b2c"),
        ("  A1B2C\t", "a1b2c"),
        ("000", "0"),
        ("0", "0"),
        ("00c0ffee-0001", "c0ffee-0001"),
        ("1234567890", "1234567890"),
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_id(raw) == expected
    assert normalise_id(raw, "text") == expected


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("1A2B", "hex", "6699"),
        ("1a2b", "hex", "6699"),
        ("00001a2b", "hex", "6699"),
        ("0", "hex", "0"),
        ("6699", "dec", "6699"),
        ("0000006699", "dec", "6699"),
        ("000", "dec", "0"),
        (" 42 ", "dec", "42"),
        ("FFFFFFFFFFFFFFFF", "hex", "18446744073709551615"),
    ],
)
def test_normalise_numeric(raw: str, base: str, expected: str) -> None:
    assert normalise_id(raw, base) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("", "text"),
        ("   ", "text"),
        ("", "hex"),
        ("xyz", "hex"),
        ("0x1A", "hex"),
        ("1_A", "hex"),
        ("-1A", "hex"),
        ("1a2b", "dec"),
        ("+12", "dec"),
        ("1 2", "dec"),
        ("١٢٣", "dec"),  # Arabic-Indic digits, which int() would accept
        ("c0ffee-0001", "hex"),
        ("1", "octal"),
    ],
)
def test_normalise_refuses(raw: str, base: str) -> None:
    with pytest.raises(ValueError):
        normalise_id(raw, base)  # type: ignore[arg-type]


def test_hex_response_matches_decimal_receipt() -> None:
    # The connector is configured with the base of each side; both land on the same key.
    assert normalise_id("0001A2B3", "hex") == normalise_id("107187", "dec")
    # Same base, different rendering (case, zero padding): text normalisation is enough.
    assert normalise_id("0001A2B3") == normalise_id("1a2b3")


@given(st.integers(0, 2**64))
def test_numeric_renderings_agree(value: int) -> None:
    key = str(value)
    for raw in (f"{value:x}", f"{value:X}", f"{value:016x}", f"{value:020X}"):
        assert normalise_id(raw, "hex") == key
    for raw in (str(value), f"{value:025d}"):
        assert normalise_id(raw, "dec") == key
        assert normalise_id(raw, "text") == key
    assert normalise_id(f"{value:010X}", "text") == normalise_id(f"{value:x}", "text")
