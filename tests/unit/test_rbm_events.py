"""Google RBM events decoded: every kind in the research note's payload shapes (§3), timestamps,
dedupe keys, and malformed input."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rcsgate.connectors.rbm import protocol
from rcsgate.connectors.rbm.events import (
    Delivered,
    FileInfo,
    Ignored,
    Read,
    Revoked,
    RevokeFailed,
    Tap,
    UserFile,
    UserLocation,
    UserText,
    decode_event,
    parse_time,
)

AGENT = "rcsgate_agent@rbm.goog"
PHONE = "+447700900123"
DIGITS = "447700900123"
SALT = 0x0123456789ABCDE
OUR_UUID = protocol.message_uuid(SALT, 1234)
SENT = "2026-12-02T10:11:12.345678Z"
AT = datetime(2026, 12, 2, 10, 11, 12, 345678, tzinfo=UTC)


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def user_event(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "senderPhoneNumber": PHONE,
        "eventType": event_type,
        "eventId": "ev-1",
        "messageId": OUR_UUID,
        "sendTime": SENT,
        "agentId": AGENT,
        **extra,
    }


def server_event(event_type: str) -> dict[str, Any]:
    return {
        "phoneNumber": PHONE,
        "messageId": OUR_UUID,
        "agentId": AGENT,
        "eventType": event_type,
        "eventId": "srv-1",
        "sendTime": SENT,
    }


def user_message(**content: Any) -> dict[str, Any]:
    return {
        "agentId": AGENT,
        "senderPhoneNumber": PHONE,
        "messageId": "user-msg-1",
        "sendTime": SENT,
        **content,
    }


# --------------------------------------------------------------------------- agent-message events


@pytest.mark.parametrize(("event_type", "kind"), [("DELIVERED", Delivered), ("READ", Read)])
def test_delivered_and_read(event_type: str, kind: type[Delivered] | type[Read]) -> None:
    event = decode_event(encode(user_event(event_type)))
    assert event == kind(message_uuid=OUR_UUID, event_id="ev-1", phone=DIGITS, at=AT, agent_id=AGENT)
    assert type(event) is kind
    assert event.dedupe_key == "ev-1"
    assert protocol.message_id_of(SALT, event.message_uuid) == 1234


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [("TTL_EXPIRATION_REVOKED", Revoked), ("TTL_EXPIRATION_REVOKE_FAILED", RevokeFailed)],
)
def test_server_events_use_phone_number(event_type: str, kind: type[Revoked] | type[RevokeFailed]) -> None:
    event = decode_event(encode(server_event(event_type)))
    assert event == kind(message_uuid=OUR_UUID, event_id="srv-1", phone=DIGITS, at=AT, agent_id=AGENT)
    assert type(event) is kind
    assert event.dedupe_key == "srv-1"


def test_server_event_with_sender_phone_number_is_accepted() -> None:
    payload = server_event("TTL_EXPIRATION_REVOKED")
    payload["senderPhoneNumber"] = payload.pop("phoneNumber")
    event = decode_event(encode(payload))
    assert isinstance(event, Revoked) and event.phone == DIGITS


def test_user_event_prefers_sender_phone_number() -> None:
    event = decode_event(encode(user_event("DELIVERED", phoneNumber="+15550001111")))
    assert isinstance(event, Delivered) and event.phone == DIGITS


def test_event_without_send_time_or_agent() -> None:
    payload = user_event("READ")
    del payload["sendTime"], payload["agentId"]
    event = decode_event(encode(payload))
    assert isinstance(event, Read)
    assert event.at is None and event.agent_id is None


def test_extra_fields_are_ignored() -> None:
    payload = user_event("DELIVERED", richMessageClassification={"x": 1}, carrier="c", future=[1, 2])
    assert isinstance(decode_event(encode(payload)), Delivered)


def test_through_the_envelope() -> None:
    body, headers = protocol.envelope(user_event("DELIVERED"), "token")
    data = protocol.open_envelope(json.loads(body))
    assert data is not None and protocol.signature_ok("token", data, headers[protocol.SIGNATURE_HEADER])
    assert isinstance(decode_event(data), Delivered)


# --------------------------------------------------------------------------- user messages


def test_tap() -> None:
    postback = protocol.postback(1234, 1, 2)
    payload = user_message(suggestionResponse={"postbackData": postback, "text": "Call us", "type": "ACTION"})
    event = decode_event(encode(payload))
    assert event == Tap(
        message_id="user-msg-1", phone=DIGITS, at=AT, agent_id=AGENT, postback_data=postback, text="Call us"
    )
    assert event.dedupe_key == "user-msg-1"
    assert isinstance(event, Tap) and protocol.parse_postback(event.postback_data) == (1234, 1, 2)


def test_tap_without_text() -> None:
    event = decode_event(encode(user_message(suggestionResponse={"postbackData": "rg1.1.0.0"})))
    assert isinstance(event, Tap) and event.text is None


def test_user_text() -> None:
    event = decode_event(encode(user_message(text="Hi there")))
    assert event == UserText(message_id="user-msg-1", phone=DIGITS, at=AT, agent_id=AGENT, text="Hi there")
    assert event.dedupe_key == "user-msg-1"


def test_user_location() -> None:
    event = decode_event(encode(user_message(location={"latitude": 51.5072, "longitude": -0.1276})))
    assert event == UserLocation(
        message_id="user-msg-1", phone=DIGITS, at=AT, agent_id=AGENT, latitude=51.5072, longitude=-0.1276
    )


def test_user_location_zero_is_left_out() -> None:
    # proto3 JSON omits zero values: a point on the equator has no latitude.
    event = decode_event(encode(user_message(location={"longitude": 32})))
    assert isinstance(event, UserLocation)
    assert (event.latitude, event.longitude) == (0.0, 32.0)
    assert isinstance(event.longitude, float)


def test_user_file_with_thumbnail() -> None:
    user_file = {
        "thumbnail": {
            "mimeType": "image/jpeg",
            "fileSizeBytes": "3456",
            "fileUri": "https://storage.googleapis.com/t/thumb.jpg",
            "fileName": "thumb.jpg",
        },
        "payload": {
            "mimeType": "image/gif",
            "fileSizeBytes": 127806,
            "fileUri": "https://storage.googleapis.com/t/4_animated.gif",
            "fileName": "4_animated.gif",
        },
    }
    event = decode_event(encode(user_message(userFile=user_file)))
    assert event == UserFile(
        message_id="user-msg-1",
        phone=DIGITS,
        at=AT,
        agent_id=AGENT,
        mime_type="image/gif",
        uri="https://storage.googleapis.com/t/4_animated.gif",
        name="4_animated.gif",
        size=127806,
        thumbnail=FileInfo(
            mime_type="image/jpeg",
            uri="https://storage.googleapis.com/t/thumb.jpg",
            name="thumb.jpg",
            size=3456,
        ),
    )


def test_user_file_minimal() -> None:
    payload = {"mimeType": "application/pdf", "fileUri": "https://storage.googleapis.com/t/a.pdf"}
    event = decode_event(encode(user_message(userFile={"payload": payload})))
    assert isinstance(event, UserFile)
    assert (event.mime_type, event.name, event.size, event.thumbnail) == ("application/pdf", None, None, None)


def test_user_message_with_event_id_only() -> None:
    # Some of Google's newer samples show user messages with an eventId and no messageId.
    payload = user_message(text="Hi")
    payload["eventId"] = payload.pop("messageId")
    event = decode_event(encode(payload))
    assert isinstance(event, UserText) and event.dedupe_key == "user-msg-1"


def test_user_message_phone_without_plus() -> None:
    event = decode_event(encode(dict(user_message(text="Hi"), senderPhoneNumber=DIGITS)))
    assert isinstance(event, UserText) and event.phone == DIGITS


# --------------------------------------------------------------------------- ignored


@pytest.mark.parametrize("event_type", ["IS_TYPING", "SUBSCRIBE", "UNSUBSCRIBE", "SOMETHING_NEW"])
def test_ignored_event_types(event_type: str) -> None:
    payload = user_event(event_type)
    if event_type == "IS_TYPING":
        del payload["messageId"]
    event = decode_event(encode(payload))
    assert event == Ignored(kind=event_type, key="ev-1", agent_id=AGENT)
    assert event.dedupe_key == "ev-1"


def test_ignored_kind_is_log_safe() -> None:
    event = decode_event(encode({"eventType": "BAD\n TYPE\x1b[31m" + "X" * 100}))
    assert isinstance(event, Ignored)
    assert event.kind == "BADTYPE31m" + "X" * 54 and len(event.kind) == 64
    assert event.dedupe_key is None
    assert decode_event(encode({"eventType": "\n\n"})) == Ignored(kind="UNKNOWN")


def test_agent_launch_event() -> None:
    payload = {
        "eventId": "launch-1",
        "agentId": AGENT,
        "botDisplayName": "Bot",
        "brandId": "b",
        "regionId": "/v1/regions/fi-rcs",
        "oldLaunchState": "PENDING",
        "newLaunchState": "LAUNCHED",
        "sendTime": SENT,
    }
    assert decode_event(encode(payload)) == Ignored(kind="AGENT_LAUNCH", key="launch-1", agent_id=AGENT)


def test_capability_callback() -> None:
    payload = {"phoneNumber": PHONE, "rbmEnabled": True, "features": ["RICHCARD_STANDALONE"]}
    assert decode_event(encode(payload)) == Ignored(kind="CAPABILITY")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"agentId": AGENT, "senderPhoneNumber": PHONE, "messageId": "m"},
        {"senderPhoneNumber": PHONE, "x": 1},
    ],
)
def test_unknown_shapes_are_ignored(payload: dict[str, Any]) -> None:
    event = decode_event(encode(payload))
    assert isinstance(event, Ignored) and event.kind == "UNKNOWN"
    assert event.dedupe_key == payload.get("messageId")


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-10-02T15:01:23Z", datetime(2014, 10, 2, 15, 1, 23, tzinfo=UTC)),
        ("2014-10-02T15:01:23.045Z", datetime(2014, 10, 2, 15, 1, 23, 45000, tzinfo=UTC)),
        ("2014-10-02T15:01:23.045123456Z", datetime(2014, 10, 2, 15, 1, 23, 45123, tzinfo=UTC)),
        ("2014-10-02t15:01:23.1z", datetime(2014, 10, 2, 15, 1, 23, 100000, tzinfo=UTC)),
        ("2014-10-02T15:01:23+05:30", datetime(2014, 10, 2, 9, 31, 23, tzinfo=UTC)),
        ("2014-10-02T00:30:00-01:00", datetime(2014, 10, 2, 1, 30, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0) and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2014-10-02T15:01:23",
        "2014-10-02 15:01:23Z",
        "2014-10-02T15:01Z",
        "2014-13-02T15:01:23Z",
        "2014-10-02T15:01:60Z",
        "2014-10-02T15:01:23.Z",
        "2014-10-02T15:01:23.0123456789Z",
        "2014-10-02T15:01:23+24:00",
        "2014-10-02T15:01:23+0530",
        "",
        "yesterday",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    assert parse_time(text) is None


def test_event_time_is_aware_utc() -> None:
    event = decode_event(encode(user_event("DELIVERED", sendTime="2026-12-02T12:11:12+02:00")))
    assert isinstance(event, Delivered)
    assert event.at == datetime(2026, 12, 2, 10, 11, 12, tzinfo=UTC)
    assert event.at is not None and event.at.tzinfo == UTC


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"DELIVERED"', "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
)
def test_not_an_event(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_event(data)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"eventType": 5}, "eventType must be a string"),
        ({"eventType": "IS_TYPING", "eventId": 7}, "eventId must be a string"),
        ({"eventType": "DELIVERED", "agentId": ["x"]}, "agentId must be a string"),
        (user_event("DELIVERED", messageId=None), "DELIVERED event: messageId is missing"),
        (user_event("READ", eventId=""), "READ event: eventId is missing"),
        (user_event("DELIVERED", senderPhoneNumber=None), "DELIVERED event: senderPhoneNumber is missing"),
        (user_event("DELIVERED", senderPhoneNumber="+44 7700 900123"), "must be an E.164 phone number"),
        (user_event("DELIVERED", senderPhoneNumber="+" + "1" * 16), "must be an E.164 phone number"),
        (user_event("DELIVERED", senderPhoneNumber="+\uff14\uff14"), "must be an E.164 phone number"),
        (user_event("DELIVERED", senderPhoneNumber=447700900123), "senderPhoneNumber must be a string"),
        (user_event("DELIVERED", sendTime="2026-12-02"), "sendTime must be an RFC 3339 timestamp"),
        (user_event("READ", sendTime=1700000000), "sendTime must be a string"),
        (dict(server_event("TTL_EXPIRATION_REVOKED"), phoneNumber=None), "phoneNumber is missing"),
        (dict(server_event("TTL_EXPIRATION_REVOKE_FAILED"), messageId=None), "messageId is missing"),
    ],
)
def test_malformed_events(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_event(encode(payload))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"suggestionResponse": "rg1.1.0.0"}, "suggestionResponse must be an object"),
        ({"suggestionResponse": {"text": "Open"}}, "postbackData is missing"),
        ({"suggestionResponse": {"postbackData": 5}}, "postbackData must be a string"),
        ({"text": 5}, "text must be a string"),
        ({"location": [51.5, 0.1]}, "location must be an object"),
        ({"location": {"latitude": "51.5"}}, "latitude must be a number"),
        ({"location": {"latitude": True}}, "latitude must be a number"),
        ({"location": {"latitude": 91}}, "latitude must be between -90 and 90"),
        ({"location": {"longitude": -180.5}}, "longitude must be between -180 and 180"),
        ({"userFile": {}}, "payload must be an object"),
        ({"userFile": {"payload": {"mimeType": "image/png"}}}, "fileUri is missing"),
        ({"userFile": {"payload": {"fileUri": "https://x/a"}}}, "mimeType is missing"),
        (
            {"userFile": {"payload": {"mimeType": "a/b", "fileUri": "https://x/a", "fileSizeBytes": "-1"}}},
            "fileSizeBytes must be a non-negative integer",
        ),
        (
            {"userFile": {"payload": {"mimeType": "a/b", "fileUri": "https://x/a", "fileSizeBytes": 1.5}}},
            "fileSizeBytes must be a non-negative integer",
        ),
        (
            {
                "userFile": {
                    "payload": {"mimeType": "a/b", "fileUri": "https://x/a"},
                    "thumbnail": {"mimeType": "image/png"},
                }
            },
            "thumbnail: fileUri is missing",
        ),
    ],
)
def test_malformed_user_messages(content: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_event(encode(user_message(**content)))


def test_nan_location_is_refused() -> None:
    with pytest.raises(ValueError, match="latitude must be between"):
        decode_event(
            b'{"senderPhoneNumber": "+447700900123", "messageId": "m", "location": {"latitude": NaN}}'
        )


@pytest.mark.parametrize("missing", ["messageId", "senderPhoneNumber"])
def test_user_message_missing_fields(missing: str) -> None:
    payload = user_message(text="Hi")
    del payload[missing]
    with pytest.raises(ValueError, match=f"user message: {missing} is missing"):
        decode_event(encode(payload))


def test_events_are_frozen() -> None:
    event = decode_event(encode(user_event("DELIVERED")))
    assert isinstance(event, Delivered)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.phone = "1"  # type: ignore[misc]
