"""Request models of the RCS send endpoints: every rule at its limits, the
official client's serialized payloads, the documentation pages' examples."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bsg_api
import pytest
from pydantic import BaseModel, ValidationError

from rcsgate.api.rcs_requests import (
    SendRcsCampaignGroupsRequest,
    SendRcsCampaignRequest,
    SendRcsMessageRequest,
    format_errors,
    validation_errors,
)
from rcsgate.domain import rcs_content as rc

# --------------------------------------------------------------------- helpers

MODELS: dict[str, type[BaseModel]] = {
    "single": SendRcsMessageRequest,
    "campaign": SendRcsCampaignRequest,
    "groups": SendRcsCampaignGroupsRequest,
}

_DELETE = object()


def errors_of(
    model: type[BaseModel], payload: Any, context: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    try:
        model.model_validate(payload, context=context)
    except ValidationError as exc:
        return validation_errors(exc)
    return {}


def replaced(payload: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of payload with the dotted path set to value (or removed: _DELETE)."""
    result = copy.deepcopy(payload)
    node: Any = result
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is _DELETE:
        node.pop(key, None)
    else:
        node[key] = copy.deepcopy(value)
    return result


def url(length: int, suffix: str = ".png", prefix: str = "https://e.com/") -> str:
    value = prefix + "a" * (length - len(prefix) - len(suffix)) + suffix
    assert len(value) == length
    return value


def numbers(count: int) -> list[dict[str, str]]:
    return [{"number": str(380_660_000_000 + i)} for i in range(count)]


SUGGESTION_LINK = {"text": "Go to site", "url": "https://domain.com/"}
SUGGESTION_CALL = {"text": "Call us", "phone": "380971112233", "postback_data": "call"}
CARD = {
    "title": "Title",
    "text": "Card text",
    "media": {"url": "https://domain.com/image.png"},
    "suggestions": [SUGGESTION_LINK, SUGGESTION_CALL],
}

BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "text": (
        "single",
        {
            "phone": {"number": "380661231231", "reference_id": "ref1"},
            "sender": "agent",
            "options": {"text": "Hi"},
        },
    ),
    "cards": (
        "single",
        {
            "phone": {"number": "380661231231"},
            "sender": "agent",
            "options": {"cards": [CARD]},
            "alternative_channel": {"sms": {"text": "Fallback", "sender": "MyShop"}},
        },
    ),
    "campaign": (
        "campaign",
        {
            "phones": [{"number": "380661231231", "reference_id": "r1"}, {"number": "380661231232"}],
            "sender": "agent",
            "options": {"text": "Hi"},
        },
    ),
    "groups": ("groups", {"groups": [1, 2], "sender": "agent", "options": {"text": "Hi"}}),
}


def test_bases_are_valid() -> None:
    for model_name, payload in BASES.values():
        assert errors_of(MODELS[model_name], payload) == {}


# ------------------------------------------------------------- rules at limits


@dataclass(frozen=True)
class Rule:
    base: str
    path: str
    ok: list[object]
    bad: list[object]
    message: str
    key: str | None = None  # the error's field when it is not `path`
    context: dict[str, Any] = field(default_factory=dict)


S = "suggestions"
C0 = "options.cards.0"
SMS = "alternative_channel.sms"

