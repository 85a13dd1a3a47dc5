"""BSG content to Google's AgentMessage (the mapping table), the tap look-up, and Google's limits
at accept time, each at its limit and one past it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from rcsgate.api import rcs_requests
from rcsgate.api.rcs_requests import SendRcsMessageRequest
from rcsgate.connectors.rbm import content as rbm
from rcsgate.connectors.rbm import protocol
from rcsgate.services.sending import content_json

MID = 42
PNG = "https://e.com/a.png"
LINK = {"type": "link", "text": "Open", "url": "https://e.com/offer"}
CALL = {"type": "call", "text": "Call us", "phone": "380971112233", "postback_data": "call-1"}
CARD: dict[str, Any] = {"title": "Title", "text": "Body", "media": {"url": PNG}, "suggestions": [LINK, CALL]}

OPEN_LINK = {
    "action": {"text": "Open", "postbackData": "rg1.42.0.0", "openUrlAction": {"url": "https://e.com/offer"}}
}
DIAL = {
    "action": {
        "text": "Call us",
        "postbackData": "rg1.42.0.1",
        "dialAction": {"phoneNumber": "+380971112233"},
    }
}
CARD_CONTENT = {
    "title": "Title",
    "description": "Body",
    "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": PNG}},
    "suggestions": [OPEN_LINK, DIAL],
}


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def card(i: int) -> dict[str, Any]:
    return {"text": f"card {i}", "suggestions": [dict(LINK, text=f"link {i}")]}


# --------------------------------------------------------------------------- mapping


def test_text() -> None:
    assert rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=None) == {"contentMessage": {"text": "Hi"}}


def test_ttl() -> None:
    assert rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=600) == {
        "contentMessage": {"text": "Hi"},
        "ttl": "600s",
    }
    assert rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=rbm.TTL_MAX_SECONDS)["ttl"] == "1296000s"
    assert rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=1)["ttl"] == "1s"


@pytest.mark.parametrize("ttl", [0, -5, rbm.TTL_MAX_SECONDS + 1, True])
def test_ttl_out_of_range(ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=ttl)


def test_traffic_type_only_when_given() -> None:
    assert "messageTrafficType" not in rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=60)
    message = rbm.agent_message(MID, {"text": "Hi"}, ttl_seconds=60, traffic_type="TRANSACTION")
    assert list(message) == ["contentMessage", "messageTrafficType", "ttl"]
    assert message["messageTrafficType"] == "TRANSACTION"


def test_single_card_with_everything() -> None:
    assert rbm.agent_message(MID, {"cards": [CARD]}, ttl_seconds=None) == {
        "contentMessage": {
            "richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": CARD_CONTENT}}
        }
    }


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"media": {"url": PNG}}, {"media": {"height": "MEDIUM", "contentInfo": {"fileUrl": PNG}}}),
        ({"text": "only text"}, {"description": "only text"}),
        ({"title": "T", "text": "B"}, {"title": "T", "description": "B"}),
        ({"title": "T", "media": {"url": PNG}}, {"title": "T", "media": CARD_CONTENT["media"]}),
        # null is "not given", as the official client sends it
        (
            {"title": None, "text": "B", "media": None, "suggestions": None},
            {"description": "B"},
        ),
        ({"text": "B", "suggestions": []}, {"description": "B"}),
        ({"text": "B", "media": {"url": None}}, {"description": "B"}),
    ],
)
def test_single_card_omits_absent_fields(stored: dict[str, Any], expected: dict[str, Any]) -> None:
    message = rbm.agent_message(MID, {"cards": [stored]}, ttl_seconds=None)
    assert message["contentMessage"]["richCard"]["standaloneCard"]["cardContent"] == expected


@pytest.mark.parametrize("count", [2, 10])
def test_carousel(count: int) -> None:
    message = rbm.agent_message(MID, {"cards": [card(i) for i in range(count)]}, ttl_seconds=None)
    carousel = message["contentMessage"]["richCard"]["carouselCard"]
    assert carousel["cardWidth"] == "MEDIUM"
    assert carousel["cardContents"] == [
        {
            "description": f"card {i}",
            "suggestions": [
                {
                    "action": {
                        "text": f"link {i}",
                        "postbackData": f"rg1.42.{i}.0",
                        "openUrlAction": {"url": "https://e.com/offer"},
                    }
                }
            ],
        }
        for i in range(count)
    ]
    assert "standaloneCard" not in message["contentMessage"]["richCard"]


def test_suggestion_type_is_inferred_when_absent() -> None:
    stored = {"cards": [{"text": "B", "suggestions": [{"text": "Open", "url": "https://e.com/offer"}]}]}
    message = rbm.agent_message(MID, stored, ttl_seconds=None)
    assert message["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]["suggestions"] == [
        OPEN_LINK
    ]
    call = {"cards": [{"text": "B", "suggestions": [{"text": "Call us", "phone": "380971112233"}]}]}
    dial = rbm.agent_message(MID, call, ttl_seconds=None)["contentMessage"]["richCard"]["standaloneCard"]
    assert dial["cardContent"]["suggestions"][0]["action"]["dialAction"] == {"phoneNumber": "+380971112233"}


def test_dial_number_gets_exactly_one_plus() -> None:
    stored = {"cards": [{"text": "B", "suggestions": [{"text": "c", "phone": "+380971112233"}]}]}
    message = rbm.agent_message(MID, stored, ttl_seconds=None)
    action = message["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]["suggestions"][0][
        "action"
    ]
    assert action["dialAction"] == {"phoneNumber": "+380971112233"}


def test_text_chips_use_card_zero() -> None:
    stored = {"text": "Hi", "suggestions": [LINK, CALL]}
    assert rbm.agent_message(MID, stored, ttl_seconds=None) == {
        "contentMessage": {"text": "Hi", "suggestions": [OPEN_LINK, DIAL]}
    }


def test_postback_round_trip() -> None:
    cards = [dict(CARD), *(dict(CARD, title=f"t{i}") for i in range(1, 5))]
    message = rbm.agent_message(MID, {"cards": cards}, ttl_seconds=None)
    found = []
    for card_index, content in enumerate(
        message["contentMessage"]["richCard"]["carouselCard"]["cardContents"]
    ):
        for suggestion_index, suggestion in enumerate(content["suggestions"]):
            parsed = protocol.parse_postback(suggestion["action"]["postbackData"])
            assert parsed == (MID, card_index, suggestion_index)
            found.append(rbm.suggestion_of({"cards": cards}, card_index, suggestion_index))
    assert found == [("Open", None), ("Call us", "call-1")] * 5


def test_no_nulls_and_deterministic() -> None:
    stored = {"cards": [CARD, {"title": None, "text": "x", "media": None}, {"media": {"url": PNG}}]}
    first = rbm.agent_message(MID, stored, ttl_seconds=30)
    assert all(node is not None for node in walk(first))
    again = rbm.agent_message(MID, copy.deepcopy(stored), ttl_seconds=30)
    assert json.dumps(first) == json.dumps(again)


def test_input_is_not_modified() -> None:
    stored = {"cards": [CARD, card(1)]}
    before = copy.deepcopy(stored)
    rbm.agent_message(MID, stored, ttl_seconds=30)
    rbm.limit_errors(stored)
    assert stored == before


def test_stored_shape_from_the_api() -> None:
    """What the API stores (request -> domain -> content_json -> JSON text) maps as expected."""
    request = SendRcsMessageRequest.model_validate(
        {
            "phone": {"number": "380661231231"},
            "sender": "agent",
            "options": {
                "cards": [
                    {
                        "title": "Title",
                        "text": "Body",
                        "media": {"url": PNG},
                        "suggestions": [
                            {"text": "Open", "url": "https://e.com/offer"},
                            {
                                "type": "call",
                                "text": "Call us",
                                "phone": "380971112233",
                                "postback_data": "call-1",
                            },
                        ],
                    }
                ]
            },
        }
    )
    stored = json.loads(json.dumps(content_json(request.to_domain().content)))
    message = rbm.agent_message(MID, stored, ttl_seconds=None)
    assert message["contentMessage"]["richCard"]["standaloneCard"]["cardContent"] == CARD_CONTENT
    assert rbm.suggestion_of(stored, 0, 1) == ("Call us", "call-1")
    assert rbm.limit_errors(stored) == {}


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"text": None, "cards": None},
        {"cards": []},
        {"text": "a", "cards": [CARD]},
        {"text": 5},
        {"cards": "x"},
        {"cards": ["x"]},
        {"cards": [{"text": "B", "suggestions": [{"text": "no action"}]}]},
        {"cards": [{"text": "B", "suggestions": [{"url": "https://e.com"}]}]},
        {"cards": [{"text": 5}]},
        {"cards": [{"text": "B", "media": "https://e.com/a.png"}]},
    ],
)
def test_malformed_content(stored: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RCS content"):
        rbm.agent_message(MID, stored, ttl_seconds=None)


@pytest.mark.parametrize("message_id", [0, -1, True])
def test_bad_message_id(message_id: int) -> None:
    with pytest.raises(ValueError, match="message id"):
        rbm.agent_message(message_id, {"text": "Hi"}, ttl_seconds=None)


# --------------------------------------------------------------------------- taps


def test_suggestion_of() -> None:
    stored = {"cards": [CARD, card(1)]}
    assert rbm.suggestion_of(stored, 0, 0) == ("Open", None)
    assert rbm.suggestion_of(stored, 0, 1) == ("Call us", "call-1")
    assert rbm.suggestion_of(stored, 1, 0) == ("link 1", None)
    for card_index, suggestion_index in [(0, 2), (1, 1), (2, 0), (-1, 0), (0, -1), (99, 99)]:
        assert rbm.suggestion_of(stored, card_index, suggestion_index) is None


def test_suggestion_of_text_and_odd_content() -> None:
    assert rbm.suggestion_of({"text": "Hi"}, 0, 0) is None
    chips = {"text": "Hi", "suggestions": [LINK, CALL]}
    assert rbm.suggestion_of(chips, 0, 1) == ("Call us", "call-1")
    assert rbm.suggestion_of(chips, 1, 0) is None
    assert rbm.suggestion_of({"cards": [{"text": "B", "suggestions": None}]}, 0, 0) is None
    assert rbm.suggestion_of({"cards": [{"text": "B", "suggestions": [{"text": None}]}]}, 0, 0) is None
    with_null = {"cards": [{"text": "B", "suggestions": [dict(LINK, postback_data=None)]}]}
    assert rbm.suggestion_of(with_null, 0, 0) == ("Open", None)
    assert rbm.suggestion_of({}, 0, 0) is None
    assert rbm.suggestion_of({"cards": "x"}, 0, 0) is None


# --------------------------------------------------------------------------- limits


def max_chars(path: str, limit: int) -> dict[str, list[str]]:
    """The API's own wording, so the two cannot drift apart."""
    attribute = path.replace("_", " ")
    return {path: [rcs_requests.MAX_CHARS.format(attribute=attribute, max=limit)]}


