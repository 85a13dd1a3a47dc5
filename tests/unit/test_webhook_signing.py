import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from rcsgate.webhooks.signing import (
    WebhookSignatureError,
    new_webhook_secret,
    signed_headers,
    verify,
)

BODY = json.dumps({"id": "msg_1", "status": "DELIVERED", "text": "héllo ✓"}, ensure_ascii=False).encode()


def _now() -> datetime:
    return datetime.now(UTC)


def test_new_secret_format() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    assert new_webhook_secret() != secret


def test_header_names_and_values() -> None:
    ts = datetime(2024, 5, 1, 12, 0, 0, 900_000, tzinfo=UTC)
    headers = signed_headers(secret=new_webhook_secret(), webhook_id="msg_1", timestamp=ts, body=BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(ts.timestamp()))  # floored, integer seconds
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"


def test_round_trip() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    verify(secret=secret, headers=headers, body=BODY)


def test_interoperates_with_reference_library() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_known_vector() -> None:
    # Test vector from the Standard Webhooks reference test suite.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    ts = datetime.fromtimestamp(1614265330, tz=UTC)
    headers = signed_headers(
        secret=secret, webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=ts, body=body
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_is_case_insensitive_on_header_names() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    verify(secret=secret, headers={k.title(): v for k, v in headers.items()}, body=BODY)


def test_tampered_body_fails() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    with pytest.raises(WebhookSignatureError, match="No matching signature"):
        verify(secret=secret, headers=headers, body=BODY.replace(b"DELIVERED", b"FAILED"))


def test_reserialised_body_fails() -> None:
    # Signing covers the exact bytes; equivalent-but-different JSON must not verify.
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    with pytest.raises(WebhookSignatureError):
        verify(secret=secret, headers=headers, body=json.dumps(json.loads(BODY)).encode())


def test_wrong_secret_fails() -> None:
    headers = signed_headers(secret=new_webhook_secret(), webhook_id="msg_1", timestamp=_now(), body=BODY)
    with pytest.raises(WebhookSignatureError):
        verify(secret=new_webhook_secret(), headers=headers, body=BODY)


def test_tampered_id_or_timestamp_fails() -> None:
    secret = new_webhook_secret()
    now = _now()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=now, body=BODY)
    with pytest.raises(WebhookSignatureError):
        verify(secret=secret, headers={**headers, "webhook-id": "msg_2"}, body=BODY)
    with pytest.raises(WebhookSignatureError):
        verify(
            secret=secret, headers={**headers, "webhook-timestamp": str(int(now.timestamp()) + 1)}, body=BODY
        )


def test_stale_timestamp_fails() -> None:
    secret = new_webhook_secret()
    headers = signed_headers(
        secret=secret, webhook_id="msg_1", timestamp=_now() - timedelta(minutes=10), body=BODY
    )
    with pytest.raises(WebhookSignatureError, match="too old"):
        verify(secret=secret, headers=headers, body=BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails(missing: str) -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    del headers[missing]
    with pytest.raises(WebhookSignatureError, match="Missing"):
        verify(secret=secret, headers=headers, body=BODY)


@pytest.mark.parametrize("signature", ["garbage", "v1,not!base64", "v1,a,b", "v1"])
def test_malformed_signature_header_raises_signature_error(signature: str) -> None:
    secret = new_webhook_secret()
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=_now(), body=BODY)
    with pytest.raises(WebhookSignatureError):
        verify(secret=secret, headers={**headers, "webhook-signature": signature}, body=BODY)


def test_rotation_accepts_any_matching_signature() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    now = _now()
    sig_old = signed_headers(secret=old, webhook_id="m", timestamp=now, body=BODY)["webhook-signature"]
    headers = signed_headers(secret=new, webhook_id="m", timestamp=now, body=BODY)
    headers["webhook-signature"] = f"{sig_old} {headers['webhook-signature']}"
    verify(secret=old, headers=headers, body=BODY)
    verify(secret=new, headers=headers, body=BODY)


def test_timezone_aware_timestamps_are_converted_not_relabelled() -> None:
    secret = new_webhook_secret()
    utc = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    plus3 = utc.astimezone(timezone(timedelta(hours=3)))
    a = signed_headers(secret=secret, webhook_id="m", timestamp=utc, body=BODY)
    b = signed_headers(secret=secret, webhook_id="m", timestamp=plus3, body=BODY)
    assert a == b
    naive = signed_headers(secret=secret, webhook_id="m", timestamp=utc.replace(tzinfo=None), body=BODY)
    assert naive == a  # naive means UTC


def test_unpadded_and_unprefixed_secrets_are_equivalent() -> None:
    raw = base64.b64encode(b"k" * 25).decode()
    assert raw.endswith("=")

    def sign(secret: str) -> dict[str, str]:
        return signed_headers(
            secret=secret, webhook_id="m", timestamp=datetime(2024, 1, 1, tzinfo=UTC), body=BODY
        )

    assert sign("whsec_" + raw) == sign("whsec_" + raw.rstrip("=")) == sign(raw)


@pytest.mark.parametrize("secret", ["whsec_", "", "whsec_not base64!!", "whsec_abc$def"])
def test_invalid_secret_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(ValueError) as info:
        signed_headers(secret=secret, webhook_id="m", timestamp=_now(), body=BODY)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(info.value)


@pytest.mark.parametrize("webhook_id", ["", "a b", "a\r\nx-evil: 1", "é"])
def test_invalid_webhook_id_is_refused(webhook_id: str) -> None:
    with pytest.raises(ValueError, match="webhook_id"):
        signed_headers(secret=new_webhook_secret(), webhook_id=webhook_id, timestamp=_now(), body=BODY)


def test_non_utf8_body_is_refused() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        signed_headers(secret=new_webhook_secret(), webhook_id="m", timestamp=_now(), body=b"\xff\xfe")