RULES = [
    # phone.number: 9-15 digits, country code first (no leading 0); a "+" or a JSON integer works too
    Rule(
        "text",
        "phone.number",
        ["380661231", "380661231231", "1" * 15, "+380661231231", 380661231231],
        [
            "1" * 8,
            "1" * 16,
            "0661231231",
            "00380661231231",
            "++380661231231",
            "38066123123a",
            "380 6612312",
            "\uff13" * 12,
            "380661231231\n",
            12345678,
        ],
        "The phone.number format is invalid.",
    ),
    Rule("text", "phone.number", [], [True, 3.8e11, [1]], "The phone.number must be a string."),
    Rule("text", "phone.number", [], [None, "", _DELETE], "The phone.number field is required."),
    Rule("text", "phone", [], ["380661231231", [1]], "The phone must be an array."),
    Rule("text", "phone", [], [None, _DELETE], "The phone field is required."),
    # phone.reference_id: up to 32 letters/digits, optional
    Rule(
        "text",
        "phone.reference_id",
        ["a" * 32, "AbC123", None, "", _DELETE],
        ["a" * 33],
        "The phone.reference id may not be greater than 32 characters.",
    ),
    Rule(
        "text",
        "phone.reference_id",
        [],
        ["abc-1", "ref id", "\u043a\u043b\u044e\u0447"],
        "The phone.reference id may only contain letters and numbers.",
    ),
    Rule("text", "phone.reference_id", [], [123], "The phone.reference id must be a string."),
    # sender: 1-40
    Rule("text", "sender", ["a", "a" * 40], ["a" * 41], "The sender may not be greater than 40 characters."),
    Rule("text", "sender", [], [None, "", _DELETE], "The sender field is required."),
    Rule("text", "sender", [], [5, ["a"]], "The sender must be a string."),
    # options.text: 1-160 UTF-16 code units
    Rule(
        "text",
        "options.text",
        ["a", "a" * 160, "\U0001f600" * 80, "\u0436" * 160],
        ["a" * 161, "\U0001f600" * 80 + "a", "\u0436" * 161],
        "The options.text may not be greater than 160 characters.",
    ),
    Rule("text", "options.text", [], [160], "The options.text must be a string."),
    # options: exactly one of text and cards
    Rule(
        "text",
        "options.cards",
        [None],
        [[CARD]],
        "The options may not contain both text and cards.",
        "options",
    ),
    Rule(
        "text",
        "options",
        [],
        [{}, {"text": ""}, {"text": None}],
        "The options must contain either text or cards.",
    ),
    Rule("text", "options", [], ["Hi", [1]], "The options must be an array."),
    Rule("text", "options", [], [None, _DELETE], "The options field is required."),
    # cards: 1..max (default 10)
    Rule(
        "cards",
        "options.cards",
        [[CARD] * 10],
        [[CARD] * 11],
        "The options.cards may not have more than 10 items.",
    ),
    Rule(
        "cards",
        "options.cards",
        [[CARD] * 5],
        [[CARD] * 6],
        "The options.cards may not have more than 5 items.",
        context={"max_cards": 5},
    ),
    Rule("cards", "options.cards", [[CARD]], [[]], "The options.cards must have at least 1 items."),
    Rule("cards", "options.cards", [], [CARD, "x"], "The options.cards must be an array."),
    Rule("cards", "options.cards.0", [], ["card"], "The options.cards.0 must be an array."),
    # card: title <= 200, text <= 1000 UTF-16, media or text
    Rule(
        "cards",
        f"{C0}.title",
        ["t" * 200, None, "", _DELETE],
        ["t" * 201],
        f"The {C0}.title may not be greater than 200 characters.",
    ),
    Rule(
        "cards",
        f"{C0}.text",
        ["a" * 1000, "\U0001f600" * 500],
        ["a" * 1001, "\U0001f600" * 500 + "a"],
        f"The {C0}.text may not be greater than 1000 characters.",
    ),
    Rule(
        "cards",
        f"{C0}",
        [{"text": "only text"}, {"media": {"url": "https://e.com/v.mp4"}}],
        [{"title": "no body"}, {"text": None, "media": None}, {}],
        f"The {C0}.text field is required when media is not present.",
        f"{C0}.text",
    ),
    # media.url: http(s), <= 1000, file type by extension
    Rule(
        "cards",
        f"{C0}.media.url",
        [
            url(1000),
            *(f"https://e.com/m.{ext}" for ext in rc.MEDIA_EXTENSIONS),
            "https://e.com/A.JPG",
            "HTTP://E.COM/a.Mp4",
            "https://e.com/a.mp4?x=1.exe#f.pdf",
            "https://e.com/media/123",
            "https://domain.com/",
            "https://e.com",
            "https://e.com/a%2Epng",
        ],
        [url(1001)],
        f"The {C0}.media.url may not be greater than 1000 characters.",
    ),
    Rule(
        "cards",
        f"{C0}.media.url",
        [],
        [
            "string",
            "ftp://e.com/a.png",
            "https:///a.png",
            "e.com/a.png",
            "https://e.com/a b.png",
            "https://e.com:x/a",
        ],
        f"The {C0}.media.url format is invalid.",
    ),
    Rule(
        "cards",
        f"{C0}.media.url",
        [],
        [
            "https://e.com/a.pdf",
            "https://e.com/get.php?f=a.png",
            "https://e.com/a.svg",
            "https://e.com/image.",
        ],
        f"The {C0}.media.url must be a file of type: jpeg, jpg, gif, png, h263, m4v, mp4, mpeg, mpeg4, webm.",
    ),
    Rule("cards", f"{C0}.media.url", [], [None, "", _DELETE], f"The {C0}.media.url field is required."),
    Rule("cards", f"{C0}.media", [None], ["https://e.com/a.png"], f"The {C0}.media must be an array."),
    # suggestions: <= 4 per card
    Rule(
        "cards",
        f"{C0}.{S}",
        [[SUGGESTION_LINK] * 4, [], None, _DELETE],
        [[SUGGESTION_LINK] * 5],
        f"The {C0}.{S} may not have more than 4 items.",
    ),
    # suggestion text <= 25, postback_data <= 25
    Rule(
        "cards",
        f"{C0}.{S}.0.text",
        ["a" * 25],
        ["a" * 26],
        f"The {C0}.{S}.0.text may not be greater than 25 characters.",
    ),
    Rule("cards", f"{C0}.{S}.0.text", [], [None, "", _DELETE], f"The {C0}.{S}.0.text field is required."),
    Rule(
        "cards",
        f"{C0}.{S}.1.postback_data",
        ["p" * 25, None, _DELETE],
        ["p" * 26],
        f"The {C0}.{S}.1.postback data may not be greater than 25 characters.",
    ),
    # suggestion url: http(s), <= 1000; phone: 9-15 digits
    Rule(
        "cards",
        f"{C0}.{S}.0.url",
        [url(1000, suffix=""), "http://x.io/any.php?q=1"],
        [url(1001, suffix="")],
        f"The {C0}.{S}.0.url may not be greater than 1000 characters.",
    ),
    Rule(
        "cards", f"{C0}.{S}.0.url", [], ["string", "mailto:a@b.c"], f"The {C0}.{S}.0.url format is invalid."
    ),
    Rule(
        "cards",
        f"{C0}.{S}.1.phone",
        ["380971112", "1" * 15, "+380971112233"],
        ["38097111", "1" * 16, "0971112233", "string"],
        f"The {C0}.{S}.1.phone format is invalid.",
    ),
    # suggestion: url xor phone; type optional, inferred, must match
    Rule(
        "cards",
        f"{C0}.{S}.0.phone",
        [None],
        ["380971112233"],
        f"The {C0}.{S}.0.phone field is prohibited when url is present.",
    ),
    Rule(
        "cards",
        f"{C0}.{S}.0.url",
        [],
        [None, _DELETE],
        f"The {C0}.{S}.0.url field is required when phone is not present.",
    ),
    Rule(
        "cards",
        f"{C0}.{S}.0",
        [{"text": "t", "type": "call", "phone": "380971112233"}],
        [{"text": "t", "type": "call"}],
        f"The {C0}.{S}.0.phone field is required when type is call.",
        f"{C0}.{S}.0.phone",
    ),
    Rule(
        "cards",
        f"{C0}.{S}.0.type",
        ["link", None, "", _DELETE],
        ["call"],
        f"The {C0}.{S}.0.type must be link when url is present.",
    ),
    Rule(
        "cards",
        f"{C0}.{S}.1.type",
        ["call", None],
        ["link"],
        f"The {C0}.{S}.1.type must be call when phone is present.",
    ),
    Rule(
        "cards",
        f"{C0}.{S}.0.type",
        [],
        ["sms", "LINK", 1, True],
        f"The selected {C0}.{S}.0.type is invalid.",
    ),
    # validity 1-72 hours, validity_seconds 30-86400
    Rule(
        "text",
        "validity",
        [1, 72, "72", None, ""],
        [0, 73, "73", -1],
        "The validity must be between 1 and 72.",
    ),
    Rule("text", "validity", [], [72.0, 1.5, True, "7x", " 7", [72]], "The validity must be an integer."),
    Rule(
        "text",
        "validity_seconds",
        [30, 86400, "30", None],
        [29, 86401],
        "The validity seconds must be between 30 and 86400.",
    ),
    # callback_url: http(s), <= 100
    Rule(
        "text",
        "callback_url",
        [url(100, suffix=""), "http://x.io/cb", None, ""],
        [url(101, suffix="")],
        "The callback url may not be greater than 100 characters.",
    ),
    Rule(
        "text",
        "callback_url",
        [],
        ["string", "ftp://e.com/cb", "//e.com/cb"],
        "The callback url format is invalid.",
    ),
    Rule("text", "callback_url", [], [1], "The callback url must be a string."),
    # tariff_code: int or numeric string, >= 0
    Rule(
        "text",
        "tariff_code",
        [0, 9, "9", 2_147_483_647, None],
        [-1, "-1"],
        "The tariff code must be at least 0.",
    ),
    Rule("text", "tariff_code", [], [2_147_483_648], "The tariff code may not be greater than 2147483647."),
    Rule("text", "tariff_code", [], ["x", "9.0", 1.5, True, {}], "The tariff code must be an integer."),
    # booleans
    *(
        Rule(
            "text",
            name,
            [True, False, "true", "false", "1", "0", 1, 0, None],
            ["yes", "True", "on", 2, 1.0, []],
            f"The {name.replace('_', ' ')} field must be true or false.",
        )
        for name in ("add_to_contact_book", "check_stop_list")
    ),
    # alternative_channel.sms
    Rule(
        "cards",
        "alternative_channel",
        [None, {}, {"sms": None}, {"viber": {"text": "x"}}],
        ["sms", [1]],
        "The alternative channel must be an array.",
    ),
    Rule(
        "cards",
        f"{SMS}.sender",
        ["abc", "a" * 11, "Shop2024", "1" * 15, "123"],
        ["ab", "a" * 12, "1" * 16, "12", "My Shop", "shop!", "\u00c4BC"],
        f"The {SMS.replace('_', ' ')}.sender format is invalid.",
    ),
    Rule(
        "cards",
        f"{SMS}.sender",
        [],
        [None, "", _DELETE],
        f"The {SMS.replace('_', ' ')}.sender field is required.",
    ),
    Rule(
        "cards",
        f"{SMS}.text",
        ["a" * 765, "\u20ac" * 382 + "a", "{}" * 191 + "a"],
        ["a" * 766, "\u20ac" * 383, "[" * 382 + "ab"],
        f"The {SMS.replace('_', ' ')}.text may not be greater than 765 characters.",
    ),
    Rule(
        "cards",
        f"{SMS}.text",
        ["\u0436" * 355, "\U0001f600" * 177 + "a"],
        ["\u0436" * 356, "\U0001f600" * 178],
        f"The {SMS.replace('_', ' ')}.text may not be greater than 355 characters.",
    ),
    Rule(
        "cards",
        f"{SMS}.text",
        [],
        [None, "", _DELETE],
        f"The {SMS.replace('_', ' ')}.text field is required.",
    ),
    Rule(
        "cards",
        f"{SMS}.validity",
        [1, 72, None],
        [0, 73],
        f"The {SMS.replace('_', ' ')}.validity must be between 1 and 72.",
    ),
    Rule(
        "cards",
        f"{SMS}.validity_seconds",
        [30, 86400, None],
        [29, 86401],
        f"The {SMS.replace('_', ' ')}.validity seconds must be between 30 and 86400.",
    ),
    Rule(
        "cards",
        f"{SMS}.check_stop_list",
        ["false", False, None],
        ["no"],
        f"The {SMS.replace('_', ' ')}.check stop list field must be true or false.",
    ),
    # campaign phones: 1-5000, unique numbers and reference ids
    Rule(
        "campaign",
        "phones",
        [numbers(5000)],
        [numbers(5001)],
        "The phones may not have more than 5000 items.",
    ),
    Rule("campaign", "phones", [numbers(1)], [[]], "The phones must have at least 1 items."),
    Rule("campaign", "phones", [], [None, _DELETE], "The phones field is required."),
    Rule(
        "campaign", "phones", [], [{"number": "380661231231"}, "380661231231"], "The phones must be an array."
    ),
    Rule(
        "campaign",
        "phones.1.number",
        ["380661231233"],
        ["380661231231", "+380661231231", 380661231231],
        "The phones.1.number field has a duplicate value.",
    ),
    Rule("campaign", "phones.1.number", [], ["12", "0661231232"], "The phones.1.number format is invalid."),
    Rule(
        "campaign",
        "phones.1.reference_id",
        ["r2", None],
        ["r1"],
        "The phones.1.reference id field has a duplicate value.",
    ),
    # start_at format (campaigns)
    Rule(
        "campaign",
        "start_at",
        [
            "2025-01-25 09:00:00",
            "2025-01-25T09:00:00",
            "2025-01-25T09:00",
            "2025-01-25T09:00:00Z",
            "2025-01-25T09:00:00+03:00",
            "2025-01-25T09:00:00-0530",
            "2025-01-25T09:00:00.000+00:00",
            "2025-01-25T09:00:00.123456",
            None,
            "",
        ],
        [
            "2025-01-25",
            "25.01.2025 09:00:00",
            "2025-02-30 09:00:00",
            "2025-01-25 09:00:00+03:00",
            "2025-01-25 9:00:00",
            "2025-01-25 09:00",
            "2025-01-25T25:00:00",
            "2025-01-25T09:00:00+24:00",
            "2025-01-25T09:00:00.1234567",
            "2025-01-25T09:00:00 ",
        ],
        "The start at does not match the format Y-m-d H:i:s.",
    ),
    Rule("campaign", "start_at", [], [20250125, 1.5], "The start at must be a string."),
    # groups: 1-1000 integer ids
    Rule(
        "groups",
        "groups",
        [list(range(1, 1001)), [1] * 1000],
        [list(range(1, 1002))],
        "The groups may not have more than 1000 items.",
    ),
    Rule("groups", "groups", [[7]], [[]], "The groups must have at least 1 items."),
    Rule("groups", "groups", [], [None, _DELETE], "The groups field is required."),
    Rule("groups", "groups", [], [1, "1,2"], "The groups must be an array."),
    Rule("groups", "groups.0", [1, "5", 2**63 - 1], [0, -3], "The groups.0 must be at least 1."),
    Rule("groups", "groups.0", [], [2**63], "The groups.0 may not be greater than 9223372036854775807."),
    Rule("groups", "groups.0", [], ["x", 1.5, True, [1]], "The groups.0 must be an integer."),
    Rule(
        "groups",
        "validity_seconds",
        [30, 86400],
        [29, 86401],
        "The validity seconds must be between 30 and 86400.",
    ),
]


