"""One Google RBM event, decoded: the JSON inside a push envelope's ``message.data`` (see
``protocol.open_envelope``) into a frozen dataclass the ingress can act on.

Payload shapes: /work/shared/research/google-rbm.md §3 ("Decoded payloads"), from Google's receive
and events guides and the UserMessage / UserEvent / AgentLaunchEvent references.

* Agent-message events (``eventType`` DELIVERED, READ) and server events (TTL_EXPIRATION_REVOKED,
  TTL_EXPIRATION_REVOKE_FAILED) name our message by its ``messageId`` (the UUID we sent it with).
  Server events carry the phone as ``phoneNumber``, user events as ``senderPhoneNumber``.
* User messages have no ``eventType``; exactly one of ``suggestionResponse``, ``text``,
  ``location``, ``userFile`` says what the user sent.
* Everything else (IS_TYPING, SUBSCRIBE/UNSUBSCRIBE, agent launch events, the old capability
  callback, types Google adds later) is ``Ignored``, with a short kind for the log.

Every event has a ``dedupe_key``: Google retries a push for days until it gets a 200, so the same
event can arrive more than once. It is the ``eventId`` of an event and the user message's
``messageId`` for a user message (the ids Google documents as unique per instance).

Decoding is lenient about fields it does not use and strict about those it does: a missing or
mistyped required field is a ``ValueError`` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from rcsgate.domain import json_text

__all__ = [
    "Delivered",
    "Event",
    "FileInfo",
    "Ignored",
    "Read",
    "RevokeFailed",
    "Revoked",
    "Tap",
    "UserFile",
    "UserLocation",
    "UserText",
    "decode_event",
    "parse_time",
]


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageEvent:
    """An event about one of our agent messages."""

    message_uuid: str  # Google's messageId: protocol.message_id_of() turns it back into ours
    event_id: str
    phone: str  # digits only, no plus
    at: datetime | None  # sendTime in UTC; None when Google sent none (use the arrival time)
    agent_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return self.event_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered(_MessageEvent):
    """DELIVERED: the message reached the user's device."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Read(_MessageEvent):
    """READ: the user opened the message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Revoked(_MessageEvent):
    """TTL_EXPIRATION_REVOKED: the ttl ran out before delivery and Google took the message back;
    safe to fall back to SMS."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeFailed(_MessageEvent):
    """TTL_EXPIRATION_REVOKE_FAILED: the ttl ran out but the revocation failed, so the message may
    still be delivered (a DELIVERED may follow)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _UserMessage:
    """A message the user sent to the agent."""

    message_id: str  # the user's message id (assigned by the user's RCS client)
    phone: str  # digits only, no plus
    at: datetime | None  # sendTime in UTC; None when Google sent none (use the arrival time)
    agent_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return self.message_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Tap(_UserMessage):
    """The user tapped a suggestion: ``postback_data`` is what we put on it (``protocol.postback``
    for ours), ``text`` the label the user saw (None when Google left it out)."""

    postback_data: str
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserText(_UserMessage):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserLocation(_UserMessage):
    """A location the user sent (not necessarily where the user is)."""

    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FileInfo:
    mime_type: str
    uri: str  # where Google serves the file
    name: str | None = None
    size: int | None = None  # bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class UserFile(_UserMessage):
    """A file the user sent: the file itself and, for images and videos, its thumbnail."""

    mime_type: str
    uri: str
    name: str | None = None
    size: int | None = None  # bytes
    thumbnail: FileInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """An event rcsgate does not act on. ``kind`` is short and log-safe: the eventType (IS_TYPING,
    SUBSCRIBE, UNSUBSCRIBE, or whatever Google adds), AGENT_LAUNCH, CAPABILITY or UNKNOWN."""

    kind: str
    key: str | None = None  # eventId or messageId, when the event has one
    agent_id: str | None = None

    @property
    def dedupe_key(self) -> str | None:
        return self.key


Event = Delivered | Read | Revoked | RevokeFailed | Tap | UserText | UserLocation | UserFile | Ignored

_MESSAGE_EVENTS: Final[Mapping[str, type[Delivered | Read | Revoked | RevokeFailed]]] = {
    "DELIVERED": Delivered,
    "READ": Read,
    "TTL_EXPIRATION_REVOKED": Revoked,
    "TTL_EXPIRATION_REVOKE_FAILED": RevokeFailed,
}
# Server events name the recipient `phoneNumber`, user events `senderPhoneNumber` [G-events].
_SERVER_EVENTS: Final = frozenset({"TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"})
_KIND_MAX: Final = 64


# --- fields -------------------------------------------------------------------------------------


class _Fields:
    """Typed access to one JSON object's fields, with errors that say where."""

    def __init__(self, node: Mapping[str, Any], where: str) -> None:
        self.node = node
        self.where = where

    def _fail(self, name: str, problem: str) -> ValueError:
        return ValueError(f"RBM {self.where}: {name} {problem}")

    def opt_str(self, name: str) -> str | None:
        value = self.node.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._fail(name, "must be a string")
        return value

    def req_str(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None:
            raise self._fail(name, "is missing")
        return value

    def obj(self, name: str) -> _Fields:
        value = self.node.get(name)
        if not isinstance(value, Mapping):
            raise self._fail(name, "must be an object")
        return _Fields(value, f"{self.where} {name}")

    def opt_obj(self, name: str) -> _Fields | None:
        return self.obj(name) if self.node.get(name) is not None else None

    def coordinate(self, name: str, bound: float) -> float:
        # proto3 JSON leaves out zero values, so an absent coordinate is 0 (the equator, say).
        value = self.node.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(name, "must be a number")
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise self._fail(name, f"must be between -{bound:g} and {bound:g}")
        return float(value)

    def opt_size(self, name: str) -> int | None:
        # An int64 is a JSON string in proto3 JSON; Google's samples also show a plain number.
        value = self.node.get(name)
        if value is None:
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise self._fail(name, "must be a non-negative integer")

    def phone(self, name: str) -> str:
        value = self.req_str(name)
        digits = value[1:] if value.startswith("+") else value
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 15):
            raise self._fail(name, "must be an E.164 phone number")
        return digits

    def time(self, name: str) -> datetime | None:
        value = self.opt_str(name)
        if value is None:
            return None
        parsed = parse_time(value)
        if parsed is None:
            raise self._fail(name, "must be an RFC 3339 timestamp")
        return parsed


