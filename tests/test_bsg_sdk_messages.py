"""The official client sends RCS messages and reads their status: every answer parses in its models."""

from __future__ import annotations

from collections.abc import Callable

import bsg_api
import pytest

from conftest import LiveServer, eventually
from rcsgate.services.demo import ensure_demo


def sdk_card(title: str | None = None) -> bsg_api.Card:
    return bsg_api.Card(
        title=title,
        text="Card text",
        media=bsg_api.Media(url="https://cdn.example.com/sale.png"),
        suggestions=[
            bsg_api.Suggestion(
                bsg_api.SuggestionLink(
                    type="link", text="Open", url="https://example.com/s", postback_data="open"
                )
            ),
            bsg_api.Suggestion(bsg_api.SuggestionCall(type="call", text="Call", phone="380971112233")),
        ],
    )


@pytest.fixture
def sdk(server_factory: Callable[..., LiveServer]) -> tuple[LiveServer, bsg_api.ApiClient]:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    config = bsg_api.Configuration(host=srv.base_url)
    with bsg_api.ApiClient(config) as client:
        config.access_token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=demo.api_key)).bearer
    return srv, bsg_api.ApiClient(config)


@pytest.mark.parametrize("suffix", ["1231", "9990", "9991", "9992", "9993", "9994", "9995", "9996", "9997"])
def test_every_outcome_parses_in_the_sdk_models(sdk, suffix: str) -> None:  # type: ignore[no-untyped-def]
    srv, client = sdk
    phone = f"38066123{suffix}"
    message = bsg_api.RcsMessage(
        phone=bsg_api.Phone(number=phone, reference_id=f"sdk{suffix}"),
        sender="demo_agent",
        options=bsg_api.Options(bsg_api.Cards(cards=[sdk_card("One"), sdk_card()])),
        alternative_channel=bsg_api.AlternativeChannel(
            sms=bsg_api.SmsAltChannel(text="Fallback", sender="DemoSMS")
        ),
        validity_seconds=60,
    )
    sent = bsg_api.MessageRCSApi(client).rcs_single(message)
    assert isinstance(sent, bsg_api.MessageResponse) and sent.data is not None
    assert sent.data.status == bsg_api.MessageStatus.ACCEPTED
    assert sent.data.phone == int(phone) and sent.data.reference_id == f"sdk{suffix}"
    assert sent.data.amount is not None and sent.data.amount.value == "0.0500000"
    messages_api = bsg_api.MessagesSMSApi(client)

    def settled() -> list[bsg_api.MessageApiSchema] | None:
        srv.clock.advance(2)
        page = messages_api.get_messages(filter_reference_id=f"sdk{suffix}", page_limit=15)
        assert page.meta is not None and page.meta.page is not None
        data = page.data or []
        final = {"read", "delivered", "undelivered", "failed", "expired"}
        done = data and all(m.status is not None and m.status.value in final for m in data)
        fallback_pending = (
            data and data[0].status is not None and data[0].status.value in {"undelivered", "expired"}
        )
        return data if done and (not fallback_pending or len(data) == 2) else None

    data = eventually(settled, what=f"outcome of {suffix}", timeout=10)
    rcs = data[0]
    assert rcs.type == bsg_api.MessageType.RCS and rcs.country == "UA"
    assert rcs.rcs_options is not None and rcs.alternative_channels is not None
    if len(data) == 2:
        assert data[1].type == bsg_api.MessageType.SMS and data[1].text == "Fallback" and data[1].parts == 1
    expected = {
        "1231": "read",
        "9990": "undelivered",
        "9991": "undelivered",
        "9992": "expired",
        "9993": "delivered",
        "9994": "read",
        "9995": "failed",
        "9996": "undelivered",
        "9997": "read",
    }[suffix]
    assert rcs.status is not None and rcs.status.value == expected


def test_get_messages_filters_and_paging_through_the_sdk(sdk) -> None:  # type: ignore[no-untyped-def]
    srv, client = sdk
    api = bsg_api.MessageRCSApi(client)
    ids = []
    for i in range(3):
        message = bsg_api.RcsMessage(
            phone=bsg_api.Phone(number=f"38066123100{i}", reference_id=f"p{i}"),
            sender="demo_agent",
            options=bsg_api.Options(bsg_api.Text(text=f"Hello {i}")),
        )
        data = api.rcs_single(message).data
        assert data is not None and data.id is not None
        ids.append(data.id)
    messages_api = bsg_api.MessagesSMSApi(client)
    page = messages_api.get_messages(page_limit=15, sort="id", way=bsg_api.SortWay.DESC)
    assert [m.id for m in page.data or []] == ids[::-1]
    assert page.meta is not None and page.meta.page is not None and page.meta.page.total == 3
    one = messages_api.get_messages(filter_id=ids[1])
    assert [m.reference_id for m in one.data or []] == ["p1"]
    window = messages_api.get_messages(
        filter_from=srv.clock.now().replace(tzinfo=None), filter_to=srv.clock.now().replace(tzinfo=None)
    )
    assert window.meta is not None and window.meta.page is not None and window.meta.page.total == 3