def _cases(which: str) -> list[Any]:
    cases = []
    for rule in RULES:
        values = rule.ok if which == "ok" else rule.bad
        for index, value in enumerate(values):
            label = "missing" if value is _DELETE else repr(value)[:30]
            cases.append(pytest.param(rule, value, id=f"{rule.base}:{rule.path}:{index}:{label}"))
    return cases


@pytest.mark.parametrize(("rule", "value"), _cases("ok"))
def test_rule_accepts(rule: Rule, value: object) -> None:
    model_name, base = BASES[rule.base]
    assert errors_of(MODELS[model_name], replaced(base, rule.path, value), rule.context) == {}


@pytest.mark.parametrize(("rule", "value"), _cases("bad"))
def test_rule_rejects(rule: Rule, value: object) -> None:
    model_name, base = BASES[rule.base]
    errors = errors_of(MODELS[model_name], replaced(base, rule.path, value), rule.context)
    assert errors == {rule.key or rule.path: [rule.message]}


def test_every_rule_has_a_failing_case() -> None:
    assert all(rule.bad for rule in RULES)


# ---------------------------------------------------------- more error shapes


def test_several_errors_at_once_with_dotted_paths() -> None:
    payload = {
        "phone": {"number": "+1", "reference_id": "x" * 40},
        "sender": "",
        "options": {"cards": [CARD, {**CARD, "suggestions": [{"text": "x" * 30, "url": "nope"}]}]},
        "validity": 0,
        "unknown": {"ignored": True},
    }
    assert errors_of(SendRcsMessageRequest, payload) == {
        "phone.number": ["The phone.number format is invalid."],
        "phone.reference_id": ["The phone.reference id may not be greater than 32 characters."],
        "sender": ["The sender field is required."],
        "options.cards.1.suggestions.0.text": [
            "The options.cards.1.suggestions.0.text may not be greater than 25 characters."
        ],
        "options.cards.1.suggestions.0.url": ["The options.cards.1.suggestions.0.url format is invalid."],
        "validity": ["The validity must be between 1 and 72."],
    }