def max_items(path: str, limit: int) -> dict[str, list[str]]:
    return {path: [rcs_requests.MAX_ITEMS.format(attribute=path, max=limit)]}


def with_card(**fields: Any) -> dict[str, Any]:
    return {"cards": [dict(CARD, **fields)]}


def test_limits_constants() -> None:
    assert (rbm.TEXT_MAX, rbm.SUGGESTION_TEXT_MAX, rbm.POSTBACK_DATA_MAX) == (3072, 25, 2048)
    assert (rbm.SUGGESTIONS_PER_CARD_MAX, rbm.CHIPS_MAX) == (4, 11)
    assert (rbm.CAROUSEL_MIN_CARDS, rbm.CAROUSEL_MAX_CARDS) == (2, 10)
    assert (rbm.CARD_TITLE_MAX, rbm.CARD_DESCRIPTION_MAX, rbm.OPEN_URL_MAX) == (200, 2000, 2048)
    assert rbm.AGENT_MESSAGE_MAX_BYTES == 250_000


def test_text_limit() -> None:
    assert rbm.limit_errors({"text": "a" * 3072}) == {}
    assert rbm.limit_errors({"text": "\U0001f600" * 3072}) == {}
    assert rbm.limit_errors({"text": "a" * 3073}) == max_chars("options.text", 3072)