_RFC3339_RE: Final = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp ("2014-10-02T15:01:23.045123456Z", or with an offset such as
    "+05:30") as an aware UTC datetime; None when ``value`` is not one. Digits past microseconds
    are dropped (Google sends up to nine)."""
    m = _RFC3339_RE.fullmatch(value)
    if m is None:
        return None
    if m["z"] == "Z" and value[10] == "T":
        # The form Google sends, which fromisoformat reads in C in a fraction of the time (nine
        # fraction digits included, past six dropped as below); its ValueError is the same bad date.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    tz: timezone = UTC
    if m["sign"]:
        hours, minutes = int(m["oh"]), int(m["om"])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if m["sign"] == "-" else offset)
    micro = int((m["frac"] or "0")[:6].ljust(6, "0"))
    try:
        year, month, day = (int(part) for part in m["date"].split("-"))
        moment = datetime(year, month, day, int(m["h"]), int(m["m"]), int(m["s"]), micro, tzinfo=tz)
    except ValueError:  # month 13, second 60 (a leap second) and the like
        return None
    return moment.astimezone(UTC)


def _kind(value: str) -> str:
    """An eventType as a log-safe kind: what Google adds later is logged, not trusted."""
    kind = re.sub(r"[^A-Za-z0-9_]", "", value)[:_KIND_MAX]
    return kind or "UNKNOWN"


# --- decoding -----------------------------------------------------------------------------------


def _message_event(
    fields: _Fields, event_type: str, agent_id: str | None
) -> Delivered | Read | Revoked | RevokeFailed:
    phone_field = "phoneNumber" if event_type in _SERVER_EVENTS else "senderPhoneNumber"
    # Be lenient about which of the two names carries the phone; the documented one wins.
    if fields.node.get(phone_field) is None:
        other = "senderPhoneNumber" if phone_field == "phoneNumber" else "phoneNumber"
        if fields.node.get(other) is not None:
            phone_field = other
    return _MESSAGE_EVENTS[event_type](
        message_uuid=fields.req_str("messageId"),
        event_id=fields.req_str("eventId"),
        phone=fields.phone(phone_field),
        at=fields.time("sendTime"),
        agent_id=agent_id,
    )


def _file_info(fields: _Fields) -> FileInfo:
    return FileInfo(
        mime_type=fields.req_str("mimeType"),
        uri=fields.req_str("fileUri"),
        name=fields.opt_str("fileName"),
        size=fields.opt_size("fileSizeBytes"),
    )


def _user_message(fields: _Fields, agent_id: str | None) -> Event:
    node = fields.node
    kinds = ("suggestionResponse", "text", "location", "userFile")
    kind = next((name for name in kinds if node.get(name) is not None), None)
    if kind is None:
        return Ignored(
            kind="UNKNOWN", key=fields.opt_str("eventId") or fields.opt_str("messageId"), agent_id=agent_id
        )
    # The reference has `messageId`; some of Google's newer samples show only an `eventId`.
    message_id = fields.opt_str("messageId") or fields.opt_str("eventId")
    if message_id is None:
        raise ValueError(f"RBM {fields.where}: messageId is missing")
    common: dict[str, Any] = {
        "message_id": message_id,
        "phone": fields.phone("senderPhoneNumber"),
        "at": fields.time("sendTime"),
        "agent_id": agent_id,
    }
    if kind == "suggestionResponse":
        response = fields.obj("suggestionResponse")
        return Tap(postback_data=response.req_str("postbackData"), text=response.opt_str("text"), **common)
    if kind == "text":
        text = node["text"]
        if not isinstance(text, str):
            raise ValueError(f"RBM {fields.where}: text must be a string")
        return UserText(text=text, **common)
    if kind == "location":
        location = fields.obj("location")
        return UserLocation(
            latitude=location.coordinate("latitude", 90),
            longitude=location.coordinate("longitude", 180),
            **common,
        )
    user_file = fields.obj("userFile")
    payload = _file_info(user_file.obj("payload"))
    thumbnail = user_file.opt_obj("thumbnail")
    return UserFile(
        mime_type=payload.mime_type,
        uri=payload.uri,
        name=payload.name,
        size=payload.size,
        thumbnail=_file_info(thumbnail) if thumbnail is not None else None,
        **common,
    )


def decode_event(data: bytes) -> Event:
    """The event in ``data``, the decoded ``message.data`` of a push.

    ValueError (with a message saying what is wrong) when ``data`` is not a JSON object or a field
    rcsgate needs is missing or of the wrong type; fields it does not need are not looked at.
    """
    try:
        body = json_text.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise ValueError(f"RBM event is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("RBM event is not a JSON object")
    fields = _Fields(body, "event")
    agent_id = fields.opt_str("agentId")
    event_type = fields.opt_str("eventType")
    if event_type is not None:
        if event_type in _MESSAGE_EVENTS:
            fields.where = f"{event_type} event"
            return _message_event(fields, event_type, agent_id)
        return Ignored(kind=_kind(event_type), key=fields.opt_str("eventId"), agent_id=agent_id)
    if "newLaunchState" in body or "oldLaunchState" in body:
        return Ignored(kind="AGENT_LAUNCH", key=fields.opt_str("eventId"), agent_id=agent_id)
    if "rbmEnabled" in body:
        return Ignored(kind="CAPABILITY", agent_id=agent_id)
    fields.where = "user message"
    return _user_message(fields, agent_id)