def test_all_duplicates_are_named() -> None:
    phones = [
        {"number": "380661231231", "reference_id": "a"},
        {"number": "380661231232", "reference_id": "a"},
        {"number": "380661231231"},
        {"number": "380661231232", "reference_id": "b"},
    ]
    payload = {"phones": phones, "sender": "agent", "options": {"text": "Hi"}}
    assert errors_of(SendRcsCampaignRequest, payload) == {
        "phones.1.reference_id": ["The phones.1.reference id field has a duplicate value."],
        "phones.2.number": ["The phones.2.number field has a duplicate value."],
        "phones.3.number": ["The phones.3.number field has a duplicate value."],
    }


@pytest.mark.parametrize("body", [[], [1, 2], "text", 5, None])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_a_body_that_is_not_an_object_reads_as_empty(body: object, model_name: str) -> None:
    errors = errors_of(MODELS[model_name], body)
    required = {"single": "phone", "campaign": "phones", "groups": "groups"}[model_name]
    assert errors == {
        required: [f"The {required} field is required."],
        "sender": ["The sender field is required."],
        "options": ["The options field is required."],
    }


def test_keys_are_never_empty_and_fastapi_prefix_can_be_stripped() -> None:
    with pytest.raises(ValidationError) as caught:
        SendRcsMessageRequest.model_validate_json("{not json")
    assert validation_errors(caught.value) == {"body": ["The request body is not valid JSON."]}
    with pytest.raises(ValidationError) as caught:
        SendRcsMessageRequest.model_validate(
            {"phone": {"number": "1"}, "sender": "a", "options": {"text": "x"}}
        )
    fastapi_style = [{**error, "loc": ("body", *error["loc"])} for error in caught.value.errors()]
    assert format_errors(fastapi_style, strip_prefix=("body",)) == {
        "phone.number": ["The phone.number format is invalid."]
    }


