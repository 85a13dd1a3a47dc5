"""An SMPP connector's settings as the operator gives them (`rcsgate connectors add-smpp`), checked and
split into what may be shown (``config``) and what must not (``secrets``: the password)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from rcsgate.connectors.rbm.protocol import fingerprint
from rcsgate.connectors.smpp.encoding import LongMessages

ReceiptIds = Literal["same", "hex-to-dec", "dec-to-hex"]
ErrorClass = Literal["transient", "permanent"]

LONG_MESSAGES: Final = ("udh", "sar", "payload")
RECEIPT_IDS: Final = ("same", "hex-to-dec", "dec-to-hex")
_HOST = re.compile(r"^[A-Za-z0-9.:\-\[\]]{1,253}$")


@dataclass(frozen=True, slots=True)
class SmppSettings:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10
    rate: float | None = None
    # None: by the sender (alphanumeric TON 5 / NPI 0, digits TON 1 / NPI 1).
    source_ton: int | None = None
    source_npi: int | None = None
    long_messages: LongMessages = "udh"
    # How the ids in submit_sm_resp and in receipts are written, when an SMSC mixes bases.
    receipt_ids: ReceiptIds = "same"
    # command_status → class, where a carrier's codes mean something else than the spec's.
    error_classes: dict[int, ErrorClass] = field(default_factory=dict)
    enquire_link_seconds: float = 30.0
    response_timeout: float = 30.0

    @classmethod
    def of(cls, config: dict[str, Any], secrets: dict[str, Any]) -> SmppSettings:
        return cls(
            host=config["host"],
            port=int(config["port"]),
            system_id=config["system_id"],
            password=secrets.get("password", ""),
            system_type=config.get("system_type", ""),
            window=int(config.get("window", 10)),
            rate=config.get("rate"),
            source_ton=config.get("source_ton"),
            source_npi=config.get("source_npi"),
            long_messages=config.get("long_messages", "udh"),
            receipt_ids=config.get("receipt_ids", "same"),
            error_classes={int(k, 0): v for k, v in (config.get("error_classes") or {}).items()},
            enquire_link_seconds=float(config.get("enquire_link_seconds", 30.0)),
            response_timeout=float(config.get("response_timeout", 30.0)),
        )


def parse_error_class(value: str) -> tuple[int, ErrorClass]:
    """``0x45=transient`` → (0x45, "transient")."""
    code, sep, kind = value.partition("=")
    try:
        number = int(code.strip(), 0)
    except ValueError:
        number = -1
    if not sep or not 0 < number <= 0xFFFFFFFF or kind.strip() not in ("transient", "permanent"):
        raise ValueError(f"--error-class takes CODE=transient|permanent (e.g. 0x45=transient), got {value!r}")
    return number, kind.strip()  # type: ignore[return-value]


def build(
    *,
    host: str,
    port: int,
    system_id: str,
    password: str,
    system_type: str = "",
    window: int = 10,
    rate: float | None = None,
    source_ton: int | None = None,
    source_npi: int | None = None,
    long_messages: str = "udh",
    receipt_ids: str = "same",
    error_classes: list[str] | None = None,
    enquire_link_seconds: float = 30.0,
    response_timeout: float = 30.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, secrets) for a new SMPP connector; ValueError naming the first unusable option."""
    if not _HOST.fullmatch(host):
        raise ValueError(f"--host must be a host name or IP address, got {host!r}")
    if not 1 <= port <= 65535:
        raise ValueError("--port must be 1-65535")
    if not 1 <= len(system_id) <= 15 or not system_id.isascii():
        raise ValueError("--system-id must be 1-15 ASCII characters (SMPP 3.4)")
    if len(password) > 8 or not password.isascii():
        raise ValueError("--password must be at most 8 ASCII characters (SMPP 3.4)")
    if len(system_type) > 12 or not system_type.isascii():
        raise ValueError("--system-type must be at most 12 ASCII characters (SMPP 3.4)")
    if not 1 <= window <= 1000:
        raise ValueError("--window must be 1-1000 outstanding submits")
    if rate is not None and not 0 < rate <= 100_000:
        raise ValueError("--rate must be a number of PDUs per second above 0")
    for name, value, top in (("--source-ton", source_ton, 6), ("--source-npi", source_npi, 18)):
        if value is not None and not 0 <= value <= top:
            raise ValueError(f"{name} must be 0-{top}")
    if long_messages not in LONG_MESSAGES:
        raise ValueError(f"--long-messages must be one of {', '.join(LONG_MESSAGES)}")
    if receipt_ids not in RECEIPT_IDS:
        raise ValueError(f"--receipt-ids must be one of {', '.join(RECEIPT_IDS)}")
    if not 1 <= enquire_link_seconds <= 3600:
        raise ValueError("--enquire-link must be 1-3600 seconds")
    if not 0.5 <= response_timeout <= 600:
        raise ValueError("--response-timeout must be 0.5-600 seconds")
    classes = dict(parse_error_class(v) for v in error_classes or [])
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        "system_id": system_id,
        "system_type": system_type,
        "bind": "transceiver",
        "window": window,
        "rate": rate,
        "source_ton": source_ton,
        "source_npi": source_npi,
        "long_messages": long_messages,
        "receipt_ids": receipt_ids,
        "error_classes": {f"0x{code:02x}": kind for code, kind in sorted(classes.items())},
        "enquire_link_seconds": enquire_link_seconds,
        "response_timeout": response_timeout,
    }
    return config, {"password": password}


def shown(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """What `connectors show` prints: the settings, and the password only as a fingerprint."""
    return {**config, "password": fingerprint(str(secrets.get("password", "")))}
