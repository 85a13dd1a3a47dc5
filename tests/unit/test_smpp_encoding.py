"""Tests for rcsgate.connectors.smpp.encoding.

``smsutil``'s gsm0338 codec (unpacked, ESC + code for the extension table) is the independent
oracle for the GSM-7 octets; ``sms_segments.split_segments`` is the oracle for the split, which
encode_parts must reproduce exactly.
"""

from __future__ import annotations

import pytest
import smsutil.codecs  # noqa: F401  (registers the gsm0338 codec)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smsutil.codecs import GSM_BASIC_CHARSET

from rcsgate.connectors.smpp.encoding import (
    ESM_CLASS_UDHI,
    SmsPart,
    decode_text,
    encode_gsm7,
    encode_parts,
    strip_udh,
)
from rcsgate.connectors.smpp.pdu import Tlv
from rcsgate.domain.sms_segments import count_segments, is_gsm7, split_segments

ESC = "\x1b"
EXTENSION = "\f^{}\\[~]|€"
EMOJI = "\U0001f600"
CYRILLIC = "Ж"

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _gsm0338(text: str) -> bytes:
    return text.encode("gsm0338")


def _part_text(part: SmsPart) -> str:
    return decode_text(part.data_coding, part.short_message, esm_class=part.esm_class)


# --- the GSM-7 alphabet ----------------------------------------------------------


def test_gsm7_octets_match_smsutil_for_every_character() -> None:
    for ch in sorted((set(GSM_BASIC_CHARSET) - {ESC}) | set(EXTENSION)):
        assert is_gsm7(ch)
        assert encode_gsm7(ch) == _gsm0338(ch), repr(ch)
        assert decode_text(0, encode_gsm7(ch)) == ch


def test_gsm7_known_octets() -> None:
    assert encode_gsm7("@£$") == b"\x00\x01\x02"
    assert encode_gsm7("A€[") == b"A\x1b\x65\x1b\x3c"
    assert encode_gsm7("\n\r") == b"\n\r"


def test_encoder_covers_exactly_what_is_gsm7() -> None:
    # Every code point the segment rules call GSM-7 has an encoding, and nothing else does.
    for code in range(0x3000):
        ch = chr(code)
        if is_gsm7(ch):
            encode_gsm7(ch)
        else:
            with pytest.raises(KeyError):
                encode_gsm7(ch)


# --- single segments ---------------------------------------------------------------


@pytest.mark.parametrize("long_messages", ["udh", "sar", "payload"])
def test_single_segment_is_one_plain_pdu(long_messages: str) -> None:
    for text, data_coding, octets in [
        ("Hello {world}", 0, b"Hello \x1b(world\x1b)"),
        ("a" * 160, 0, b"a" * 160),
        (CYRILLIC * 70, 8, CYRILLIC.encode("utf-16-be") * 70),
        (f"hi {EMOJI}", 8, b"\x00h\x00i\x00 \xd8\x3d\xde\x00"),
    ]:
        assert encode_parts(text, long_messages=long_messages, reference=7) == [  # type: ignore[arg-type]
            SmsPart(data_coding=data_coding, esm_class=0, short_message=octets, tlvs={})
        ]


def test_empty_text_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode_parts("", reference=1)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="long_messages"):
        encode_parts("a" * 200, long_messages="bogus", reference=1)  # type: ignore[arg-type]


# --- concatenation methods -----------------------------------------------------------


def test_udh_parts() -> None:
    parts = encode_parts("a" * 161, long_messages="udh", reference=0x1234)
    assert [p.esm_class for p in parts] == [ESM_CLASS_UDHI, ESM_CLASS_UDHI]
    assert parts[0].short_message == b"\x05\x00\x03\x34\x02\x01" + b"a" * 153
    assert parts[1].short_message == b"\x05\x00\x03\x34\x02\x02" + b"a" * 8
    assert all(p.tlvs == {} and p.data_coding == 0 for p in parts)
    # A full unpacked GSM-7 part with its UDH: 159 octets, within short_message's 254.
    assert len(parts[0].short_message) == 159


