"""Campaigns through the official client: the issue's scenario of three contacts in two overlapping
lists, a carousel with an SMS alternative to both lists, and every campaign call parsing in its models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import bsg_api
import pytest
from bsg_api.exceptions import ApiException

from conftest import LiveServer, eventually
from rcsgate.services import accounts
from rcsgate.services.demo import ensure_demo

CAROUSEL_PRICE = Decimal("0.05")
SMS_PRICE = Decimal("0.025")


def card(text: str) -> bsg_api.Card:
    return bsg_api.Card(
        title="Sale",
        text=text,
        media=bsg_api.Media(url="https://cdn.example.com/sale.png"),
        suggestions=[
            bsg_api.Suggestion(bsg_api.SuggestionLink(type="link", text="Open", url="https://example.com/s")),
        ],
    )


@pytest.fixture
def sdk(server_factory: Callable[..., LiveServer]) -> tuple[LiveServer, bsg_api.ApiClient, int]:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    config = bsg_api.Configuration(host=srv.base_url)
    with bsg_api.ApiClient(config) as client:
        config.access_token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=demo.api_key)).bearer
    return srv, bsg_api.ApiClient(config), demo.account_id


def balance(client: bsg_api.ApiClient) -> Decimal:
    data = bsg_api.BalanceApi(client).account_balance().data
    assert data is not None and data.balance is not None
    return Decimal(str(data.balance))


def test_groups_campaign_with_overlap_reaches_done(sdk) -> None:  # type: ignore[no-untyped-def]
    srv, client, _ = sdk
    contacts, lists = bsg_api.ContactApi(client), bsg_api.ContactListApi(client)
    first = lists.contact_list_create(bsg_api.ContactListCreateRequest(name="Customers")).data
    second = lists.contact_list_create(bsg_api.ContactListCreateRequest(name="Newsletter")).data
    assert first is not None and second is not None and first.id and second.id
    ids = []
    for phone in (380661230001, 380661230002, 380661239990):
        made = contacts.contact_create(bsg_api.StoreContact(phone=phone)).data
        assert made is not None and made.id
        ids.append(made.id)
    lists.contact_list_attach(bsg_api.ContactListAttachRequest(contacts=ids[:2], groups=[first.id]))
    lists.contact_list_attach(bsg_api.ContactListAttachRequest(contacts=ids[1:], groups=[second.id]))
    before = balance(client)

    campaign = (
        bsg_api.CampaignRCSApi(client)
        .rcs_send_groups(
            bsg_api.SendRcsCampaignGroups(
                groups=[first.id, second.id],
                sender="demo_agent",
                options=bsg_api.Options(bsg_api.Cards(cards=[card("one"), card("two")])),
                alternative_channel=bsg_api.SendRcsCampaignGroupsAlternativeChannel(
                    bsg_api.AlternativeChannel(sms=bsg_api.SmsAltChannel(text="Fallback", sender="DemoSMS"))
                ),
            )
        )
        .data
    )
    assert campaign is not None and campaign.id is not None
    assert campaign.status == bsg_api.CampaignStatus.CREATION
    assert campaign.name == f"RCS api campaign / {campaign.created_at:%Y-%m-%d %H:%M:%S}"
    assert campaign.calculated_price == pytest.approx(float(3 * CAROUSEL_PRICE))

    api = bsg_api.CampaignApi(client)

    def finished() -> bsg_api.DetailCampaignSchema | None:
        srv.clock.advance(1)
        detail = api.campaign_details(campaign.id).data
        assert detail is not None and detail.statistics is not None
        settled = detail.status == bsg_api.CampaignStatus.DONE and detail.statistics.read == 2
        sms = (
            detail.alternative_channels.sms.statistics
            if detail.alternative_channels and detail.alternative_channels.sms
            else None
        )
        return detail if settled and sms is not None and sms.delivered == 1 else None

    detail = eventually(finished, what="campaign done", timeout=15)
    assert detail.total_phones == 3 and detail.total_messages == 4
    assert detail.statistics is not None and detail.statistics.not_rcs_user == 1
    messages = bsg_api.MessagesSMSApi(client).get_messages(filter_campaign_id=campaign.id, page_limit=15)
    rows = messages.data or []
    assert sorted((m.type.value if m.type else "", m.status.value if m.status else "") for m in rows) == [
        ("rcs", "read"),
        ("rcs", "read"),
        ("rcs", "undelivered"),
        ("sms", "delivered"),
    ]
    charged = 2 * CAROUSEL_PRICE + SMS_PRICE
    assert Decimal(detail.total_price or "0") == charged
    assert balance(client) == before - charged
    short = api.campaign(campaign.id).data
    assert short is not None and short.statistics is not None and short.statistics.delivered == 2

    listing = api.campaigns(page_limit=30, sort="date", way=bsg_api.SortWay.DESC, filter_type="rcs")
    assert listing.meta is not None and listing.meta.page is not None and listing.meta.page.total == 1
    assert listing.data is not None and listing.data[0].id == campaign.id

    with pytest.raises(ApiException) as err:
        api.campaign_stop(campaign.id)
    assert err.value.status == 422


def test_phones_campaign_scheduled_then_stopped(sdk) -> None:  # type: ignore[no-untyped-def]
    srv, client, account_id = sdk
    srv.call(
        lambda db: accounts.set_callback_url(db, account_id=account_id, url="https://hooks.example.com/rcs")
    )
    campaign = (
        bsg_api.CampaignRCSApi(client)
        .rcs_send(
            bsg_api.SendRcsCampaign(
                phones=[
                    bsg_api.Phone(number="380661230001", reference_id="s1"),
                    bsg_api.Phone(number="380661230002"),
                ],
                sender="demo_agent",
                options=bsg_api.Options(bsg_api.Text(text="Later")),
                start_at=datetime(2026, 1, 2, 9, 0, 0),
            )
        )
        .data
    )
    assert campaign is not None and campaign.id is not None
    assert campaign.status == bsg_api.CampaignStatus.SCHEDULED
    assert campaign.start_at == datetime(2026, 1, 2, 9, 0, 0)
    stopped = bsg_api.CampaignApi(client).campaign_stop(campaign.id).data
    assert stopped is not None and stopped.status == bsg_api.CampaignStatus.STOPPED and stopped.finished_at
    detail = bsg_api.CampaignApi(client).campaign_details(campaign.id).data
    assert detail is not None and detail.statistics is not None and detail.statistics.failed == 2
    assert detail.total_price == "0.0000000"
