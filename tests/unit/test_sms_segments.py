"""Tests for rcsgate.domain.sms_segments.

``smsutil`` serves as an independent oracle. It agrees with our rules except in
two places, which are restricted out of the property tests and pinned by
explicit table tests instead:

* ``""``: smsutil's GSM check is a ``+`` regex, so the empty text is "not GSM"
  and comes back as UTF-16 with one (empty) part. We say GSM-7, 0 parts.
* ESC (U+001B): smsutil lists it in the basic charset and counts it as one
  septet. Sent raw it would be read as an escape prefix, so we use UCS-2.
"""

from __future__ import annotations

from itertools import pairwise

import smsutil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smsutil.codecs import GSM_BASIC_CHARSET, GSM_EXT_CHARSET

from rcsgate.domain.sms_segments import (
    MAX_GSM7_CHARS,
    MAX_UCS2_CHARS,
    SmsSegments,
    count_segments,
    is_gsm7,
    sms_text_length_error,
    split_segments,
)

EURO = "€"
EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair in UTF-16
CYRILLIC = "Ж"  # in the BMP but not in GSM 03.38
ESC = "\x1b"
EXTENSION = "\f^{}\\[~]|€"

# Modest example counts keep the whole file at a few seconds.
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- independent measures, deliberately not reusing the module's helpers ------


def _septets(text: str) -> int:
    return len(text) + sum(ch in EXTENSION for ch in text)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _units(text: str, encoding: str) -> int:
    return _septets(text) if encoding == "gsm7" else _utf16_units(text)


# --- table tests at the limits -------------------------------------------------


def test_gsm7_single_part_limit() -> None:
    assert count_segments("a" * 160) == SmsSegments(encoding="gsm7", units=160, parts=1)
    assert count_segments("a" * 161) == SmsSegments(encoding="gsm7", units=161, parts=2)


def test_gsm7_two_part_limit() -> None:
    assert count_segments("a" * 306) == SmsSegments(encoding="gsm7", units=306, parts=2)
    assert count_segments("a" * 307) == SmsSegments(encoding="gsm7", units=307, parts=3)
    assert [len(p) for p in split_segments("a" * 307)] == [153, 153, 1]


def test_ucs2_single_part_limit() -> None:
    assert count_segments(CYRILLIC * 70) == SmsSegments(encoding="ucs2", units=70, parts=1)
    assert count_segments(CYRILLIC * 71) == SmsSegments(encoding="ucs2", units=71, parts=2)


def test_ucs2_two_part_limit() -> None:
    assert count_segments(CYRILLIC * 134) == SmsSegments(encoding="ucs2", units=134, parts=2)
    assert count_segments(CYRILLIC * 135) == SmsSegments(encoding="ucs2", units=135, parts=3)


def test_euro_sign_costs_two_septets() -> None:
    assert count_segments(EURO) == SmsSegments(encoding="gsm7", units=2, parts=1)
    assert count_segments(EURO * 80) == SmsSegments(encoding="gsm7", units=160, parts=1)
    assert count_segments(EURO * 81) == SmsSegments(encoding="gsm7", units=162, parts=2)
    assert count_segments("a" * 159 + EURO) == SmsSegments(encoding="gsm7", units=161, parts=2)


def test_every_extension_char_costs_two_septets() -> None:
    for ch in EXTENSION:
        assert count_segments(ch) == SmsSegments(encoding="gsm7", units=2, parts=1), repr(ch)


def test_escape_char_is_not_split_across_parts() -> None:
    # 306 septets would fit two parts exactly, but the euro sign at septets
    # 153-154 moves whole into part two, which then overflows into a third.
    text = "a" * 152 + EURO + "a" * 152
    assert count_segments(text) == SmsSegments(encoding="gsm7", units=306, parts=3)
    assert split_segments(text) == ["a" * 152, EURO + "a" * 151, "a"]


def test_escape_char_exactly_filling_a_part() -> None:
    text = "a" * 151 + EURO + "a" * 10
    assert split_segments(text) == ["a" * 151 + EURO, "a" * 10]


def test_emoji_is_not_split_across_parts() -> None:
    text = "a" * 66 + EMOJI + "a" * 66
    assert count_segments(text) == SmsSegments(encoding="ucs2", units=134, parts=3)
    assert split_segments(text) == ["a" * 66, EMOJI + "a" * 65, "a"]


def test_only_emoji_wastes_one_unit_per_part() -> None:
    # 67 is odd, so a part of pure surrogate pairs holds 33 emoji (66 units).
    assert count_segments(EMOJI * 35) == SmsSegments(encoding="ucs2", units=70, parts=1)
    assert count_segments(EMOJI * 36) == SmsSegments(encoding="ucs2", units=72, parts=2)
    assert count_segments(EMOJI * 67) == SmsSegments(encoding="ucs2", units=134, parts=3)
    assert split_segments(EMOJI * 67) == [EMOJI * 33, EMOJI * 33, EMOJI]


def test_one_non_gsm_char_switches_whole_text_to_ucs2() -> None:
    text = "a" * 100 + "ç"  # only capital Ç is in GSM 03.38
    assert count_segments(text) == SmsSegments(encoding="ucs2", units=101, parts=2)


