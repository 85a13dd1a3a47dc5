"""The official client (bsg-sdk) against a live server: every answer must parse in its models."""

from __future__ import annotations

import bsg_api
import pytest
from bsg_api.exceptions import UnauthorizedException

from conftest import LiveServer
from rcsgate.services import senders, tariffs


def sdk_client(server: LiveServer, token: str | None = None) -> bsg_api.ApiClient:
    config = bsg_api.Configuration(host=server.base_url)
    if token:
        config.access_token = token
    return bsg_api.ApiClient(config)


def test_readme_flow_login_then_balance(server: LiveServer) -> None:
    account_id, key = server.new_account(balance="100")
    server.call(lambda db: tariffs.create_tariff(db, server.clock, code=1, name="Default", is_default=True))
    server.call(lambda db: senders.create_sender(db, server.clock, account_id=account_id, name="DemoSMS"))
    server.call(
        lambda db: senders.create_agent(
            db, server.clock, account_id=account_id, name="demo_agent", country="UA"
        )
    )

    with sdk_client(server) as client:
        token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=key))
    assert isinstance(token, bsg_api.TokenSchema) and token.bearer

    with sdk_client(server, token.bearer) as client:
        balance = bsg_api.BalanceApi(client).account_balance()
        assert balance.data is not None
        assert balance.data.balance == 100
        assert balance.data.currency == "EUR"
        assert balance.data.credit == 0

        refreshed = bsg_api.AuthApi(client).refresh_token()
        assert refreshed.bearer and refreshed.bearer != token.bearer

        tariff_page = bsg_api.BalanceApi(client).account_tariffs(page_offset=0, page_limit=15)
        assert tariff_page.total == 1
        assert tariff_page.data is not None and tariff_page.data[0].code == 1
        assert tariff_page.data[0].is_default is True

        sms = bsg_api.SendersApi(client).senders(type="sms")
        assert sms.total == 1 and sms.data is not None
        assert sms.data[0].sender == "DemoSMS" and sms.data[0].status == "active"
        assert sms.data[0].created_at is not None and sms.data[0].created_at.year == 2026

        rcs = bsg_api.SendersApi(client).senders(type="rcs")
        assert rcs.data is not None and rcs.data[0].sender == "demo_agent" and rcs.data[0].country == "UA"


def test_sdk_sees_401_for_a_bad_key(server: LiveServer) -> None:
    with sdk_client(server) as client, pytest.raises(UnauthorizedException):
        bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key="live_" + "Z" * 32))
