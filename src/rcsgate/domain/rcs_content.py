"""RCS message content and the pure rules behind the RCS send endpoints.

Standard library (and the pure sibling `sms_segments`) only: no pydantic, web
or database imports. The API layer (`rcsgate.api.rcs_requests`) checks the
wire format with these rules and hands the services the frozen dataclasses
defined here.

Limits come from the BSG pages, the One-API OpenAPI file and the official
client (see /work/shared/CONTRACT.md, "Request rules"). Decisions taken where
those sources are silent or disagree are written next to the rule they shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from rcsgate.domain.sms_segments import MAX_GSM7_CHARS, MAX_UCS2_CHARS, Encoding, count_segments
from rcsgate.domain.timefmt import zone

SuggestionKind = Literal["link", "call"]
ContentKind = Literal["text", "single_card", "carousel"]
SmsEncoding = Encoding

# --- limits -----------------------------------------------------------------

DEFAULT_MAX_CARDS: Final = 10  # OpenAPI maxItems; the prose says 5: the limit is configurable.
MAX_SUGGESTIONS_PER_CARD: Final = 4
RCS_TEXT_MAX: Final = 160  # options.text, UTF-16 code units
CARD_TITLE_MAX: Final = 200
CARD_TEXT_MAX: Final = 1000  # UTF-16 code units
SUGGESTION_TEXT_MAX: Final = 25
POSTBACK_DATA_MAX: Final = 25
URL_MAX: Final = 1000  # media.url and suggestion url
CALLBACK_URL_MAX: Final = 100
SENDER_MAX: Final = 40  # RCS agent name
REFERENCE_ID_MAX: Final = 32
CAMPAIGN_PHONES_MAX: Final = 5000
CAMPAIGN_GROUPS_MAX: Final = 1000

VALIDITY_HOURS_MIN: Final = 1
VALIDITY_HOURS_MAX: Final = 72
VALIDITY_SECONDS_MIN: Final = 30
VALIDITY_SECONDS_MAX: Final = 86400
DEFAULT_VALIDITY_HOURS: Final = 72

SMS_GSM7_MAX: Final = MAX_GSM7_CHARS  # 765 septets (an extension-table character takes two)
SMS_UCS2_MAX: Final = MAX_UCS2_CHARS  # 355 UTF-16 code units

START_AT_MAX_DAYS: Final = 30  # today counts as day 1

MEDIA_IMAGE_EXTENSIONS: Final = ("jpeg", "jpg", "gif", "png")
MEDIA_VIDEO_EXTENSIONS: Final = ("h263", "m4v", "mp4", "mpeg", "mpeg4", "webm")
MEDIA_EXTENSIONS: Final = MEDIA_IMAGE_EXTENSIONS + MEDIA_VIDEO_EXTENSIONS


# --- content ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A button under a card: open `url` (kind "link") or call `phone` (kind "call")."""

    text: str
    kind: SuggestionKind
    url: str | None = None
    phone: str | None = None
    postback_data: str | None = None

    def __post_init__(self) -> None:
        if (self.kind == "link") != (self.url is not None) or (self.kind == "call") != (
            self.phone is not None
        ):
            raise ValueError("a link suggestion has a url and no phone, a call suggestion a phone and no url")


@dataclass(frozen=True, slots=True)
class Media:
    url: str


@dataclass(frozen=True, slots=True)
class Card:
    title: str | None = None
    text: str | None = None
    media: Media | None = None
    suggestions: tuple[Suggestion, ...] = ()

    def __post_init__(self) -> None:
        if self.media is None and self.text is None:
            raise ValueError("a card needs media or text")


@dataclass(frozen=True, slots=True)
class RcsContent:
    """Exactly one of: a plain `text`, or one or more `cards`."""

    text: str | None = None
    cards: tuple[Card, ...] = ()

    def __post_init__(self) -> None:
        if (self.text is None) == (not self.cards):
            raise ValueError("RCS content is either a text or cards")

    @property
    def kind(self) -> ContentKind:
        """The price category: text, single card or carousel (2+ cards)."""
        if self.text is not None:
            return "text"
        return "single_card" if len(self.cards) == 1 else "carousel"