def test_max_cards_context_falls_back_to_default_when_unusable() -> None:
    _, base = BASES["cards"]
    payload = replaced(base, "options.cards", [CARD] * 10)
    for context in (None, {}, {"max_cards": "5"}, {"max_cards": 0}, {"max_cards": True}):
        assert errors_of(SendRcsMessageRequest, payload, context) == {}
    assert errors_of(SendRcsMessageRequest, payload, {"max_cards": 9}) == {
        "options.cards": ["The options.cards may not have more than 9 items."]
    }


# ------------------------------------------------------------------- to_domain


def test_single_to_domain_with_defaults() -> None:
    _, base = BASES["text"]
    send = SendRcsMessageRequest.model_validate(base).to_domain()
    assert send == rc.SingleRcsSend(
        recipient=rc.Recipient("380661231231", "ref1"),
        sender="agent",
        content=rc.RcsContent(text="Hi"),
        validity_seconds=72 * 3600,
        sms_alternative=None,
        callback_url=None,
        tariff_code=None,
        add_to_contact_book=True,
        check_stop_list=True,
    )
    assert send.content.kind == "text"


def test_cards_to_domain_infers_suggestion_kinds() -> None:
    _, base = BASES["cards"]
    content = SendRcsMessageRequest.model_validate(base).to_domain().content
    assert content.kind == "single_card"
    (card,) = content.cards
    assert card == rc.Card(
        title="Title",
        text="Card text",
        media=rc.Media("https://domain.com/image.png"),
        suggestions=(
            rc.Suggestion("Go to site", "link", url="https://domain.com/"),
            rc.Suggestion("Call us", "call", phone="380971112233", postback_data="call"),
        ),
    )
    carousel = replaced(base, "options.cards", [CARD, {"media": {"url": "https://e.com/v.mp4"}}])
    assert SendRcsMessageRequest.model_validate(carousel).to_domain().content.kind == "carousel"


@pytest.mark.parametrize(
    ("validity", "validity_seconds", "expected"),
    [(None, None, 259200), (1, None, 3600), (72, 30, 30), (None, 86400, 86400), ("5", "60", 60)],
)
def test_validity_seconds_win(validity: object, validity_seconds: object, expected: int) -> None:
    _, base = BASES["cards"]
    payload = {**base, "validity": validity, "validity_seconds": validity_seconds}
    payload["alternative_channel"] = {"sms": {**base["alternative_channel"]["sms"], **payload}}
    del payload["alternative_channel"]["sms"]["options"]
    send = SendRcsMessageRequest.model_validate(payload).to_domain()
    assert send.validity_seconds == expected
    assert send.sms_alternative is not None
    assert send.sms_alternative.validity_seconds == expected


def test_both_validities_are_range_checked() -> None:
    _, base = BASES["text"]
    assert errors_of(SendRcsMessageRequest, {**base, "validity": 73, "validity_seconds": 30}) == {
        "validity": ["The validity must be between 1 and 72."]
    }


def test_flags_and_tariff_to_domain() -> None:
    _, base = BASES["cards"]
    payload = {
        **base,
        "add_to_contact_book": "false",
        "check_stop_list": "0",
        "tariff_code": "9",
        "callback_url": "https://hooks.example/rcs",
        "alternative_channel": {"sms": {"text": "t", "sender": "12345", "check_stop_list": False}},
    }
    send = SendRcsMessageRequest.model_validate(payload).to_domain()
    assert (send.add_to_contact_book, send.check_stop_list, send.tariff_code) == (False, False, 9)
    assert send.callback_url == "https://hooks.example/rcs"
    assert send.sms_alternative == rc.SmsAlternative("12345", "t", 72 * 3600, check_stop_list=False)


def test_campaign_to_domain_parses_start_at_to_utc() -> None:
    _, base = BASES["campaign"]
    send = SendRcsCampaignRequest.model_validate(
        {**base, "start_at": "2025-01-25T09:00:00+02:00"}
    ).to_domain()
    assert send.start_at == datetime(2025, 1, 25, 7, 0, tzinfo=UTC)
    assert send.start_at.tzinfo is UTC
    assert send.recipients == (rc.Recipient("380661231231", "r1"), rc.Recipient("380661231232"))
    # Without an offset: a wall time in the account's zone, resolved by the campaign service.
    naive = SendRcsCampaignRequest.model_validate({**base, "start_at": "2025-01-25 09:00:00"}).to_domain()
    assert naive.start_at == datetime(2025, 1, 25, 9, 0)
    assert rc.start_at_utc(naive.start_at, "Europe/Kyiv") == datetime(2025, 1, 25, 7, 0, tzinfo=UTC)
    assert SendRcsCampaignRequest.model_validate(base).to_domain().start_at is None