def test_sar_parts() -> None:
    parts = encode_parts(CYRILLIC * 71, long_messages="sar", reference=0x12345)
    assert len(parts) == 2
    assert [p.esm_class for p in parts] == [0, 0]
    assert parts[0].short_message == CYRILLIC.encode("utf-16-be") * 67
    assert parts[1].short_message == CYRILLIC.encode("utf-16-be") * 4
    assert parts[0].tlvs == {
        Tlv.SAR_MSG_REF_NUM: b"\x23\x45",
        Tlv.SAR_TOTAL_SEGMENTS: b"\x02",
        Tlv.SAR_SEGMENT_SEQNUM: b"\x01",
    }
    assert parts[1].tlvs[Tlv.SAR_SEGMENT_SEQNUM] == b"\x02"


def test_payload_is_one_pdu_with_the_whole_text() -> None:
    text = "x" * 300 + "€"
    assert encode_parts(text, long_messages="payload", reference=3) == [
        SmsPart(data_coding=0, esm_class=0, short_message=b"", tlvs={Tlv.MESSAGE_PAYLOAD: _gsm0338(text)})
    ]
    ucs2 = CYRILLIC * 100 + EMOJI
    [part] = encode_parts(ucs2, long_messages="payload", reference=3)
    assert part.data_coding == 8
    assert part.tlvs[Tlv.MESSAGE_PAYLOAD].decode("utf-16-be") == ucs2


def test_same_reference_gives_identical_parts() -> None:
    # A resend must be byte-identical so a handset cannot mix two copies.
    text = "resend me " * 30
    assert encode_parts(text, reference=99) == encode_parts(text, reference=99)
    assert encode_parts(text, reference=99) != encode_parts(text, reference=100)
    assert encode_parts(text, reference=99 + 256)[0].short_message[3] == 99


def test_escape_is_not_split_across_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    parts = encode_parts(text, reference=1)
    assert split_segments(text) == ["a" * 152, "€" + "b" * 10]
    assert parts[0].short_message[6:] == b"a" * 152
    assert parts[1].short_message[6:] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = CYRILLIC * 66 + EMOJI + "x" * 10
    parts = encode_parts(text, reference=1)
    assert parts[0].short_message[6:] == CYRILLIC.encode("utf-16-be") * 66
    assert parts[1].short_message[6:8] == b"\xd8\x3d"


def test_too_many_parts_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        encode_parts("a" * (153 * 255 + 1), reference=1)
    assert len(encode_parts("a" * (153 * 255), reference=1)) == 255


# --- properties ------------------------------------------------------------------------

_basic_char = st.sampled_from(sorted(set(GSM_BASIC_CHARSET) - {ESC}))
_gsm_char = st.one_of(_basic_char, st.sampled_from(EXTENSION))
_non_gsm_bmp_char = st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]).filter(
    lambda ch: not is_gsm7(ch)
)
_non_bmp_char = st.characters(min_codepoint=0x10000)
_gsm_texts = st.integers(1, 700).flatmap(lambda n: st.text(_gsm_char, min_size=n, max_size=n))
_mixed_texts = st.integers(1, 300).flatmap(
    lambda n: st.text(
        st.one_of(_basic_char, _non_gsm_bmp_char, _non_bmp_char, _non_bmp_char), min_size=n, max_size=n
    )
)
_texts = st.one_of(_gsm_texts, _mixed_texts, st.text(st.characters(exclude_categories=["Cs"]), min_size=1))