@dataclass(frozen=True, slots=True)
class SmsAlternative:
    """The SMS sent when the RCS message cannot be delivered within its validity."""

    sender: str
    text: str
    validity_seconds: int
    check_stop_list: bool = True


# --- validated send requests ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    number: str  # digits only, as domain.phones.normalize_phone gives it
    reference_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RcsSend:
    """What every RCS send request carries (single message or campaign)."""

    sender: str
    content: RcsContent
    validity_seconds: int
    sms_alternative: SmsAlternative | None
    callback_url: str | None
    tariff_code: int | None
    add_to_contact_book: bool
    check_stop_list: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SingleRcsSend(RcsSend):
    recipient: Recipient


@dataclass(frozen=True, slots=True, kw_only=True)
class RcsCampaignSend(RcsSend):
    recipients: tuple[Recipient, ...]
    # Aware when the request gave an offset; naive: a wall time in the account's time zone
    # (start_at_utc); None: start now.
    start_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RcsGroupsCampaignSend(RcsSend):
    group_ids: tuple[int, ...]  # distinct, in request order
    start_at: datetime | None  # as RcsCampaignSend.start_at


# --- rules ------------------------------------------------------------------


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units: an emoji outside the BMP counts 2."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def validity_to_seconds(
    validity_hours: int | None,
    validity_seconds: int | None,
    default_hours: int = DEFAULT_VALIDITY_HOURS,
) -> int:
    """Effective validity. `validity_seconds` wins when both are given: the
    official client always sends `validity: 72` beside it."""
    if validity_seconds is not None:
        return validity_seconds
    if validity_hours is not None:
        return validity_hours * 3600
    return default_hours * 3600


_REFERENCE_ID_RE: Final = re.compile(rf"[A-Za-z0-9]{{1,{REFERENCE_ID_MAX}}}")
_SMS_SENDER_RE: Final = re.compile(r"[A-Za-z0-9]{3,11}|[0-9]{3,15}")


def is_valid_reference_id(value: str) -> bool:
    """1-32 ASCII letters or digits. ("Alphanumeric" is taken as ASCII: the id
    comes back in webhooks and filters, where anything else invites trouble.)"""
    return _REFERENCE_ID_RE.fullmatch(value) is not None


def is_valid_sms_sender(value: str) -> bool:
    """An SMS sender name: 3-11 Latin letters or digits, or 3-15 digits.

    OpenAPI's generic SMS `Sender` also mentions symbols and spaces, but the
    field used here (`SmsAltChannel.sender`) says "Latin letters or digits",
    as does the contract: we follow those."""
    return _SMS_SENDER_RE.fullmatch(value) is not None


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, without whitespace or control characters."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def media_extension(url: str) -> str | None:
    """The lower-cased extension of the last path segment of `url`, or None
    when that segment has no dot. Query string and fragment are ignored and
    percent-escapes decoded: "https://x/a/IMG.PNG?w=10#f" -> "png"."""
    last_segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if "." not in last_segment:
        return None
    return last_segment.rsplit(".", 1)[1].lower()


def is_allowed_media_url(url: str) -> bool:
    """The media file-type rule.

    Decision: the type is judged by the extension of the URL *path* (query
    string and fragment ignored, case-insensitive). A path whose last segment
    has no extension ("https://cdn.example/img/123", "https://domain.com/") is
    accepted: many CDNs serve media without one, the reference examples use
    such URLs, and the upstream checks the Content-Type when it fetches the
    file. A path with an extension outside jpeg/jpg/gif/png/h263/m4v/mp4/mpeg/
    mpeg4/webm ("…/doc.pdf", "…/get.php?f=a.png", "…/image.") is rejected."""
    ext = media_extension(url)
    return ext is None or ext in MEDIA_EXTENSIONS


