"""Standard Webhooks signatures for outgoing callbacks (https://www.standardwebhooks.com/).

Thin wrapper over the ``standardwebhooks`` reference library that closes a few of its sharp
edges (see the notes inline) so callers cannot accidentally produce signatures that receivers
reject:

* it signs ``str``, not bytes, so the body is decoded as strict UTF-8 and the library re-encodes
  it identically; non-UTF-8 bodies are refused instead of being signed incorrectly;
* it decodes secrets leniently (invalid base64 characters are silently dropped), so secrets are
  validated strictly here first;
* it *replaces* the timestamp's tzinfo with UTC instead of converting, so timestamps are
  converted to UTC here before signing;
* malformed signature headers make it raise bare ``ValueError``/``binascii.Error``; ``verify``
  folds those into :class:`WebhookSignatureError`.

Receivers: verify with any Standard Webhooks library, or with :func:`verify` below, against the
raw request body bytes (never a re-serialised JSON document) and reject timestamps more than
five minutes away from the current time.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = [
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "WebhookSignatureError",
    "new_webhook_secret",
    "signed_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a credential
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

# The spec recommends 24-64 byte secrets; 32 bytes equals the HMAC-SHA256 output size.
_SECRET_BYTES = 32


class WebhookSignatureError(ValueError):
    """The request is not a validly signed webhook (bad/missing headers, stale timestamp, mismatch)."""


def new_webhook_secret() -> str:
    """A fresh ``whsec_``-prefixed secret (32 random bytes, standard base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        # Accept unpadded base64 like the library does, but refuse stray characters, which the
        # library would silently discard and thereby sign with a key nobody else derives.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError:  # binascii.Error is a ValueError
        # Never echo the secret itself: error messages end up in logs.
        raise ValueError("webhook secret is not valid base64 (expected 'whsec_' + base64)") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    # One per account secret: every delivery of the account would otherwise decode it again.
    return Webhook(_secret_key(secret))


def _check_webhook_id(webhook_id: str) -> None:
    # The id is placed verbatim into a header and into the signed string; whitespace or control
    # characters would enable header injection or make receivers split the value differently.
    if not webhook_id or not webhook_id.isascii() or not webhook_id.isprintable() or " " in webhook_id:
        raise ValueError("webhook_id must be a non-empty printable ASCII string without spaces")


def signed_headers(*, secret: str, webhook_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """Headers to send alongside ``body`` (which must be sent byte-for-byte as given).

    Returns ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` and
    ``content-type: application/json``. A naive ``timestamp`` is taken to be UTC, matching how
    the database hands back timestamps on SQLite.
    """
    _check_webhook_id(webhook_id)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("webhook body must be UTF-8 encoded JSON") from None
    aware = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
    # One integer second feeds both the header and the signed string; the library would floor
    # on its own, but deriving both from the same value makes them agree by construction.
    seconds = math.floor(aware.timestamp())
    signature = _signer(secret).sign(
        msg_id=webhook_id, timestamp=datetime.fromtimestamp(seconds, tz=UTC), data=text
    )
    return {
        HEADER_ID: webhook_id,
        HEADER_TIMESTAMP: str(seconds),
        HEADER_SIGNATURE: signature,
        "content-type": "application/json",
    }


def verify(*, secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check a received webhook; raise :class:`WebhookSignatureError` unless it is authentic.

    Header names are matched case-insensitively. The timestamp must be within five minutes of
    now (the library's fixed tolerance), which is what makes captured requests non-replayable.
    Accepts several space-separated ``v1,...`` signatures, as sent during secret rotation.
    """
    key = _secret_key(secret)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureError("webhook body is not valid UTF-8") from None
    try:
        Webhook(key).verify(text, dict(headers.items()), json_parse=False)
    except WebhookVerificationError as exc:
        raise WebhookSignatureError(f"webhook signature verification failed: {exc}") from exc
    except ValueError as exc:  # includes binascii.Error
        # The library unpacks "version,signature" and base64-decodes without guarding either.
        raise WebhookSignatureError("webhook-signature header is malformed") from exc