@_SETTINGS
@given(_texts, st.sampled_from(["udh", "sar"]), st.integers(0, 2**31))
def test_parts_are_the_billed_segments(text: str, method: str, reference: int) -> None:
    parts = encode_parts(text, long_messages=method, reference=reference)  # type: ignore[arg-type]
    segments = split_segments(text)
    assert len(parts) == count_segments(text).parts == len(segments)
    # Each part decodes on its own to its segment: no escape or surrogate pair is cut.
    assert [_part_text(p) for p in parts] == segments
    assert "".join(_part_text(p) for p in parts) == text
    gsm7 = is_gsm7(text)
    for seq, (part, segment) in enumerate(zip(parts, segments, strict=True), start=1):
        assert part.data_coding == (0 if gsm7 else 8)
        body = strip_udh(part.esm_class, part.short_message)
        if gsm7:
            assert body == _gsm0338(segment)
        else:
            assert body == segment.encode("utf-16-be")
        if len(parts) == 1:
            assert (part.esm_class, part.tlvs) == (0, {})
            assert len(body) <= (160 if gsm7 else 140)
            continue
        # 153 septets (unpacked: octets) or 67 UTF-16 units = 134 octets, plus the UDH.
        assert len(body) <= (153 if gsm7 else 134)
        if method == "udh":
            assert part.esm_class == ESM_CLASS_UDHI
            assert part.short_message[:6] == bytes((5, 0, 3, reference % 256, len(parts), seq))
            assert part.tlvs == {}
        else:
            assert part.esm_class == 0
            assert part.tlvs == {
                Tlv.SAR_MSG_REF_NUM: (reference % 65536).to_bytes(2, "big"),
                Tlv.SAR_TOTAL_SEGMENTS: bytes((len(parts),)),
                Tlv.SAR_SEGMENT_SEQNUM: bytes((seq,)),
            }
        assert len(part.short_message) <= 254


@_SETTINGS
@given(_texts)
def test_payload_round_trips(text: str) -> None:
    parts = encode_parts(text, long_messages="payload", reference=5)
    assert len(parts) == 1
    [part] = parts
    raw = part.tlvs.get(Tlv.MESSAGE_PAYLOAD, part.short_message)
    assert decode_text(part.data_coding, raw) == text
    assert (part.short_message == b"") == (count_segments(text).parts > 1)


# --- decoding inbound text -------------------------------------------------------------


def test_decode_text_codings() -> None:
    assert decode_text(0, b"Hi \x1b\x65") == "Hi €"
    assert decode_text(3, "café".encode("latin-1")) == "café"
    assert decode_text(1, b"plain") == "plain"
    assert decode_text(8, f"Привет {EMOJI}".encode("utf-16-be")) == f"Привет {EMOJI}"
    assert decode_text(4, "ünïcode".encode()) == "ünïcode"  # binary: UTF-8 when it is valid
    assert decode_text(4, b"\xff\xfe") == "ÿþ"  # else one character per octet


def test_decode_text_is_best_effort_on_bad_input() -> None:
    assert decode_text(0, b"abc\x1b") == "abc "  # dangling escape
    assert decode_text(0, b"\x1b\x41") == "A"  # undefined extension code: the basic character
    assert decode_text(0, "naïve".encode("latin-1")) == "naïve"  # not septets: read as latin-1
    assert decode_text(8, b"\x00a\x00") == "a\ufffd"  # odd length
    assert decode_text(8, b"\xd8\x3d") == "\ufffd"  # lone surrogate


def test_decode_text_gsm_dcs_values() -> None:
    assert decode_text(0xF0, b"\x00A") == "@A"  # class 0, GSM-7
    assert decode_text(0xF4, b"\xe9") == "é"  # class 0, 8-bit
    assert decode_text(0x18, "Ж".encode("utf-16-be")) == "Ж"  # general group with class, UCS-2


def test_strip_udh() -> None:
    udh = b"\x05\x00\x03\x01\x02\x01"
    assert strip_udh(0x40, udh + b"text") == b"text"
    assert strip_udh(0x43, udh + b"text") == b"text"  # other esm_class bits do not matter
    assert strip_udh(0x00, udh + b"text") == udh + b"text"
    assert strip_udh(0x40, b"") == b""
    assert strip_udh(0x40, b"\x09\x00") == b""  # UDHL overruns: nothing left
    assert decode_text(8, udh + "Ж".encode("utf-16-be"), esm_class=0x40) == "Ж"