def test_groups_to_domain_dedupes_in_order() -> None:
    _, base = BASES["groups"]
    send = SendRcsCampaignGroupsRequest.model_validate({**base, "groups": [3, "1", 3, 2, 1]}).to_domain()
    assert send.group_ids == (3, 1, 2)


def test_every_optional_field_accepts_null() -> None:
    payload = {
        "phone": {"number": "380661231231", "reference_id": None},
        "sender": "agent",
        "options": {
            "text": None,
            "cards": [
                {
                    "title": None,
                    "text": None,
                    "media": {"url": "https://e.com/a.gif"},
                    "suggestions": [
                        {
                            "type": None,
                            "text": "t",
                            "url": None,
                            "phone": "380971112233",
                            "postback_data": None,
                        }
                    ],
                },
                {"title": None, "text": "x", "media": None, "suggestions": None},
            ],
        },
        "alternative_channel": {
            "sms": {
                "text": "t",
                "sender": "abc",
                "validity": None,
                "validity_seconds": None,
                "check_stop_list": None,
            }
        },
        "callback_url": None,
        "tariff_code": None,
        "validity": None,
        "validity_seconds": None,
        "add_to_contact_book": None,
        "check_stop_list": None,
        "start_at": None,
    }
    send = SendRcsMessageRequest.model_validate(payload).to_domain()
    assert send.validity_seconds == 259200
    assert (send.add_to_contact_book, send.check_stop_list) == (True, True)
    campaign = {**payload, "phones": [payload["phone"]]}
    groups = {**payload, "groups": [1]}
    assert SendRcsCampaignRequest.model_validate(campaign).to_domain().start_at is None
    assert SendRcsCampaignGroupsRequest.model_validate(groups).to_domain().sms_alternative is not None


def test_unknown_fields_are_ignored_everywhere() -> None:
    _, base = BASES["cards"]
    payload = copy.deepcopy(base)
    payload["future_field"] = [1]
    payload["phone"]["country"] = "UA"
    payload["options"]["cards"][0]["layout"] = "vertical"
    payload["options"]["cards"][0]["media"]["height"] = "MEDIUM"
    payload["options"]["cards"][0]["suggestions"][0]["color"] = "red"
    payload["alternative_channel"]["sms"]["unicode"] = True
    assert SendRcsMessageRequest.model_validate(payload).to_domain() == (
        SendRcsMessageRequest.model_validate(base).to_domain()
    )


def test_a_5000_phone_campaign_validates() -> None:
    payload = {"phones": numbers(5000), "sender": "agent", "options": {"text": "Hi"}}
    assert len(SendRcsCampaignRequest.model_validate(payload).to_domain().recipients) == 5000


# ------------------------------------------------------- the official client


@pytest.fixture(scope="module")
def api_client() -> Any:
    return bsg_api.ApiClient()


def wire(api_client: Any, sdk_model: Any) -> dict[str, Any]:
    """The JSON body the official client sends for sdk_model."""
    body = json.loads(json.dumps(api_client.sanitize_for_serialization(sdk_model)))
    assert isinstance(body, dict)
    return body


def sdk_card(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "title": "Sale",
        "text": "Up to 50% \U0001f525",
        "media": bsg_api.Media(url="https://cdn.example.com/sale.JPG"),
        "suggestions": [
            bsg_api.Suggestion(bsg_api.SuggestionLink(type="link", text="Open", url="https://example.com/s")),
            bsg_api.Suggestion(
                bsg_api.SuggestionCall(type="call", text="Call", phone="380971112233", postback_data="call1")
            ),
        ],
    }
    return bsg_api.Card(**{**fields, **overrides})


def test_sdk_minimal_text_message(api_client: Any) -> None:
    message = bsg_api.RcsMessage(
        phone=bsg_api.Phone(number="380661231231"),
        sender="agent",
        options=bsg_api.Options(bsg_api.Text(text="Hello! \u263a\ufe0f")),
    )
    body = wire(api_client, message)
    assert body["validity"] == 72
    send = SendRcsMessageRequest.model_validate(body).to_domain()
    assert send.content == rc.RcsContent(text="Hello! \u263a\ufe0f")
    assert send.validity_seconds == 72 * 3600


def test_sdk_carousel_with_explicit_nulls(api_client: Any) -> None:
    message = bsg_api.RcsMessage(
        phone=bsg_api.Phone(number="380661231231", reference_id="f2d37bf77f6242daa83f23b0cc84b627"),
        sender="agent",
        options=bsg_api.Options(bsg_api.Cards(cards=[sdk_card(), sdk_card(title=None, suggestions=None)])),
        alternative_channel=None,
        callback_url=None,
        tariff_code=None,
        validity_seconds=None,
    )
    body = wire(api_client, message)
    assert body["callback_url"] is None and body["tariff_code"] is None and body["validity_seconds"] is None
    assert body["options"]["cards"][0]["suggestions"][0]["type"] == "link"
    send = SendRcsMessageRequest.model_validate(body).to_domain()
    assert send.content.kind == "carousel"
    assert [s.kind for s in send.content.cards[0].suggestions] == ["link", "call"]
    assert send.recipient.reference_id == "f2d37bf77f6242daa83f23b0cc84b627"
    assert send.validity_seconds == 72 * 3600


