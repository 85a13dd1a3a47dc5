"""domain.json_text.loads reads JSON as json.loads does, orjson or not."""

from __future__ import annotations

import json
import math

import pytest

from rcsgate.domain import json_text

SAME = [
    b'{"a": 1, "b": [true, false, null], "c": "\\u00e9\\ud83d\\ude00"}',
    b'{"n": 12345678901234567890123}',  # beyond 64 bits: an int, not a float
    b'{"n": 18446744073709551615, "m": -9223372036854775808}',
    b'{"s": "\\ud800"}',  # a lone surrogate, which orjson refuses
    b"[1e400, -0.0, 1.5]",
    '{"bom": 1}'.encode("utf-8-sig"),
    '{"wide": "é"}'.encode("utf-16"),
]


@pytest.mark.parametrize("raw", SAME)
def test_the_same_value_as_the_standard_library(raw: bytes) -> None:
    assert json_text.loads(raw) == json.loads(raw)
    assert type(json_text.loads(raw)) is type(json.loads(raw))


def test_long_numbers_stay_integers() -> None:
    value = json_text.loads(b'{"n": 12345678901234567890123}')
    assert value["n"] == 12345678901234567890123 and isinstance(value["n"], int)


def test_nan_and_infinity_as_the_standard_library_reads_them() -> None:
    value = json_text.loads(b"[NaN, Infinity, -Infinity]")
    assert math.isnan(value[0]) and value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": }', b"\xff\xfe\x00"])
def test_what_is_not_json_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json_text.loads(raw)


WRITTEN = [
    {"a": 1, "b": [True, False, None], "c": "é😀", "d": {"e": -0.0, "f": 1.5e300}},
    {"n": 12345678901234567890123},  # beyond 64 bits: orjson refuses it
    {"nan": math.nan, "inf": [math.inf, -math.inf]},  # orjson would write null
    {"null": None, "x": 0.1},  # null without a non-finite float: orjson's bytes kept
    ["tab\t", 'quote"', "\u2028", "\x7f"],
    [],
]


@pytest.mark.parametrize("value", WRITTEN)
def test_dumps_compact_writes_the_standard_librarys_bytes(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert json_text.dumps_compact(value) == expected


def test_dumps_compact_raises_as_the_standard_library_on_a_lone_surrogate() -> None:
    with pytest.raises(UnicodeEncodeError):
        json_text.dumps_compact({"s": "\ud800"})