def sms_text_units(text: str) -> tuple[SmsEncoding, int]:
    """How an SMS text is encoded and how long it is in that encoding:
    GSM-7 septets (extension characters count 2) or UCS-2 (UTF-16) units.
    The counting itself lives in `rcsgate.domain.sms_segments`."""
    segments = count_segments(text)
    return segments.encoding, segments.units


def sms_text_max(encoding: SmsEncoding) -> int:
    return SMS_GSM7_MAX if encoding == "gsm7" else SMS_UCS2_MAX


# "yyyy-mm-dd hh:mm:ss" (the pages), or ISO 8601 with a T (what the official
# client sends: datetime.isoformat(), with or without fraction and offset).
_START_AT_RE: Final = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:"
    r" (?P<h1>[0-9]{2}):(?P<mi1>[0-9]{2}):(?P<s1>[0-9]{2})"
    r"|"
    r"[Tt](?P<h2>[0-9]{2}):(?P<mi2>[0-9]{2})(?::(?P<s2>[0-9]{2})(?:\.(?P<frac>[0-9]{1,6}))?)?"
    r"(?P<tz>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
    r")"
)


def parse_start_at(value: str) -> datetime | None:
    """Parse a campaign `start_at`; None when the format is not accepted.

    Accepted: "2025-01-25 09:00:00" and ISO 8601 with a "T": seconds and a
    fraction of up to 6 digits optional, offset "Z", "+hh", "+hhmm" or "+hh:mm"
    optional. A value with an offset gives an aware datetime in UTC; one without
    (including every "yyyy-mm-dd hh:mm:ss" value) a naive one: a wall time in the
    account's time zone, which `start_at_utc` resolves once the account is known."""
    m = _START_AT_RE.fullmatch(value)
    if m is None:
        return None
    hour, minute, second = (m["h1"], m["mi1"], m["s1"]) if m["h1"] else (m["h2"], m["mi2"], m["s2"] or "0")
    micro = int((m["frac"] or "0").ljust(6, "0"))
    tz: timezone | None = UTC if m["tz"] else None
    if m["sign"]:
        oh, om = int(m["oh"]), int(m["om"] or "0")
        if oh > 23 or om > 59:
            return None
        offset = timedelta(hours=oh, minutes=om)
        tz = timezone(-offset if m["sign"] == "-" else offset)
    try:
        parsed = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError:
        return None
    return parsed if tz is None else parsed.astimezone(UTC)


def start_at_utc(moment: datetime, tz: str = "UTC") -> datetime:
    """`moment` as an aware datetime in UTC; a naive one is a wall time in the zone `tz` (the
    account's). A wall time a daylight-saving change skips or repeats is read as zoneinfo does:
    with the offset in force before the change."""
    local = moment.replace(tzinfo=zone(tz)) if moment.tzinfo is None else moment
    return local.astimezone(UTC)


def latest_start_at(now: datetime, tz: str = "UTC") -> datetime:
    """23:59:59 in the zone `tz` (the account's) of the 30th day, today there being day 1; aware,
    in that zone. A naive `now` is UTC."""
    local_now = start_at_utc(now).astimezone(zone(tz))
    last_day = local_now.date() + timedelta(days=START_AT_MAX_DAYS - 1)
    return datetime.combine(last_day, time(23, 59, 59), tzinfo=zone(tz))


def check_start_at(start_at: datetime, now: datetime, tz: str = "UTC") -> str | None:
    """Why a campaign cannot start at `start_at`, or None when it can.

    A naive `start_at` is a wall time in the zone `tz` (the account's), a naive
    `now` UTC. Compared to the second, so a start_at equal to "now" truncated to
    seconds is not in the past. The reason is a complete message for the
    `start_at` field, its time in the zone `tz`, as the API shows times."""
    start = start_at_utc(start_at, tz).replace(microsecond=0)
    if start < start_at_utc(now).replace(microsecond=0):
        return "The start at must be a date after or equal to now."
    latest = latest_start_at(now, tz)
    if start > latest:
        return f"The start at must be a date before or equal to {latest:%Y-%m-%d %H:%M:%S}."
    return None
