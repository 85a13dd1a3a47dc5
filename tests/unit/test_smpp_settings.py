"""An SMPP connector's settings and source addressing: what the operator may give, what is shown."""

from __future__ import annotations

import pytest

from rcsgate.connectors.smpp.connector import source_address
from rcsgate.connectors.smpp.settings import SmppSettings, build, parse_error_class, shown


def _settings(**config: object) -> SmppSettings:
    base, secrets = build(host="smsc.example.net", port=2775, system_id="acme", password="pw")
    base.update(config)
    return SmppSettings.of(base, secrets)


def test_alphanumeric_senders_go_as_ton5_npi0_and_numbers_as_international() -> None:
    settings = _settings()
    assert source_address("DemoSMS", settings) == ("DemoSMS", 5, 0)
    assert source_address("+380661234567", settings) == ("380661234567", 1, 1)
    assert source_address("12345", settings) == ("12345", 1, 1)
    forced = _settings(source_ton=0, source_npi=9)
    assert source_address("DemoSMS", forced) == ("DemoSMS", 0, 9)


def test_defaults_and_overrides_survive_the_round_trip() -> None:
    config, secrets = build(
        host="10.0.0.5",
        port=2776,
        system_id="acme",
        password="pw",
        window=4,
        rate=25.5,
        long_messages="sar",
        receipt_ids="hex-to-dec",
        error_classes=["0x45=transient", "11=permanent"],
    )
    settings = SmppSettings.of(config, secrets)
    assert (settings.window, settings.rate, settings.long_messages) == (4, 25.5, "sar")
    assert settings.error_classes == {0x45: "transient", 0x0B: "permanent"}
    assert settings.receipt_ids == "hex-to-dec" and settings.password == "pw"
    view = shown(config, secrets)
    assert "pw" not in str(view.values()) and view["password"].startswith("sha256:")
    assert config["bind"] == "transceiver" and "password" not in config


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"port": 0}, "--port"),
        ({"system_id": "x" * 16}, "--system-id"),
        ({"password": "123456789"}, "--password"),
        ({"window": 0}, "--window"),
        ({"rate": 0}, "--rate"),
        ({"source_ton": 7}, "--source-ton"),
        ({"long_messages": "split"}, "--long-messages"),
        ({"receipt_ids": "hex"}, "--receipt-ids"),
        ({"host": "bad host"}, "--host"),
    ],
)
def test_unusable_settings_name_their_option(options: dict[str, object], names: str) -> None:
    base: dict[str, object] = {"host": "smsc", "port": 2775, "system_id": "acme", "password": "pw"}
    base.update(options)
    with pytest.raises(ValueError, match=names):
        build(**base)  # type: ignore[arg-type]


def test_error_class_syntax() -> None:
    assert parse_error_class("0x58=permanent") == (0x58, "permanent")
    for bad in ("0x58", "x=transient", "0x58=maybe", "0=transient"):
        with pytest.raises(ValueError, match="--error-class"):
            parse_error_class(bad)
