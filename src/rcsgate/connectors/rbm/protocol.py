"""What rcsgate and Google's RBM agree on over the wire, in one place so the connector, the event
ingress and the local RBM (``fake``) cannot drift apart. Google's documentation is the source of
every rule here (see docs/connectors/rbm.md for the references).

* Message ids. Google ignores a message whose ``messageId`` an earlier message of the same agent
  used, which makes a resubmission after a crash harmless, provided the id is derived from ours.
  It must also not repeat across installations or a reset database sharing one agent, so the id
  mixes in a per-connector random ``salt`` (60 bits, chosen when the connector is added). Layout,
  RFC 9562 version-4 format (the version and variant bits set; the rest is ours rather than random):
  48 bits of salt, version nibble 4, 12 more bits of salt, variant bits 10, then 62 bits of our
  message id. Decoding checks the salt, so an event for another installation's message is ignored.
* Postback data. Every suggestion we send carries ``rg1.<message id>.<card>.<suggestion>`` so a tap
  names the message and the button; the customer's own ``postback_data`` is looked up from the
  stored content and goes into the click webhook as before.
* Events arrive in a Pub/Sub push envelope: ``{"message": {"data": base64(event JSON), ...}}``,
  signed in ``X-Goog-Signature`` = base64(HMAC-SHA512(client token, base64-decoded data)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import orjson

SCOPE: Final = "https://www.googleapis.com/auth/rcsbusinessmessaging"
REGIONS: Final = ("europe", "us", "asia")
SIGNATURE_HEADER: Final = "X-Goog-Signature"
# The audience Google's token endpoint checks an assertion for (google-auth hard-codes it).
TOKEN_AUDIENCE: Final = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"

SALT_BITS: Final = 60
_ID_BITS: Final = 62
_POSTBACK_PREFIX: Final = "rg1"
# The pushes' opaque Pub/Sub messageIds (the local RBM's, and tests'): unique, not secret, so
# drawn from a generator seeded once from the OS rather than a getrandom() call per push.
_opaque = random.Random()


def region_url(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}")
    return f"https://{region}-rcsbusinessmessaging.googleapis.com"


def new_salt() -> int:
    return secrets.randbits(SALT_BITS)


def message_uuid(salt: int, message_id: int) -> str:
    """Google's ``messageId`` for our message ``message_id`` (see the module docstring)."""
    if not 0 <= salt < 1 << SALT_BITS:
        raise ValueError("salt out of range")
    if not 0 < message_id < 1 << _ID_BITS:
        raise ValueError("message id out of range")
    high = salt >> 12  # 48 bits
    mid = salt & 0xFFF  # 12 bits
    value = (high << 80) | (0x4 << 76) | (mid << 64) | (0b10 << 62) | message_id
    return str(uuid.UUID(int=value))


def message_id_of(salt: int, message_uuid_text: str) -> int | None:
    """Our message id inside a ``messageId`` we made with ``salt``; None for any other id."""
    try:
        value = uuid.UUID(message_uuid_text).int
    except (ValueError, AttributeError, TypeError):
        return None
    if (value >> 76) & 0xF != 0x4 or (value >> 62) & 0b11 != 0b10:
        return None
    if ((value >> 80) << 12) | ((value >> 64) & 0xFFF) != salt:
        return None
    message_id = value & ((1 << _ID_BITS) - 1)
    return message_id or None


def postback(message_id: int, card: int, suggestion: int) -> str:
    """The ``postbackData`` of suggestion ``suggestion`` of card ``card`` (0 for a text message's chips)."""
    return f"{_POSTBACK_PREFIX}.{message_id}.{card}.{suggestion}"


def parse_postback(data: str) -> tuple[int, int, int] | None:
    """(message id, card, suggestion) from our postback data; None for anything else."""
    parts = data.split(".")
    if (
        len(parts) != 4
        or parts[0] != _POSTBACK_PREFIX
        or not all(p.isdigit() and len(p) <= 19 for p in parts[1:])
    ):
        return None
    message_id, card, suggestion = (int(p) for p in parts[1:])
    return (message_id, card, suggestion) if message_id > 0 else None


def signature(client_token: str, data: bytes) -> str:
    """``X-Goog-Signature`` for an event whose decoded ``message.data`` is ``data``."""
    # One call into OpenSSL: hmac.new(...).digest() builds and copies hash objects in Python.
    digest = hmac.digest(client_token.encode(), data, "sha512")
    return base64.b64encode(digest).decode("ascii")


def signature_ok(client_token: str, data: bytes, header: str | None) -> bool:
    if not header or not client_token:
        return False
    return hmac.compare_digest(signature(client_token, data), header.strip())


def envelope(
    event: dict[str, Any], client_token: str, *, now: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed push as Google sends it: the body and its headers."""
    # orjson: compact JSON as json.dumps(separators=(",", ":")) writes it (non-ASCII as UTF-8
    # rather than \u escapes, as Google's own JSON), in a fraction of the time.
    data = orjson.dumps(event)
    body = {
        "message": {
            "data": base64.b64encode(data).decode("ascii"),
            "attributes": {"type": "event" if "eventType" in event else "message"},
            "messageId": f"{_opaque.getrandbits(128):032x}",  # opaque to the receiver
            # isoformat rather than strftime: the same text (years from 1000 on), in a fraction of the time.
            "publishTime": (now or datetime.now(UTC))
            .astimezone(UTC)
            .replace(tzinfo=None)
            .isoformat(timespec="microseconds")
            + "Z",
        },
        "subscription": "projects/rbm-local/subscriptions/rbm-local",
    }
    return orjson.dumps(body), {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature(client_token, data),
    }


def open_envelope(body: Any) -> bytes | None:
    """The decoded ``message.data`` of a push, or None when ``body`` is not a push envelope."""
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        return None
    try:
        return base64.b64decode(message["data"], validate=True)
    except (binascii.Error, ValueError):
        return None


def fingerprint(secret: str) -> str:
    """How a secret is shown: enough to tell two apart, nothing to use."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]