def test_card_title_limit() -> None:
    assert rbm.limit_errors(with_card(title="t" * 200)) == {}
    assert rbm.limit_errors(with_card(title="t" * 201)) == max_chars("options.cards.0.title", 200)


def test_card_description_limit() -> None:
    assert rbm.limit_errors(with_card(text="d" * 2000)) == {}
    assert rbm.limit_errors(with_card(text="d" * 2001)) == max_chars("options.cards.0.text", 2000)


def test_suggestion_label_limit() -> None:
    assert rbm.limit_errors(with_card(suggestions=[dict(LINK, text="l" * 25)])) == {}
    errors = rbm.limit_errors(with_card(suggestions=[LINK, dict(CALL, text="l" * 26)]))
    assert errors == max_chars("options.cards.0.suggestions.1.text", 25)


def test_suggestions_per_card_limit() -> None:
    assert rbm.limit_errors(with_card(suggestions=[LINK] * 4)) == {}
    assert rbm.limit_errors(with_card(suggestions=[LINK] * 5)) == max_items("options.cards.0.suggestions", 4)


def test_chips_limit() -> None:
    assert rbm.limit_errors({"text": "Hi", "suggestions": [LINK] * 11}) == {}
    assert rbm.limit_errors({"text": "Hi", "suggestions": [LINK] * 12}) == max_items(
        "options.suggestions", 11
    )
    assert rbm.limit_errors({"text": "Hi", "suggestions": [dict(LINK, text="l" * 26)]}) == max_chars(
        "options.suggestions.0.text", 25
    )


