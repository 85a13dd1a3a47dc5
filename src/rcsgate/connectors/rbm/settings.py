"""An RBM connector's settings as the operator gives them (`rcsgate connectors add-rbm`), checked and
split into what may be shown (``config``) and what must not (``secrets``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rcsgate.connectors.rbm.protocol import REGIONS, fingerprint, new_salt, region_url

_KEY_FIELDS = ("client_email", "private_key", "token_uri")


@dataclass(frozen=True, slots=True)
class RbmSettings:
    agent_id: str
    api_url: str
    service_account: dict[str, Any]
    webhook_token: str | None
    salt: int

    @property
    def token_uri(self) -> str:
        return str(self.service_account["token_uri"])

    @classmethod
    def of(cls, config: dict[str, Any], secrets: dict[str, Any]) -> RbmSettings:
        return cls(
            agent_id=config["agent_id"],
            api_url=config["api_url"],
            service_account=secrets["service_account"],
            webhook_token=secrets.get("webhook_token"),
            salt=int(config["salt"]),
        )


def _http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def check_service_account(info: Any) -> dict[str, Any]:
    """The key file's content when google-auth can use it; ValueError naming what is missing."""
    if not isinstance(info, dict):
        raise ValueError("the service-account key file must hold a JSON object")
    if info.get("type", "service_account") != "service_account":
        raise ValueError(f"the key file is of type {info.get('type')!r}, not a service-account key")
    missing = [f for f in _KEY_FIELDS if not isinstance(info.get(f), str) or not info.get(f)]
    if missing:
        raise ValueError(f"the service-account key file lacks {', '.join(missing)}")
    _http_url(info["token_uri"], "the key file's token_uri")
    # Another universe makes google-auth sign its own tokens instead of asking token_uri.
    if info.get("universe_domain", "googleapis.com") != "googleapis.com":
        raise ValueError("the key file names a universe_domain other than googleapis.com")
    from google.oauth2 import service_account

    try:
        service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError) as exc:
        raise ValueError(f"google-auth cannot use the key file: {exc}") from None
    return info


def build(
    *,
    agent_id: str,
    service_account: Any,
    api_url: str | None,
    region: str,
    webhook_token: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, secrets) for a new RBM connector; ValueError for anything unusable."""
    agent_id = agent_id.strip()
    if not agent_id or len(agent_id) > 200:
        raise ValueError("--agent-id must be Google's agent id (1-200 characters)")
    if region not in REGIONS:
        raise ValueError(f"--region must be one of {', '.join(REGIONS)}")
    url = _http_url(api_url, "--api-url") if api_url else region_url(region)
    info = check_service_account(service_account)
    if webhook_token is not None and not (8 <= len(webhook_token) <= 200):
        raise ValueError("--webhook-token must be 8-200 characters (Google's client token)")
    config = {
        "agent_id": agent_id,
        "api_url": url,
        "region": None if api_url else region,
        "client_email": info["client_email"],
        "token_uri": info["token_uri"],
        "salt": new_salt(),
    }
    secrets: dict[str, Any] = {"service_account": info, "webhook_token": webhook_token}
    return config, secrets


def shown(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """What `connectors show` prints: the settings, and secrets only as fingerprints."""
    token = secrets.get("webhook_token")
    key = secrets.get("service_account") or {}
    return {
        "agent_id": config["agent_id"],
        "api_url": config["api_url"],
        "region": config.get("region"),
        "client_email": config["client_email"],
        "token_uri": config["token_uri"],
        "service_account_key": fingerprint(str(key.get("private_key", ""))),
        "webhook_token": fingerprint(token) if token else None,
    }
