"""Tests for rcsgate.connectors.smpp.pdu.

``smpp34`` (an independent, Rust-backed SMPP 3.4 codec) is the oracle for the wire format:
what we encode it decodes to the same fields, and what it encodes we decode.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
import smpp34
from hypothesis import given, settings
from hypothesis import strategies as st

from rcsgate.connectors.smpp.pdu import (
    STATUS_NAMES,
    BindFields,
    Command,
    FrameError,
    Pdu,
    SmFields,
    Tlv,
    decode,
    decode_bind,
    decode_message_id,
    decode_sm,
    encode,
    encode_bind,
    encode_c_string,
    encode_sm,
    read_pdu,
    status_name,
    tlv_int,
    tlv_value_int,
)

_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_OCTET = st.integers(0, 255)
_SM_FIELDS = st.builds(
    SmFields,
    service_type=st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), max_size=5),
    source_addr_ton=_OCTET,
    source_addr_npi=_OCTET,
    source_addr=_ASCII,
    dest_addr_ton=_OCTET,
    dest_addr_npi=_OCTET,
    destination_addr=_ASCII,
    esm_class=_OCTET,
    protocol_id=_OCTET,
    priority_flag=_OCTET,
    schedule_delivery_time=st.sampled_from(["", "261231235959000+"]),
    validity_period=st.sampled_from(["", "000001000000000R"]),
    registered_delivery=_OCTET,
    replace_if_present_flag=_OCTET,
    data_coding=_OCTET,
    sm_default_msg_id=_OCTET,
    short_message=st.binary(max_size=254),
    tlvs=st.dictionaries(
        st.sampled_from([int(t) for t in Tlv if t != Tlv.MESSAGE_PAYLOAD] + [0x1400, 0x3FFF]),
        st.binary(max_size=40),
        max_size=4,
    ),
)


def _submit_pdu(fields: SmFields, sequence: int = 7) -> bytes:
    return encode(Pdu(Command.SUBMIT_SM, 0, sequence, encode_sm(fields)))


# --- header and framing -----------------------------------------------------------------------


def test_header_layout() -> None:
    raw = encode(Pdu(Command.ENQUIRE_LINK_RESP, 0x58, 0x7FFFFFFF))
    assert raw == bytes.fromhex("0000001080000015000000587fffffff")
    assert decode(raw) == Pdu(Command.ENQUIRE_LINK_RESP, 0x58, 0x7FFFFFFF, b"")


def test_decode_rejects_length_mismatch_and_short_data() -> None:
    raw = encode(Pdu(Command.SUBMIT_SM_RESP, 0, 1, b"abc\0"))
    with pytest.raises(FrameError):
        decode(raw[:-1])
    with pytest.raises(FrameError):
        decode(raw[:10])


def _read_all(data: bytes, *, max_length: int = 70_000) -> list[Pdu]:
    async def main() -> list[Pdu]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out: list[Pdu] = []
        while True:
            try:
                out.append(await read_pdu(reader, max_length=max_length))
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return out

    return asyncio.run(main())


def test_read_pdu_frames_a_stream() -> None:
    pdus = [
        Pdu(Command.ENQUIRE_LINK, 0, 1),
        Pdu(Command.SUBMIT_SM_RESP, 0, 2, b"msg-1\0"),
        Pdu(0x12345678, 0, 3, b"\x01\x02"),  # an unknown command survives framing
    ]
    assert _read_all(b"".join(encode(p) for p in pdus)) == pdus


@pytest.mark.parametrize("length", [0, 15, 70_001, 0xFFFFFFFF])
def test_read_pdu_rejects_bad_command_length(length: int) -> None:
    raw = struct.pack(">IIII", length, Command.SUBMIT_SM, 0, 1) + b"\0" * 32
    with pytest.raises(FrameError):
        _read_all(raw)


def test_read_pdu_respects_max_length() -> None:
    raw = encode(Pdu(Command.SUBMIT_SM_RESP, 0, 1, b"x" * 100 + b"\0"))
    assert len(_read_all(raw, max_length=len(raw))) == 1
    with pytest.raises(FrameError):
        _read_all(raw, max_length=len(raw) - 1)


def test_read_pdu_eof_inside_a_pdu_is_an_incomplete_read() -> None:
    raw = encode(Pdu(Command.SUBMIT_SM_RESP, 0, 1, b"abcdef\0"))
    with pytest.raises(asyncio.IncompleteReadError):
        _read_all(raw[:-2])
    with pytest.raises(asyncio.IncompleteReadError):
        _read_all(raw[:9])


# --- submit_sm / deliver_sm --------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(_SM_FIELDS)
def test_sm_round_trip(fields: SmFields) -> None:
    assert decode_sm(encode_sm(fields)) == fields


@settings(max_examples=150, deadline=None)
@given(_SM_FIELDS, st.integers(1, 0x7FFFFFFF))
def test_smpp34_decodes_what_we_encode(fields: SmFields, sequence: int) -> None:
    theirs = smpp34.decode(_submit_pdu(fields, sequence))
    assert isinstance(theirs, smpp34.SubmitSm)
    assert theirs.sequence_number == sequence
    for name in (
        "service_type",
        "source_addr_ton",
        "source_addr_npi",
        "source_addr",
        "dest_addr_ton",
        "dest_addr_npi",
        "destination_addr",
        "esm_class",
        "protocol_id",
        "priority_flag",
        "schedule_delivery_time",
        "validity_period",
        "registered_delivery",
        "replace_if_present_flag",
        "data_coding",
        "sm_default_msg_id",
        "short_message",
    ):
        assert getattr(theirs, name) == getattr(fields, name), name
    assert theirs.sm_length == len(fields.short_message)
    assert {t.tag: t.value for t in theirs.tlvs} == fields.tlvs


@settings(max_examples=150, deadline=None)
@given(_SM_FIELDS, st.integers(1, 0x7FFFFFFF))
def test_we_decode_what_smpp34_encodes(fields: SmFields, sequence: int) -> None:
    raw = smpp34.DeliverSm(
        fields.source_addr,
        fields.destination_addr,
        fields.short_message,
        service_type=fields.service_type,
        source_addr_ton=fields.source_addr_ton,
        source_addr_npi=fields.source_addr_npi,
        dest_addr_ton=fields.dest_addr_ton,
        dest_addr_npi=fields.dest_addr_npi,
        esm_class=fields.esm_class,
        protocol_id=fields.protocol_id,
        priority_flag=fields.priority_flag,
        schedule_delivery_time=fields.schedule_delivery_time,
        validity_period=fields.validity_period,
        registered_delivery=fields.registered_delivery,
        replace_if_present_flag=fields.replace_if_present_flag,
        data_coding=fields.data_coding,
        sm_default_msg_id=fields.sm_default_msg_id,
        tlvs=[smpp34.Tlv(tag, value) for tag, value in fields.tlvs.items()],
        sequence_number=sequence,
    ).encode()
    pdu = decode(raw)
    assert (pdu.command, pdu.status, pdu.sequence) == (Command.DELIVER_SM, 0, sequence)
    assert decode_sm(pdu.body) == fields
    assert raw == encode(Pdu(Command.DELIVER_SM, 0, sequence, encode_sm(fields)))


def test_message_payload_goes_in_a_tlv_with_an_empty_short_message() -> None:
    payload = "é".encode("utf-16-be") * 2000
    fields = SmFields(destination_addr="31600000000", data_coding=8, tlvs={Tlv.MESSAGE_PAYLOAD: payload})
    theirs = smpp34.decode(_submit_pdu(fields))
    assert isinstance(theirs, smpp34.SubmitSm)
    assert theirs.sm_length == 0
    assert [(t.tag, t.value) for t in theirs.tlvs] == [(smpp34.TLV_MESSAGE_PAYLOAD, payload)]


@settings(max_examples=200, deadline=None)
@given(_SM_FIELDS, st.data())
def test_every_truncation_is_a_frame_error(fields: SmFields, data: st.DataObject) -> None:
    body = encode_sm(fields)
    cut = data.draw(st.integers(0, len(body) - 1))
    truncated = body[:cut]
    try:
        decoded = decode_sm(truncated)
    except FrameError:
        return
    # A cut exactly between two TLVs still parses, as the PDU with fewer TLVs.
    assert decoded.tlvs.items() < fields.tlvs.items()
    assert encode_sm(decoded) == truncated


def test_overrunning_sm_length_and_tlv_length_are_frame_errors() -> None:
    body = encode_sm(SmFields(short_message=b"hello"))
    with pytest.raises(FrameError):
        decode_sm(body[:-1])
    with pytest.raises(FrameError):
        decode_sm(body + struct.pack(">HH", Tlv.MESSAGE_STATE, 2) + b"\x01")
    with pytest.raises(FrameError):
        decode_sm(body + b"\x04")


@pytest.mark.parametrize(
    "fields",
    [
        SmFields(short_message=b"x" * 255),
        SmFields(source_addr="1" * 21),
        SmFields(destination_addr="1" * 21),
        SmFields(service_type="ABCDEF"),
        SmFields(schedule_delivery_time="1" * 17),
        SmFields(destination_addr="12\x0034"),
        SmFields(source_addr="Ωmega"),
        SmFields(esm_class=256),
        SmFields(data_coding=-1),
        SmFields(short_message=b"x", tlvs={Tlv.MESSAGE_PAYLOAD: b"y"}),
        SmFields(tlvs={0x10000: b""}),
        SmFields(tlvs={Tlv.MESSAGE_PAYLOAD: b"y" * 65536}),
    ],
)
def test_encode_sm_enforces_the_spec_limits(fields: SmFields) -> None:
    with pytest.raises(ValueError):
        encode_sm(fields)


def test_spec_maximum_lengths_are_accepted() -> None:
    fields = SmFields(
        service_type="CMT12",
        source_addr="A" * 20,
        destination_addr="9" * 20,
        schedule_delivery_time="1" * 16,
        validity_period="2" * 16,
        short_message=b"\xff" * 254,
    )
    assert decode_sm(encode_sm(fields)) == fields


# --- bind, C strings, message ids, TLV integers ------------------------------------------------


def test_bind_round_trip_and_layout() -> None:
    fields = BindFields("system_id_15chr", "pass8chr", "VMA", 0x34, 1, 1, "^316")
    body = encode_bind(fields)
    assert body == b"system_id_15chr\0pass8chr\0VMA\0\x34\x01\x01^316\0"
    assert decode_bind(body) == fields
    raw = encode(Pdu(Command.BIND_TRANSCEIVER, 0, 1, body))
    theirs = smpp34.decode(raw)
    assert (theirs.command_id, theirs.sequence_number, theirs.body) == (0x9, 1, body)


def test_bind_limits_and_truncation() -> None:
    with pytest.raises(ValueError):
        encode_bind(BindFields("s" * 16, "pw"))
    with pytest.raises(ValueError):
        encode_bind(BindFields("sys", "p" * 9))
    body = encode_bind(BindFields("sys", "pw", "t"))
    for cut in range(len(body)):
        with pytest.raises(FrameError):
            decode_bind(body[:cut])


def test_bind_fields_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(BindFields("sys", "hunter2"))


def test_c_string() -> None:
    assert encode_c_string("") == b"\0"
    assert encode_c_string("abc", 4) == b"abc\0"
    with pytest.raises(ValueError):
        encode_c_string("abcd", 4)
    with pytest.raises(ValueError):
        encode_c_string("€")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", ""),
        (b"\0", ""),
        (b"0a1B2c\0", "0a1B2c"),
        (b"12345\0" + struct.pack(">HH", 0x001D, 3) + b"ab\0", "12345"),
        (b"no-nul", "no-nul"),
    ],
)
def test_decode_message_id_is_tolerant(body: bytes, expected: str) -> None:
    assert decode_message_id(body) == expected


def test_tlv_integers() -> None:
    assert tlv_int(2, 1) == b"\x02"
    assert tlv_int(0x1234, 2) == b"\x12\x34"
    assert tlv_int(7, 4) == b"\0\0\0\x07"
    assert tlv_value_int(b"\x02") == 2
    assert tlv_value_int(b"\x00\x02") == 2
    assert tlv_value_int(tlv_int(0xDEADBEEF, 4)) == 0xDEADBEEF
    with pytest.raises(ValueError):
        tlv_int(1, 3)
    with pytest.raises(OverflowError):
        tlv_int(256, 1)
    assert smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, tlv_int(2, 1)).as_int() == 2


def test_status_names() -> None:
    assert status_name(0) == "ESME_ROK"
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0x14) == "ESME_RMSGQFUL"
    assert status_name(0x64) == "ESME_RX_T_APPN"
    assert status_name(0x0400) == "0x00000400"
    # The constants smpp34 exports agree with our table.
    for name in dir(smpp34):
        if name.startswith("ESME_"):
            assert STATUS_NAMES[getattr(smpp34, name)] == name


def test_command_ids_match_smpp34() -> None:
    assert smpp34.SubmitSm("a", "b").command_id == Command.SUBMIT_SM
    assert smpp34.DeliverSm("a", "b").command_id == Command.DELIVER_SM
    for command in Command:
        if command & 0x80000000 and command != Command.GENERIC_NACK:
            assert Command(command & 0x7FFFFFFF).name + "_RESP" == command.name