def test_carousel_limit() -> None:
    assert rbm.limit_errors({"cards": [card(i) for i in range(10)]}) == {}
    assert rbm.limit_errors({"cards": [card(i) for i in range(11)]}) == max_items("options.cards", 10)
    # One card is a standalone card, never a one-card carousel.
    assert rbm.limit_errors({"cards": [card(0)]}) == {}


def test_open_url_limit() -> None:
    at_limit = "https://e.com/" + "u" * (2048 - len("https://e.com/"))
    assert rbm.limit_errors(with_card(suggestions=[dict(LINK, url=at_limit)])) == {}
    errors = rbm.limit_errors(with_card(suggestions=[dict(LINK, url=at_limit + "u")]))
    assert errors == max_chars("options.cards.0.suggestions.0.url", 2048)


@pytest.mark.parametrize("url", [PNG, "HTTPS://E.COM/A.PNG", "https://e.com/media/123"])
def test_media_https_passes(url: str) -> None:
    assert rbm.limit_errors(with_card(media={"url": url})) == {}


@pytest.mark.parametrize(
    "url", ["http://e.com/a.png", "HTTP://E.COM/a.png", "ftp://e.com/a.png", "https:///a.png"]
)
def test_media_must_be_https(url: str) -> None:
    path = "options.cards.0.media.url"
    assert rbm.limit_errors(with_card(media={"url": url})) == {
        path: [f"The {path} must start with one of the following: https://."]
    }


def test_media_https_in_a_carousel_names_the_card() -> None:
    stored = {"cards": [card(0), dict(card(1), media={"url": "http://e.com/a.png"})]}
    assert list(rbm.limit_errors(stored)) == ["options.cards.1.media.url"]


def test_our_postback_data_always_fits() -> None:
    longest = protocol.postback((1 << 62) - 1, 99, 99)
    assert len(longest) <= rbm.POSTBACK_DATA_MAX