def test_sdk_validity_seconds_beside_validity_72_and_sms_alternative(api_client: Any) -> None:
    message = bsg_api.RcsMessage(
        phone=bsg_api.Phone(number="380661231231"),
        sender="agent",
        options=bsg_api.Options(bsg_api.Cards(cards=[sdk_card()])),
        alternative_channel=bsg_api.AlternativeChannel(
            sms=bsg_api.SmsAltChannel(text="Fallback text", sender="testsms", validity_seconds=None)
        ),
        callback_url="https://hooks.example.com/rcs",
        tariff_code=9,
        validity_seconds=30,
        add_to_contact_book=False,
        check_stop_list=False,
    )
    body = wire(api_client, message)
    assert (body["validity"], body["validity_seconds"]) == (72, 30)
    assert body["alternative_channel"]["sms"]["validity_seconds"] is None
    send = SendRcsMessageRequest.model_validate(body).to_domain()
    assert send.validity_seconds == 30
    assert send.sms_alternative == rc.SmsAlternative("testsms", "Fallback text", 72 * 3600, True)
    assert (send.tariff_code, send.add_to_contact_book, send.check_stop_list) == (9, False, False)


@pytest.mark.parametrize(
    ("start_at", "expected"),
    [
        (
            datetime(2025, 1, 25, 9, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2025, 1, 25, 7, 0, tzinfo=UTC),
        ),
        (datetime(2025, 1, 25, 9, 0, 0, 123), datetime(2025, 1, 25, 9, 0, 0, 123)),  # the account's zone
        (None, None),
    ],
)
def test_sdk_phone_campaign(api_client: Any, start_at: datetime | None, expected: datetime | None) -> None:
    campaign = bsg_api.SendRcsCampaign(
        phones=[
            bsg_api.Phone(number="380661231231", reference_id="a1"),
            bsg_api.Phone(number="380661231232"),
        ],
        sender="agent",
        options=bsg_api.Options(bsg_api.Text(text="Campaign")),
        start_at=start_at,
        tariff_code=None,
        validity_seconds=None,
        validity=6,
    )
    send = SendRcsCampaignRequest.model_validate(wire(api_client, campaign)).to_domain()
    assert send.start_at == expected
    assert send.validity_seconds == 6 * 3600
    assert [r.number for r in send.recipients] == ["380661231231", "380661231232"]


def test_sdk_group_campaign(api_client: Any) -> None:
    alternative = bsg_api.SendRcsCampaignGroupsAlternativeChannel(
        bsg_api.AlternativeChannel(
            sms=bsg_api.SmsAltChannel(text="Hello, world!", sender="testsms", validity=43)
        )
    )
    with_sms = bsg_api.SendRcsCampaignGroups(
        groups=[123, 124],
        sender="agent",
        options=bsg_api.Options(bsg_api.Cards(cards=[sdk_card()])),
        alternative_channel=alternative,
        start_at=datetime(2025, 4, 10, 9, 0, tzinfo=UTC),
    )
    send = SendRcsCampaignGroupsRequest.model_validate(wire(api_client, with_sms)).to_domain()
    assert send.group_ids == (123, 124)
    assert send.sms_alternative == rc.SmsAlternative("testsms", "Hello, world!", 43 * 3600, True)
    assert send.start_at == datetime(2025, 4, 10, 9, 0, tzinfo=UTC)

    without = bsg_api.SendRcsCampaignGroups(
        groups=[5],
        sender="agent",
        options=bsg_api.Options(bsg_api.Text(text="x")),
        alternative_channel=None,
        tariff_code=None,
    )
    body = wire(api_client, without)
    assert body["alternative_channel"] is None
    assert SendRcsCampaignGroupsRequest.model_validate(body).to_domain().sms_alternative is None


# ----------------------------------------------------- the pages' examples

# spec/rcs-send-single-message.txt, "Example of a query", verbatim.
PAGE_SINGLE_EXAMPLE: dict[str, Any] = {
    "phone": {"number": "380661231231", "reference_id": "string"},
    "sender": "string",
    "options": {
        "cards": [
            {
                "text": "This is the first card text",
                "media": {"url": "https://domain.com/image.png"},
                "suggestions": [
                    {"text": "Go to site", "url": "https://domain.com/"},
                    {"text": "Call us", "phone": "380971112233"},
                ],
            },
            {
                "text": "This is the second card text",
                "media": {"url": "https://domain.com/image2.png"},
                "suggestions": [{"text": "Go to site", "url": "https://domain.com/"}],
            },
        ]
    },
    "alternative_channel": {
        "sms": {"text": "string", "sender": "string", "validity": 72, "check_stop_list": True}
    },
    "callback_url": "string",
    "tariff_code": 0,
    "validity_seconds": 86400,
    "add_to_contact_book": True,
    "check_stop_list": True,
}

# spec/rcs-send-to-groups.txt, "Example of a query", verbatim.
PAGE_GROUPS_EXAMPLE: dict[str, Any] = {
    "groups": [0],
    "sender": "Agent Name",
    "options": {
        "cards": [
            {
                "text": "Go to site",
                "media": {"url": "https://domain.com/"},
                "suggestions": [{"text": "Go to site", "url": "https://domain.com/"}],
            },
            {
                "text": "string",
                "media": {"url": "string"},
                "suggestions": [{"text": "string", "url": "string"}],
            },
            {
                "text": "string",
                "media": {"url": "string"},
                "suggestions": [{"text": "string", "phone": "string"}],
            },
            {
                "title": "string",
                "text": "string",
                "media": {"url": "string"},
                "suggestions": [{"text": "string", "url": "string"}],
            },
        ]
    },
    "alternative_channel": {
        "sms": {"text": "Hello, world!", "sender": "string", "validity": 72, "check_stop_list": True}
    },
    "start_at": "2025-01-25 09:00:00",
    "tariff_code": 0,
    "validity": 72,
    "add_to_contact_book": True,
    "check_stop_list": True,
}


