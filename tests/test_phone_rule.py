"""One phone rule for every endpoint and the CLI (domain.phones.normalize_phone): 9-15 digits, country
code first (no leading 0); a leading "+" or a JSON integer accepted on input, the digits kept. And
one country rule (domain.iso_codes) for tariffs as for agents and the CLI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.phones import normalize_phone
from rcsgate.services import contacts, stoplist, tariffs
from rcsgate.services.demo import ensure_demo

# (value, its digits or None when it is no phone)
SPELLINGS: list[tuple[Any, str | None]] = [
    ("380661231231", "380661231231"),
    ("+380661231232", "380661231232"),
    (380661231233, "380661231233"),
    ("123456789", "123456789"),
    ("1" * 15, "1" * 15),
    ("0661231231", None),  # national: would be read as a Thai number
    ("00380661231231", None),  # the international call prefix left on
    ("++380661231231", None),
    ("38066123123", "38066123123"),
    ("12345678", None),
    ("1" * 16, None),
    (12345678, None),
    (10**15, None),
    ("380 661231231", None),
    (" 380661231231", None),
    ("380661231231\n", None),
    ("\uff13" * 12, None),  # fullwidth digits
    (True, None),
    (3.8e11, None),
]


@pytest.mark.parametrize(("value", "digits"), SPELLINGS)
def test_normalize_phone(value: Any, digits: str | None) -> None:
    assert normalize_phone(value) == digits


def _send_body(number: Any) -> dict[str, Any]:
    return {
        "phone": {"number": number},
        "sender": "demo_agent",
        "options": {"text": "Hi"},
        "add_to_contact_book": False,
        "check_stop_list": False,
    }


def _campaign_body(*numbers: Any) -> dict[str, Any]:
    return {
        "phones": [{"number": n} for n in numbers],
        "sender": "demo_agent",
        "options": {"text": "Hi"},
        "add_to_contact_book": False,
    }


@pytest.fixture
def api(server: LiveServer) -> httpx.Client:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    return httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)


def test_every_endpoint_applies_the_same_rule(api: httpx.Client) -> None:
    """Sends, campaigns, contacts and the stop list accept and refuse the same spellings; what they
    keep is the digits."""
    for index, (value, digits) in enumerate(SPELLINGS):
        if isinstance(value, float | bool):
            continue  # not a phone in any shape: covered by the unit test above
        answers = {
            "send": api.post("/api/messages/rcs/send", json=_send_body(value)),
            "campaign": api.post("/api/campaigns/rcs/send", json=_campaign_body(value)),
            "contact": api.post("/api/contacts", json={"phone": value}),
            "stoplist": api.post("/api/stoplist/attach", json={"phones": [value], "types": ["sms"]}),
        }
        accepted = {name: r.status_code < 300 for name, r in answers.items()}
        assert accepted == dict.fromkeys(answers, digits is not None), (
            index,
            value,
            {name: r.text for name, r in answers.items()},
        )
        if digits is None:
            assert "phone.number" in answers["send"].json()["errors"]
            continue
        assert answers["send"].json()["data"]["phone"] == int(digits)
        assert answers["contact"].json()["data"]["phone"] == int(digits)
        assert answers["stoplist"].json()["data"][0]["phone"] == int(digits)


def test_a_number_is_one_number_whatever_its_spelling(api: httpx.Client) -> None:
    # A campaign's uniqueness check compares the digits.
    r = api.post("/api/campaigns/rcs/send", json=_campaign_body("380661239001", "+380661239001"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == {"phones.1.number": ["The phones.1.number field has a duplicate value."]}
    r = api.post("/api/campaigns/rcs/send", json=_campaign_body(380661239002, "380661239002"))
    assert r.json()["errors"] == {"phones.1.number": ["The phones.1.number field has a duplicate value."]}
    # A send adds the digits to the contact book; the same number with a "+" is then a duplicate contact.
    body = {**_send_body("+380661239003"), "add_to_contact_book": True}
    assert api.post("/api/messages/rcs/send", json=body).status_code == 200
    r = api.post("/api/contacts", json={"phone": 380661239003})
    assert r.status_code == 422 and "phone" in r.json()["errors"], r.text
    listed = api.get("/api/contacts").json()["data"]
    assert [c["phone"] for c in listed] == [380661239003]


def test_the_cli_applies_the_rule(server: LiveServer) -> None:
    """`rcsgate contacts verify` and `rcsgate stoplist add/remove` (the services they call)."""
    account_id, _ = server.new_account()
    for bad in ("0661231231", "00380661231231", "++380661231231"):
        with pytest.raises(InvalidInput):
            server.call(lambda db, p=bad: contacts.verify(db, server.clock, account_id=account_id, phone=p))
        with pytest.raises(InvalidInput):
            server.call(
                lambda db, p=bad: stoplist.attach(
                    db, server.clock, account_id=account_id, phones=[p], list_type="rcs"
                )
            )
    server.call(lambda db: contacts.verify(db, server.clock, account_id=account_id, phone="+380661239004"))

    async def verified(db: Any) -> bool:
        async with db.read() as conn:
            return await contacts.is_verified(conn, account_id=account_id, phone="380661239004")

    assert server.call(verified)


def test_tariff_prices_take_iso_countries_only(server: LiveServer) -> None:
    server.call(lambda db: tariffs.create_tariff(db, server.clock, code=7, name="T"))
    for bad in ("XX", "ZZ", "U1", "UKR"):
        with pytest.raises(InvalidInput) as info:
            server.call(
                lambda db, c=bad: tariffs.set_price(
                    db, code=7, channel="rcs", kind="text", country=c, price="1"
                )
            )
        assert list(info.value.errors) == ["country"], bad
    price = server.call(
        lambda db: tariffs.set_price(db, code=7, channel="rcs", kind="text", country=" ua ", price="1")
    )
    assert price.country == "UA"