@pytest.mark.parametrize(("length", "fails"), [(2048, False), (2049, True)])
def test_postback_data_limit(monkeypatch: pytest.MonkeyPatch, length: int, fails: bool) -> None:
    monkeypatch.setattr(protocol, "postback", lambda message_id, card, suggestion: "p" * length)
    errors = rbm.limit_errors(with_card(suggestions=[LINK]))
    path = "options.cards.0.suggestions.0.postback_data"
    assert errors == (max_chars(path, 2048) if fails else {})
    assert not fails or errors[path] == [
        "The options.cards.0.suggestions.0.postback data may not be greater than 2048 characters."
    ]


def worst_size(stored: dict[str, Any]) -> int:
    worst = rbm.agent_message(
        (1 << 62) - 1, stored, ttl_seconds=rbm.TTL_MAX_SECONDS, traffic_type="ACKNOWLEDGEMENT"
    )
    return rbm.encoded_size(worst)


def test_whole_message_limit_at_and_past(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = {"cards": [CARD, card(1)]}
    monkeypatch.setattr(rbm, "AGENT_MESSAGE_MAX_BYTES", worst_size(stored))
    assert rbm.limit_errors(stored) == {}
    monkeypatch.setattr(rbm, "AGENT_MESSAGE_MAX_BYTES", worst_size(stored) - 1)
    assert "options" in rbm.limit_errors(stored)


def test_whole_message_limit() -> None:
    # Every Google field limit at its maximum, in 4-byte characters: still under 250 KB.
    emoji = "\U0001f600"
    long_url = "https://e.com/" + "u" * (2048 - len("https://e.com/"))
    biggest = {
        "title": emoji * 200,
        "text": emoji * 2000,
        "media": {"url": long_url},
        "suggestions": [{"text": emoji * 25, "url": long_url}] * 4,
    }
    assert rbm.limit_errors({"cards": [biggest] * 10}) == {}
    assert worst_size({"cards": [biggest] * 10}) <= rbm.AGENT_MESSAGE_MAX_BYTES
    # Past the carousel limit it is also too big as a whole.
    errors = rbm.limit_errors({"cards": [biggest] * 13})
    assert errors["options"] == ["The options may not be greater than 250 kilobytes."]
    assert errors["options.cards"] == max_items("options.cards", 10)["options.cards"]


def test_size_counts_utf8_bytes() -> None:
    assert rbm.encoded_size({"a": "\u0436"}) == len('{"a":"\u0436"}'.encode())
    assert rbm.encoded_size({"a": "\U0001f600"}) == 12


def test_bsg_valid_content_passes() -> None:
    """The largest content BSG's default rules accept breaks none of Google's limits (but http media)."""
    url = "https://e.com/" + "u" * (1000 - len("https://e.com/") - 4) + ".png"
    suggestion = {"type": "link", "text": "s" * 25, "url": url, "postback_data": "p" * 25}
    big = {
        "title": "t" * 200,
        "text": "\U0001f600" * 500,
        "media": {"url": url},
        "suggestions": [suggestion] * 4,
    }
    assert rbm.limit_errors({"cards": [big] * 10}) == {}
    assert rbm.limit_errors({"text": "x" * 160}) == {}


def test_several_errors_at_once() -> None:
    stored = {
        "cards": [
            {"title": "t" * 201, "text": "d" * 2001, "media": {"url": "http://e.com/a.png"}},
            {"text": "ok", "suggestions": [dict(LINK, text="l" * 26)] * 5},
        ]
    }
    assert list(rbm.limit_errors(stored)) == [
        "options.cards.0.title",
        "options.cards.0.text",
        "options.cards.0.media.url",
        "options.cards.1.suggestions",
        *(f"options.cards.1.suggestions.{i}.text" for i in range(5)),
    ]


def test_limit_errors_rejects_malformed_content() -> None:
    with pytest.raises(ValueError, match="RCS content"):
        rbm.limit_errors({})
