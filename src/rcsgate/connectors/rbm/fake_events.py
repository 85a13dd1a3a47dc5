"""The events the local RBM pushes, in the shapes Google's webhook documentation gives (the
decoded ``message.data`` of a push; ``protocol.envelope`` wraps and signs them):

* user events ``{agentId, senderPhoneNumber, messageId, eventId, sendTime, eventType}`` for
  DELIVERED and READ;
* server events ``{phoneNumber, messageId, agentId, eventId, sendTime, eventType}`` for
  TTL_EXPIRATION_REVOKED, which say ``phoneNumber``, not ``senderPhoneNumber``;
* user messages ``{agentId, senderPhoneNumber, messageId, sendTime}`` plus one of ``text``,
  ``suggestionResponse {postbackData, text, type}``, ``location {latitude, longitude}`` or
  ``userFile {payload, thumbnail}``; their ``messageId`` is the user message's own id.

Google's event and user-message ids are opaque strings rather than UUIDs; these look alike.
"""

from __future__ import annotations

import base64
import math
import random
from datetime import UTC, datetime
from typing import Any, Final, Literal

StatusEventType = Literal["DELIVERED", "READ"]
ServerEventType = Literal["TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"]

_DEFAULT_MIME: Final = "application/octet-stream"
# Event ids must be unique, not secret: a generator seeded once from the OS, not a getrandom()
# call per event (a system call that cost ~3 % of the local RBM's CPU, py-spy 2026-12-05).
_ids = random.Random()


def rfc3339(moment: datetime) -> str:
    # isoformat, not strftime("%Y-%m-%dT%H:%M:%S.%fZ"): the same text for years from 1000 on, in
    # three quarters of the time (three per message in the local RBM).
    if moment.tzinfo is UTC:  # the clock's own: isoformat ends in "+00:00"
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def opaque_id() -> str:
    # As secrets.token_urlsafe(16): 16 bytes, URL-safe base64 without padding.
    return "Mx" + base64.urlsafe_b64encode(_ids.randbytes(16)).rstrip(b"=").decode("ascii")


def click_content(message: dict[str, Any]) -> dict[str, Any]:
    """The AgentMessage in the simulator's content shape, so ``simulation.first_suggestion`` (and
    ``schedule``) pick the suggestion a 9994 user taps: the first card's first suggestion, or the
    first message-level chip when the first card has none (or there is no card)."""
    content = message.get("contentMessage") or {}
    card = content.get("richCard") or {}
    first_card: dict[str, Any] = {}
    if "standaloneCard" in card:
        first_card = card["standaloneCard"].get("cardContent") or {}
    elif "carouselCard" in card:
        first_card = (card["carouselCard"].get("cardContents") or [{}])[0]
    chosen = first_card.get("suggestions") or content.get("suggestions") or []
    suggestions = []
    for item in chosen:
        kind = "reply" if "reply" in item else "action"
        body = item.get(kind) or {}
        suggestions.append(
            {
                "text": body.get("text"),
                "postback_data": body.get("postbackData", ""),
                "type": kind.upper(),
            }
        )
    return {"cards": [{"suggestions": suggestions}]}


def chosen_suggestion_type(content: dict[str, Any]) -> str:
    """REPLY or ACTION: the kind of the suggestion ``first_suggestion`` picked from ``click_content``."""
    try:
        return str(content["cards"][0]["suggestions"][0]["type"])
    except (KeyError, IndexError, TypeError):
        return "REPLY"


def status_event(
    event_type: StatusEventType, *, agent_id: str, phone: str, message_id: str, at: datetime
) -> dict[str, Any]:
    return {
        "agentId": agent_id,
        "senderPhoneNumber": phone,
        "eventType": event_type,
        "eventId": opaque_id(),
        "messageId": message_id,
        "sendTime": rfc3339(at),
    }


def server_event(
    event_type: ServerEventType, *, agent_id: str, phone: str, message_id: str, at: datetime
) -> dict[str, Any]:
    return {
        "agentId": agent_id,
        "phoneNumber": phone,
        "eventType": event_type,
        "eventId": opaque_id(),
        "messageId": message_id,
        "sendTime": rfc3339(at),
    }


def user_message(
    *,
    agent_id: str,
    phone: str,
    at: datetime,
    text: str | None = None,
    suggestion_response: dict[str, Any] | None = None,
    location: dict[str, Any] | None = None,
    user_file: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A user message carrying exactly one of its payloads; ValueError when that is not so."""
    given = {
        "text": text,
        "suggestionResponse": suggestion_response,
        "location": location,
        "userFile": user_file,
    }
    present = [name for name, value in given.items() if value is not None]
    if len(present) != 1:
        raise ValueError("a user message carries exactly one of text, suggestionResponse, location, userFile")
    kind = present[0]
    payload: Any = given[kind]
    if kind == "text" and not (isinstance(payload, str) and payload):
        raise ValueError("text must be a non-empty string")
    if kind == "location":
        payload = _location(payload)
    elif kind == "userFile":
        payload = _user_file(payload)
    elif kind == "suggestionResponse":
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise ValueError("suggestionResponse needs at least text")
        payload = {"postbackData": "", "type": "REPLY", **payload}
    return {
        "agentId": agent_id,
        "senderPhoneNumber": phone,
        "messageId": opaque_id(),
        "sendTime": rfc3339(at),
        kind: payload,
    }


def _location(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("location must be an object {latitude, longitude}")
    point: dict[str, float] = {}
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        number = value.get(name)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"location.{name} must be a number")
        if not math.isfinite(number) or not -bound <= number <= bound:
            raise ValueError(f"location.{name} must be from -{bound:g} to {bound:g}")
        point[name] = float(number)
    return point


def _user_file(value: Any) -> dict[str, Any]:
    """Google's ``userFile``: a ``payload`` (and optionally a ``thumbnail``) file description. A
    bare description (``{fileUri, mimeType, ...}``) is taken as the payload."""
    if not isinstance(value, dict):
        raise ValueError("userFile must be an object")
    wrapped = value if "payload" in value else {"payload": value}
    described: dict[str, Any] = {}
    for part in ("payload", "thumbnail"):
        if part not in wrapped:
            continue
        file = wrapped[part]
        if not isinstance(file, dict) or not isinstance(file.get("fileUri"), str):
            raise ValueError(f"userFile.{part} needs a fileUri")
        described[part] = {
            "mimeType": file.get("mimeType", _DEFAULT_MIME),
            "fileSizeBytes": file.get("fileSizeBytes", 0),
            "fileUri": file["fileUri"],
            "fileName": file.get("fileName", file["fileUri"].rsplit("/", 1)[-1]),
        }
    return described