def test_page_single_example_fails_only_on_its_placeholder_callback_url() -> None:
    assert errors_of(SendRcsMessageRequest, PAGE_SINGLE_EXAMPLE) == {
        "callback_url": ["The callback url format is invalid."]
    }
    real = {**PAGE_SINGLE_EXAMPLE, "callback_url": "https://domain.com/rcs-callback"}
    send = SendRcsMessageRequest.model_validate(real).to_domain()
    assert send.content.kind == "carousel"
    assert send.validity_seconds == 86400
    assert send.sms_alternative == rc.SmsAlternative("string", "string", 72 * 3600, True)
    assert send.tariff_code == 0


def test_page_groups_example_fails_only_on_its_placeholders() -> None:
    cards = "options.cards"
    assert errors_of(SendRcsCampaignGroupsRequest, PAGE_GROUPS_EXAMPLE) == {
        "groups.0": ["The groups.0 must be at least 1."],
        **{f"{cards}.{i}.media.url": [f"The {cards}.{i}.media.url format is invalid."] for i in (1, 2, 3)},
        **{
            f"{cards}.{i}.suggestions.0.url": [f"The {cards}.{i}.suggestions.0.url format is invalid."]
            for i in (1, 3)
        },
        f"{cards}.2.suggestions.0.phone": [f"The {cards}.2.suggestions.0.phone format is invalid."],
    }
    real = copy.deepcopy(PAGE_GROUPS_EXAMPLE)
    real["groups"] = [17]
    for card in real["options"]["cards"][1:]:
        card["media"]["url"] = "https://domain.com/picture.png"
        suggestion = card["suggestions"][0]
        suggestion.update(
            {"url": "https://domain.com/"} if "url" in suggestion else {"phone": "380971112233"}
        )
    send = SendRcsCampaignGroupsRequest.model_validate(real).to_domain()
    assert send.group_ids == (17,)
    assert len(send.content.cards) == 4
    assert send.start_at == datetime(2025, 1, 25, 9, 0)  # in the account's time zone
    assert send.validity_seconds == 72 * 3600


# --------------------------------------------------------------- domain rules


NOW = datetime(2025, 1, 10, 12, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start_at", "reason"),
    [
        (datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC), None),  # now, to the second
        (
            datetime(2025, 1, 10, 11, 59, 59, 999_999, tzinfo=UTC),
            "The start at must be a date after or equal to now.",
        ),
        (datetime(2025, 2, 8, 23, 59, 59, tzinfo=UTC), None),  # 30th day, today being day 1
        (datetime(2025, 2, 8, 23, 59, 59, 999_999, tzinfo=UTC), None),
        (
            datetime(2025, 2, 9, 0, 0, 0, tzinfo=UTC),
            "The start at must be a date before or equal to 2025-02-08 23:59:59.",
        ),
        (datetime(2025, 2, 9, 1, 0, tzinfo=timezone(timedelta(hours=2))), None),  # 23:00 UTC
        (datetime(2025, 2, 8, 23, 59, 59), None),  # naive means UTC
        (
            datetime(2025, 1, 10, 13, 0, tzinfo=timezone(timedelta(hours=2))),
            "The start at must be a date after or equal to now.",
        ),
    ],
)
def test_check_start_at(start_at: datetime, reason: str | None) -> None:
    assert rc.check_start_at(start_at, NOW) == reason


def test_check_start_at_with_naive_now_and_late_utc_day() -> None:
    now = datetime(2025, 1, 31, 23, 30)  # naive: UTC
    assert rc.latest_start_at(now) == datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert rc.check_start_at(datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC), now) is None


def test_utf16_len() -> None:
    assert [rc.utf16_len(s) for s in ("", "abc", "\u0436", "\U0001f600", "\u263a\ufe0f", "\ud83d")] == [
        0,
        3,
        1,
        2,
        2,
        1,
    ]


def test_validity_to_seconds() -> None:
    assert rc.validity_to_seconds(None, None) == 259200
    assert rc.validity_to_seconds(None, None, default_hours=1) == 3600
    assert rc.validity_to_seconds(2, None) == 7200
    assert rc.validity_to_seconds(72, 45) == 45


@pytest.mark.parametrize(
    ("url_", "extension"),
    [
        ("https://e.com/a/IMG.PNG?w=10#f", "png"),
        ("https://e.com/a.tar.gz", "gz"),
        ("https://e.com/a/", None),
        ("https://e.com/dir.v2/file", None),
        ("https://e.com", None),
    ],
)
def test_media_extension(url_: str, extension: str | None) -> None:
    assert rc.media_extension(url_) == extension


def test_sms_text_units() -> None:
    assert rc.sms_text_units("abc") == ("gsm7", 3)
    assert rc.sms_text_units("a\u20ac") == ("gsm7", 3)
    assert rc.sms_text_units("a\u0436\U0001f600") == ("ucs2", 4)


def test_content_invariants() -> None:
    with pytest.raises(ValueError, match="either"):
        rc.RcsContent()
    with pytest.raises(ValueError, match="either"):
        rc.RcsContent(text="x", cards=(rc.Card(text="y"),))
    with pytest.raises(ValueError, match="media or text"):
        rc.Card(title="t")
    with pytest.raises(ValueError, match="link suggestion"):
        rc.Suggestion("t", "link", phone="380971112233")
    with pytest.raises(ValueError, match="link suggestion"):
        rc.Suggestion("t", "call", url="https://e.com", phone="380971112233")
    assert rc.RcsContent(cards=(rc.Card(text="a"), rc.Card(text="b"))).kind == "carousel"
    assert rc.RcsContent(cards=(rc.Card(media=rc.Media("https://e.com/a.png")),)).kind == "single_card"