def test_is_gsm7() -> None:
    assert is_gsm7("Hello, World! @£$¥ Ç ΔΦΓ\n\r")
    assert is_gsm7(EXTENSION)
    assert is_gsm7("")
    assert not is_gsm7("ç")
    assert not is_gsm7("`")
    assert not is_gsm7(EMOJI)
    assert not is_gsm7(ESC)


def test_basic_alphabet_matches_smsutil_except_esc() -> None:
    assert len(GSM_BASIC_CHARSET) == 128
    assert set(GSM_EXT_CHARSET) == set(EXTENSION)
    for ch in GSM_BASIC_CHARSET:
        assert is_gsm7(ch) is (ch != ESC), repr(ch)


# --- where smsutil is wrong (see module docstring) ------------------------------


def test_empty_text_has_zero_parts() -> None:
    assert count_segments("") == SmsSegments(encoding="gsm7", units=0, parts=0)
    assert split_segments("") == []
    # smsutil disagrees: UTF-16, one empty part.
    assert len(smsutil.split("").parts) == 1


def test_raw_esc_forces_ucs2() -> None:
    assert count_segments(ESC) == SmsSegments(encoding="ucs2", units=1, parts=1)
    assert count_segments("a" * 160 + ESC) == SmsSegments(encoding="ucs2", units=161, parts=3)
    # smsutil disagrees: one GSM septet.
    assert smsutil.split(ESC).encoding == "gsm0338"


# --- length limits ---------------------------------------------------------------


def test_gsm7_length_limit() -> None:
    assert MAX_GSM7_CHARS == 765
    assert sms_text_length_error("a" * 765) is None
    assert sms_text_length_error("a" * 766) == "The text may not be greater than 765 GSM-7 characters."
    # The limit is in septets, so escapes count twice.
    assert sms_text_length_error("a" * 763 + EURO) is None
    assert sms_text_length_error("a" * 764 + EURO) is not None


def test_ucs2_length_limit() -> None:
    assert MAX_UCS2_CHARS == 355
    assert sms_text_length_error(CYRILLIC * 355) is None
    assert sms_text_length_error(CYRILLIC * 356) == "The text may not be greater than 355 UCS-2 characters."
    # The limit is in UTF-16 code units, so emoji count twice.
    assert sms_text_length_error(CYRILLIC * 353 + EMOJI) is None
    assert sms_text_length_error(CYRILLIC * 354 + EMOJI) is not None


def test_short_texts_have_no_length_error() -> None:
    assert sms_text_length_error("") is None
    assert sms_text_length_error("hi") is None


# --- property tests ----------------------------------------------------------------

_basic_char = st.sampled_from(sorted(set(GSM_BASIC_CHARSET) - {ESC}))
# Extension characters are drawn as often as all others together, so escapes
# land on part boundaries regularly.
_gsm_char = st.one_of(_basic_char, st.sampled_from(EXTENSION))
_non_gsm_bmp_char = st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]).filter(
    lambda ch: not is_gsm7(ch)
)
_non_bmp_char = st.characters(min_codepoint=0x10000)
# Lengths are drawn explicitly: left alone, hypothesis mostly produces short
# texts and would rarely cross a part boundary. The ranges cover several parts
# of each encoding.
_gsm_texts = st.integers(0, 700).flatmap(lambda n: st.text(_gsm_char, min_size=n, max_size=n))
_mixed_texts = st.integers(0, 300).flatmap(
    lambda n: st.text(
        st.one_of(_basic_char, _non_gsm_bmp_char, _non_bmp_char, _non_bmp_char), min_size=n, max_size=n
    )
)
_any_texts = st.one_of(_gsm_texts, _mixed_texts, st.text(max_size=300))


@_SETTINGS
@given(_any_texts.filter(lambda t: t != "" and ESC not in t))
def test_matches_smsutil_oracle(text: str) -> None:
    ours = count_segments(text)
    oracle = smsutil.split(text)
    assert ours.encoding == {"gsm0338": "gsm7", "utf_16_be": "ucs2"}[oracle.encoding]
    assert ours.parts == len(oracle.parts)
    assert ours.units == (oracle.total_bytes if ours.encoding == "gsm7" else oracle.total_bytes // 2)
    assert split_segments(text) == [part.content for part in oracle.parts]


@_SETTINGS
@given(_any_texts)
def test_split_round_trips_and_respects_limits(text: str) -> None:
    segments = count_segments(text)
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == segments.parts
    assert segments.encoding == ("gsm7" if is_gsm7(text) else "ucs2")
    assert segments.units == _units(text, segments.encoding)
    assert all(parts)
    single, multi = (160, 153) if segments.encoding == "gsm7" else (70, 67)
    limit = single if len(parts) == 1 else multi
    assert all(_units(part, segments.encoding) <= limit for part in parts)


@_SETTINGS
@given(_any_texts)
def test_parts_are_filled_greedily(text: str) -> None:
    # Each part except the last is full up to the next character's cost: a
    # part never ends early unless its successor's first character won't fit.
    segments = count_segments(text)
    parts = split_segments(text)
    for part, following in pairwise(parts):
        assert _units(part + following[0], segments.encoding) > (153 if segments.encoding == "gsm7" else 67)
