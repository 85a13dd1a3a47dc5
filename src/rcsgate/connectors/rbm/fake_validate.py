"""The local RBM's request checks: what Google's ``agentMessages.create`` refuses with 400
INVALID_ARGUMENT, so a connector bug shows up on a developer's machine rather than in production.

Every refusal is a ``FieldViolation`` naming the offending field by its JSON path
(``contentMessage.richCard.carouselCard.cardContents[2].suggestions[0].reply.text``), the way
Google's ``google.rpc.BadRequest`` details do. Unknown fields are refused as well, as Google's
JSON parser does ("Unknown name ... Cannot find field"): a misspelt field would otherwise be
silently dropped by Google and the message sent without it.

Limits (docs/connectors/rbm.md, Google's "send messages" guide): text 3072 characters, 11
message-level suggestions, 4 suggestions per card, carousel 2-10 cards, card title 200 and
description 2000, suggestion label 25, postbackData / fallbackUrl / url 2048, calendar title 100 and
description 500, ttl or expireTime (not both) at most 15 days, the whole AgentMessage 250 KB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from rcsgate.domain import json_text

MAX_TEXT: Final = 3072
MAX_CHIPS: Final = 11
MAX_CARD_SUGGESTIONS: Final = 4
MIN_CAROUSEL: Final = 2
MAX_CAROUSEL: Final = 10
MAX_TITLE: Final = 200
MAX_DESCRIPTION: Final = 2000
MAX_LABEL: Final = 25
MAX_POSTBACK: Final = 2048
MAX_URL: Final = 2048
MAX_CALENDAR_TITLE: Final = 100
MAX_CALENDAR_DESCRIPTION: Final = 500
MAX_MESSAGE_BYTES: Final = 250 * 1024
MAX_LIFETIME: Final = timedelta(days=15)

_E164: Final = re.compile(r"\+[1-9]\d{6,14}")
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DURATION: Final = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_RFC3339: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")

TRAFFIC_TYPES: Final = frozenset(
    {
        "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED",
        "AUTHENTICATION",
        "TRANSACTION",
        "PROMOTION",
        "SERVICEREQUEST",
        "ACKNOWLEDGEMENT",
    }
)
ACTION_KINDS: Final = (
    "openUrlAction",
    "dialAction",
    "viewLocationAction",
    "createCalendarEventAction",
    "shareLocationAction",
)


class FieldViolation(ValueError):
    """One refused field: ``field`` is its JSON path, ``description`` what is wrong with it."""

    def __init__(self, field: str, description: str, *, unknown: bool = False) -> None:
        super().__init__(field, description)
        self.field = field
        self.description = description
        self.unknown = unknown

    @property
    def message(self) -> str:
        if self.unknown:
            parent, _, name = self.field.rpartition(".")
            where = f" at '{parent}'" if parent else ""
            return f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
        return f"Invalid value at '{self.field}': {self.description}"

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------- path and query parameters


def check_phone(value: str, field: str = "phoneNumber") -> str:
    """The E.164 number (``+`` and 7-15 digits, no leading zero)."""
    if not _E164.fullmatch(value):
        raise FieldViolation(field, f"{value!r} is not a phone number in E.164 format, e.g. +14155550100")
    return value


def check_message_id(value: str | None) -> str:
    if not value:
        raise FieldViolation("messageId", "required")
    # The canonical 8-4-4-4-12 form only: uuid.UUID alone would take braces, urn: and undashed hex.
    if not _UUID.fullmatch(value):
        raise FieldViolation("messageId", f"{value!r} is not a UUID (RFC 4122)")
    return value


def check_agent_id(value: str | None) -> str:
    if not value or not value.strip():
        raise FieldViolation("agentId", "required")
    return value


# ---------------------------------------------------------------------- the AgentMessage


def check_agent_message(raw: bytes, *, now: datetime) -> dict[str, Any]:
    """The decoded AgentMessage, or FieldViolation for the first rule it breaks."""
    try:
        body = json_text.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FieldViolation("agentMessage", f"the body is not JSON: {exc}") from None
    message = _object(body, "agentMessage")
    # Measured compact, as Google measures the stringified message, so indentation costs nothing.
    size = len(json_text.dumps_compact(message))
    if size > MAX_MESSAGE_BYTES:
        raise FieldViolation("agentMessage", f"the message is {size} bytes, more than {MAX_MESSAGE_BYTES}")
    _known(
        message,
        "",
        {"name", "sendTime", "contentMessage", "messageTrafficType", "expireTime", "ttl"},
    )
    if "contentMessage" not in message:
        raise FieldViolation("contentMessage", "required")
    _content_message(_object(message["contentMessage"], "contentMessage"), "contentMessage")
    traffic = message.get("messageTrafficType")
    if traffic is not None and traffic not in TRAFFIC_TYPES:
        raise FieldViolation("messageTrafficType", f"must be one of {', '.join(sorted(TRAFFIC_TYPES))}")
    if "ttl" in message and "expireTime" in message:
        raise FieldViolation("ttl", "ttl and expireTime are mutually exclusive (set one of them)")
    if "ttl" in message and parse_duration(message["ttl"], "ttl") > MAX_LIFETIME:
        raise FieldViolation("ttl", "must not exceed 15 days (1296000s)")
    if "expireTime" in message:
        expire = parse_time(message["expireTime"], "expireTime")
        if expire > now + MAX_LIFETIME:
            raise FieldViolation("expireTime", "must not be more than 15 days in the future")
    return message


def parse_duration(value: Any, field: str) -> timedelta:
    """A protobuf Duration in JSON: seconds with an ``s`` suffix (``"600s"``, ``"1.5s"``)."""
    if isinstance(value, str) and 2 <= len(value) <= 13 and value[-1] == "s" and value[:-1].isdecimal():
        return timedelta(seconds=int(value[:-1]))  # whole seconds (every submit's ttl): no regex
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FieldViolation(field, f'{value!r} is not a duration such as "600s"')
    return timedelta(seconds=int(match[1]), microseconds=int((match[2] or "0").ljust(9, "0")[:6]))


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp as Google writes them (nanoseconds allowed)."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError(value)
        fraction = (match[2] or "0").ljust(6, "0")[:6]  # datetime keeps microseconds only
        zone = "+00:00" if match[3] == "Z" else match[3]
        return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").astimezone(UTC)
    except ValueError:
        raise FieldViolation(field, f"{value!r} is not an RFC 3339 timestamp") from None


def _content_message(content: dict[str, Any], path: str) -> None:
    _known(content, path, {"text", "fileName", "uploadedRbmFile", "richCard", "contentInfo", "suggestions"})
    kind = _one_of(content, path, ("text", "richCard", "contentInfo", "uploadedRbmFile", "fileName"))
    if kind == "text":
        _string(content, "text", path, required=True, max_len=MAX_TEXT)
    elif kind == "richCard":
        _rich_card(_object(content["richCard"], f"{path}.richCard"), f"{path}.richCard")
    elif kind == "contentInfo":
        _content_info(_object(content["contentInfo"], f"{path}.contentInfo"), f"{path}.contentInfo")
    elif kind == "uploadedRbmFile":
        _uploaded(_object(content["uploadedRbmFile"], f"{path}.uploadedRbmFile"), f"{path}.uploadedRbmFile")
    else:
        _string(content, "fileName", path, required=True)
    _suggestions(content, path, MAX_CHIPS)


def _rich_card(card: dict[str, Any], path: str) -> None:
    _known(card, path, {"standaloneCard", "carouselCard"})
    if _one_of(card, path, ("standaloneCard", "carouselCard")) == "standaloneCard":
        here = f"{path}.standaloneCard"
        standalone = _object(card["standaloneCard"], here)
        _known(standalone, here, {"cardOrientation", "thumbnailImageAlignment", "cardContent"})
        _enum(standalone, "cardOrientation", here, {"CARD_ORIENTATION_UNSPECIFIED", "HORIZONTAL", "VERTICAL"})
        _enum(
            standalone,
            "thumbnailImageAlignment",
            here,
            {"THUMBNAIL_IMAGE_ALIGNMENT_UNSPECIFIED", "LEFT", "RIGHT"},
        )
        if "cardContent" not in standalone:
            raise FieldViolation(f"{here}.cardContent", "required")
        _card_content(_object(standalone["cardContent"], f"{here}.cardContent"), f"{here}.cardContent")
        return
    here = f"{path}.carouselCard"
    carousel = _object(card["carouselCard"], here)
    _known(carousel, here, {"cardWidth", "cardContents"})
    _enum(carousel, "cardWidth", here, {"CARD_WIDTH_UNSPECIFIED", "SMALL", "MEDIUM"})
    contents = carousel.get("cardContents")
    if not isinstance(contents, list) or not MIN_CAROUSEL <= len(contents) <= MAX_CAROUSEL:
        count = len(contents) if isinstance(contents, list) else 0
        raise FieldViolation(
            f"{here}.cardContents",
            f"a carousel holds {MIN_CAROUSEL} to {MAX_CAROUSEL} cards, got {count}",
        )
    for index, item in enumerate(contents):
        at = f"{here}.cardContents[{index}]"
        _card_content(_object(item, at), at)


def _card_content(card: dict[str, Any], path: str) -> None:
    _known(card, path, {"title", "description", "media", "suggestions"})
    _string(card, "title", path, max_len=MAX_TITLE)
    _string(card, "description", path, max_len=MAX_DESCRIPTION)
    if "media" in card:
        here = f"{path}.media"
        media = _object(card["media"], here)
        _known(media, here, {"height", "contentInfo", "uploadedRbmFile", "fileUrl", "thumbnailUrl"})
        _enum(media, "height", here, {"HEIGHT_UNSPECIFIED", "SHORT", "MEDIUM", "TALL"})
        kind = _one_of(media, here, ("contentInfo", "uploadedRbmFile", "fileUrl"))
        if kind == "contentInfo":
            _content_info(_object(media["contentInfo"], f"{here}.contentInfo"), f"{here}.contentInfo")
        elif kind == "uploadedRbmFile":
            _uploaded(_object(media["uploadedRbmFile"], f"{here}.uploadedRbmFile"), f"{here}.uploadedRbmFile")
        else:
            _https(media, "fileUrl", here, required=True)
            _https(media, "thumbnailUrl", here)
    _suggestions(card, path, MAX_CARD_SUGGESTIONS)


def _content_info(info: dict[str, Any], path: str) -> None:
    _known(info, path, {"fileUrl", "thumbnailUrl", "forceRefresh"})
    _https(info, "fileUrl", path, required=True)
    _https(info, "thumbnailUrl", path)
    if "forceRefresh" in info and not isinstance(info["forceRefresh"], bool):
        raise FieldViolation(f"{path}.forceRefresh", "must be true or false")


def _uploaded(file: dict[str, Any], path: str) -> None:
    _known(file, path, {"fileName", "thumbnailName"})
    _string(file, "fileName", path, required=True)
    _string(file, "thumbnailName", path)


def _suggestions(parent: dict[str, Any], path: str, limit: int) -> None:
    if "suggestions" not in parent:
        return
    here = f"{path}.suggestions"
    items = parent["suggestions"]
    if not isinstance(items, list):
        raise FieldViolation(here, "must be a list")
    if len(items) > limit:
        raise FieldViolation(here, f"at most {limit} suggestions are allowed here, got {len(items)}")
    for index, item in enumerate(items):
        at = f"{here}[{index}]"
        suggestion = _object(item, at)
        _known(suggestion, at, {"reply", "action"})
        kind = _one_of(suggestion, at, ("reply", "action"))
        _suggestion(_object(suggestion[kind], f"{at}.{kind}"), f"{at}.{kind}", action=kind == "action")


def _suggestion(item: dict[str, Any], path: str, *, action: bool) -> None:
    common = {"text", "postbackData"}
    _known(item, path, (common | {"fallbackUrl", *ACTION_KINDS}) if action else common)
    _string(item, "text", path, required=True, max_len=MAX_LABEL)
    _string(item, "postbackData", path, max_len=MAX_POSTBACK)
    if not action:
        return
    _string(item, "fallbackUrl", path, max_len=MAX_URL)
    kind = _one_of(item, path, ACTION_KINDS)
    here = f"{path}.{kind}"
    detail = _object(item[kind], here)
    if kind == "openUrlAction":
        _known(detail, here, {"url", "application", "webviewViewMode", "description"})
        url = _string(detail, "url", here, required=True, max_len=MAX_URL)
        if urlsplit(url or "").scheme not in ("http", "https"):
            raise FieldViolation(f"{here}.url", "must be an http or https URL")
        _enum(detail, "application", here, {"OPEN_URL_APPLICATION_UNSPECIFIED", "BROWSER", "WEBVIEW"})
        _enum(detail, "webviewViewMode", here, {"WEBVIEW_VIEW_MODE_UNSPECIFIED", "FULL", "HALF", "TALL"})
    elif kind == "dialAction":
        _known(detail, here, {"phoneNumber"})
        check_phone(_string(detail, "phoneNumber", here, required=True) or "", f"{here}.phoneNumber")
    elif kind == "viewLocationAction":
        _known(detail, here, {"latLong", "label", "query"})
        _string(detail, "label", here)
        _string(detail, "query", here)
        if "latLong" in detail:
            _lat_long(_object(detail["latLong"], f"{here}.latLong"), f"{here}.latLong")
        elif "query" not in detail:
            raise FieldViolation(here, "set latLong or query")
    elif kind == "createCalendarEventAction":
        _known(detail, here, {"startTime", "endTime", "title", "description"})
        _string(detail, "title", here, required=True, max_len=MAX_CALENDAR_TITLE)
        _string(detail, "description", here, max_len=MAX_CALENDAR_DESCRIPTION)
        start = parse_time(detail.get("startTime"), f"{here}.startTime")
        if parse_time(detail.get("endTime"), f"{here}.endTime") < start:
            raise FieldViolation(f"{here}.endTime", "must not be before startTime")
    else:
        _known(detail, here, set())


def _lat_long(point: dict[str, Any], path: str) -> None:
    _known(point, path, {"latitude", "longitude"})
    for name, bound in (("latitude", 90), ("longitude", 180)):
        value = point.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
            raise FieldViolation(f"{path}.{name}", f"must be a number from -{bound} to {bound}")


# ---------------------------------------------------------------------- building blocks


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldViolation(path or "agentMessage", "must be a JSON object")
    return value


def _known(obj: dict[str, Any], path: str, allowed: Collection[str]) -> None:
    for name in obj:
        if name not in allowed:
            raise FieldViolation(f"{path}.{name}" if path else name, "unknown field", unknown=True)


def _one_of(obj: dict[str, Any], path: str, names: tuple[str, ...]) -> str:
    present = [name for name in names if obj.get(name) not in (None, "")]
    if len(present) != 1:
        got = ", ".join(present) if present else "none"
        raise FieldViolation(path, f"exactly one of {', '.join(names)} must be set (got {got})")
    return present[0]


def _string(
    obj: dict[str, Any], name: str, path: str, *, required: bool = False, max_len: int | None = None
) -> str | None:
    field = f"{path}.{name}" if path else name
    value = obj.get(name)
    if value is None:
        if required:
            raise FieldViolation(field, "required")
        return None
    if not isinstance(value, str):
        raise FieldViolation(field, "must be a string")
    if required and not value:
        raise FieldViolation(field, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise FieldViolation(field, f"at most {max_len} characters, got {len(value)}")
    return value


def _enum(obj: dict[str, Any], name: str, path: str, allowed: Collection[str]) -> None:
    value = obj.get(name)
    if value is not None and value not in allowed:
        raise FieldViolation(f"{path}.{name}", f"{value!r} is not one of {', '.join(sorted(allowed))}")


def _https(obj: dict[str, Any], name: str, path: str, *, required: bool = False) -> None:
    url = _string(obj, name, path, required=required, max_len=MAX_URL)
    if url is not None and urlsplit(url).scheme != "https":
        raise FieldViolation(f"{path}.{name}", "must be an https:// URL")
