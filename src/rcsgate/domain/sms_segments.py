"""SMS part counting for the alternative-SMS text of a message.

Rules (3GPP TS 23.038 / 23.040, as handsets and SMSCs apply them):

* Encoding is GSM-7 when every character is in the GSM 03.38 default alphabet or
  its basic extension table, otherwise UCS-2 for the whole text. One character
  outside the alphabet is enough to switch everything to UCS-2.
* GSM-7 counts septets. Extension-table characters (``^ { } \\ [ ~ ] | €`` and
  form feed) are sent as ESC + char and cost 2 septets. A text of up to 160
  septets is one part; a longer text is split into parts of at most 153 septets,
  because the concatenation header (UDH) takes the remaining 7 septets.
* UCS-2 counts UTF-16 code units. Strictly UCS-2 cannot carry characters outside
  the BMP, but every real network passes UTF-16 through, so emoji are sent as a
  surrogate pair costing 2 units. Up to 70 units is one part; longer texts are
  split into parts of at most 67 units.
* An escape sequence and a surrogate pair are never split across parts: a
  receiver cannot reassemble them, so the whole character moves to the next part
  and the previous part stays short. That is why the part count is the result of
  a greedy split and can exceed ``ceil(units / 153)`` (or ``/ 67``).
* The empty text is GSM-7 with 0 units and 0 parts: nothing would be sent.
  Validation rejects empty SMS texts before this matters, and 0 keeps
  ``len(split_segments(t)) == count_segments(t).parts`` true for every ``t``.
* ESC (U+001B) itself is not treated as a GSM-7 character even though it has a
  code point in the table: sent raw, it would be read as the escape prefix and
  merge with the following character (ESC + ``(`` arrives as ``{``).

The module is pure (stdlib only) so both the API validation layer and the
connectors can use it without pulling in anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "GSM7_MULTI_PART_SEPTETS",
    "GSM7_SINGLE_PART_SEPTETS",
    "MAX_GSM7_CHARS",
    "MAX_UCS2_CHARS",
    "UCS2_MULTI_PART_UNITS",
    "UCS2_SINGLE_PART_UNITS",
    "Encoding",
    "SmsSegments",
    "count_segments",
    "is_gsm7",
    "sms_text_length_error",
    "split_segments",
]

Encoding = Literal["gsm7", "ucs2"]

GSM7_SINGLE_PART_SEPTETS: Final = 160
GSM7_MULTI_PART_SEPTETS: Final = 153
UCS2_SINGLE_PART_UNITS: Final = 70
UCS2_MULTI_PART_UNITS: Final = 67

# Product limits on the alternative-SMS text, measured in the same units as
# ``SmsSegments.units`` (septets / UTF-16 code units). They bound the length,
# not the part count: escapes or surrogate pairs at part boundaries can push a
# text that is within the limit to more parts than limit / per-part size.
MAX_GSM7_CHARS: Final = 765
MAX_UCS2_CHARS: Final = 355

# The default alphabet in code-point order, 16 per row; 0x1B (ESC) is left out
# on purpose, see the module docstring.
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

# Everything below U+10000 is one UTF-16 code unit (lone surrogates included,
# which Python strings can hold); everything above needs a surrogate pair.
_FIRST_NON_BMP: Final = 0x10000


@dataclass(frozen=True, slots=True)
class SmsSegments:
    """How a text would be sent as SMS.

    ``units`` is septets for ``gsm7`` and UTF-16 code units for ``ucs2``.
    """

    encoding: Encoding
    units: int
    parts: int


def is_gsm7(text: str) -> bool:
    """True if ``text`` can be sent GSM-7 encoded (vacuously true for ``""``)."""
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text)


def _char_cost(ch: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return 2 if ch in _GSM7_EXTENSION else 1
    return 2 if ord(ch) >= _FIRST_NON_BMP else 1


def _limits(encoding: Encoding) -> tuple[int, int]:
    if encoding == "gsm7":
        return GSM7_SINGLE_PART_SEPTETS, GSM7_MULTI_PART_SEPTETS
    return UCS2_SINGLE_PART_UNITS, UCS2_MULTI_PART_UNITS


def _encoding_of(text: str) -> Encoding:
    return "gsm7" if is_gsm7(text) else "ucs2"


def _split(text: str, encoding: Encoding) -> tuple[int, list[str]]:
    """Return (total units, parts) for ``text`` in ``encoding``."""
    if not text:
        return 0, []
    costs = [_char_cost(ch, encoding) for ch in text]
    total = sum(costs)
    single_limit, multi_limit = _limits(encoding)
    if total <= single_limit:
        return total, [text]
    # Greedy is what phones and SMSCs do, and it is also optimal: with
    # characters that cannot be broken, filling each part as far as possible
    # never needs more parts than any other contiguous split.
    parts: list[str] = []
    start = 0
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > multi_limit:
            parts.append(text[start:index])
            start = index
            used = 0
        used += cost
    parts.append(text[start:])
    return total, parts


def count_segments(text: str) -> SmsSegments:
    """Encoding, length in units and number of SMS parts needed for ``text``."""
    encoding = _encoding_of(text)
    units, parts = _split(text, encoding)
    return SmsSegments(encoding=encoding, units=units, parts=len(parts))


def split_segments(text: str) -> list[str]:
    """The texts of the individual SMS parts, in order; ``[]`` for ``""``.

    ``"".join(split_segments(text)) == text`` always holds.
    """
    return _split(text, _encoding_of(text))[1]


def sms_text_length_error(text: str) -> str | None:
    """A human-readable reason why ``text`` is too long for an SMS, or None."""
    segments = count_segments(text)
    if segments.encoding == "gsm7":
        if segments.units > MAX_GSM7_CHARS:
            return f"The text may not be greater than {MAX_GSM7_CHARS} GSM-7 characters."
    elif segments.units > MAX_UCS2_CHARS:
        return f"The text may not be greater than {MAX_UCS2_CHARS} UCS-2 characters."
    return None
