"""JSON text read and written fast, meaning what the standard library reads and writes.

orjson parses in a fraction of ``json.loads``' time but differs in a few cases: it refuses NaN and
Infinity, byte-order marks, UTF-16 text and lone surrogates (the standard library reads them), and it
reads an integer beyond 64 bits as a float. ``loads`` hands exactly those cases to ``json.loads``: a
run of 19 digits anywhere (in a number or a string, the scan does not tell them apart) or anything
orjson refuses. ``dumps_compact`` writes what ``json.dumps`` writes compact, the same way round."""

from __future__ import annotations

import json
import math
from typing import Any, Final

import orjson

__all__ = ["dumps_compact", "loads", "may_hold_long_number"]

_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER: Final = b"0" * 19


def may_hold_long_number(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 digits: an integer orjson would read as a float, perhaps."""
    return _LONG_NUMBER in raw.translate(_DIGITS_AS_ZERO)


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``, through orjson where that gives the same value. Raises what
    ``json.loads`` raises: ValueError (JSONDecodeError, UnicodeDecodeError) or RecursionError."""
    if may_hold_long_number(raw):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps_compact(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``, through orjson where
    that writes the same bytes. orjson refuses integers beyond 64 bits and lone surrogates, and writes
    NaN and the infinities as ``null``: those take the standard library (which then raises what it
    raises). Only a text holding ``null`` is looked through for such a float."""
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        out = None
    if out is None or (b"null" in out and _holds_nonfinite(value)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return out


def _holds_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_holds_nonfinite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_nonfinite(item) for item in value)
    return False
