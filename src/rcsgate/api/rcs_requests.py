"""Request bodies of the RCS send endpoints, wire-compatible with BSG One-API.

- `SendRcsMessageRequest`        POST /api/messages/rcs/send
- `SendRcsCampaignRequest`       POST /api/campaigns/rcs/send
- `SendRcsCampaignGroupsRequest` POST /api/campaigns/rcs/send-groups

Validate with `Model.model_validate(body, context={"max_cards": n})` (the
context is optional; the card limit defaults to `DEFAULT_MAX_CARDS`), turn a
`ValidationError` into BSG's `errors` object with `validation_errors()`, and
hand `model.to_domain()` to the services.

Input leniency (what BSG's Laravel back end or the official client do):
- Unknown fields are ignored; `null` for an optional field means "not given";
  an empty string counts as `null` everywhere (Laravel's
  ConvertEmptyStringsToNull), so `"callback_url": ""` is "not given" and
  `"sender": ""` is "required". Strings are not trimmed: this is message content.
  A message text that is only whitespace (`options.text`, a card's `title`
  and `text`, a suggestion's `text` and `postback_data`, the SMS alternative's
  `text`) counts as empty too, as Laravel's TrimStrings makes it: text that is
  only whitespace is not a message.
- Strings that are not storable text (a NUL, which PostgreSQL refuses; an
  unpaired UTF-16 surrogate, which is not Unicode) and bodies nested too
  deeply are refused before validation, for every body of every route, by
  `rcsgate.api.bodies.decode_json`.
- Integers (`validity`, `validity_seconds`, `tariff_code`, `groups[]`): a JSON
  integer or a string of digits ("9"); never a boolean or a float.
- Booleans (`add_to_contact_book`, `check_stop_list`): true/false, "true"/
  "false" (the pages), and 1/0, "1"/"0" (Laravel's boolean rule accepts them).
  Other spellings ("yes", "True", "on") are rejected.
- Message texts (`options.text`, card `text`) are counted in UTF-16 code units,
  as the pages document for emojis; other lengths count characters.

Error messages follow Laravel's wording. Their `{attribute}` is filled in by
`validation_errors()` from the dotted path, underscores shown as spaces as
Laravel does ("The callback url may not be greater than 100 characters.").
`format_errors()` is the API's one 422 formatter: request bodies, and (through
`rcsgate.api.errors`) query, path and header parameters, pydantic's own error
types given Laravel's words too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Self, TypedDict

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rcsgate.domain import rcs_content as rc
from rcsgate.domain.phones import PHONE_PATTERN, normalize_phone
from rcsgate.webhooks.url_policy import CallbackUrlError, check_callback_url

__all__ = [
    "AlternativeChannelIn",
    "CardIn",
    "MediaIn",
    "OptionsIn",
    "RecipientIn",
    "SendRcsCampaignGroupsRequest",
    "SendRcsCampaignRequest",
    "SendRcsMessageRequest",
    "SmsAlternativeIn",
    "SuggestionIn",
    "format_errors",
    "validation_errors",
]

MAX_CARDS_CONTEXT_KEY: Final = "max_cards"
# True: RCSGATE_WEBHOOKS_ALLOW_PRIVATE (a callback_url may be on loopback or a private network).
ALLOW_PRIVATE_CALLBACKS_CONTEXT_KEY: Final = "allow_private_callbacks"
TARIFF_CODE_MAX: Final = 2_147_483_647  # fits a 32-bit column
GROUP_ID_MAX: Final = 9_223_372_036_854_775_807  # fits a 64-bit column

# --- Laravel-style messages -------------------------------------------------

REQUIRED: Final = "The {attribute} field is required."
STRING: Final = "The {attribute} must be a string."
INTEGER: Final = "The {attribute} must be an integer."
BOOLEAN: Final = "The {attribute} field must be true or false."
ARRAY: Final = "The {attribute} must be an array."
MAX_CHARS: Final = "The {attribute} may not be greater than {max} characters."
BETWEEN: Final = "The {attribute} must be between {min} and {max}."
MIN_NUMBER: Final = "The {attribute} must be at least {min}."
MAX_NUMBER: Final = "The {attribute} may not be greater than {max}."
MIN_ITEMS: Final = "The {attribute} must have at least {min} items."
MAX_ITEMS: Final = "The {attribute} may not have more than {max} items."
FORMAT: Final = "The {attribute} format is invalid."
ALPHA_NUM: Final = "The {attribute} may only contain letters and numbers."
SELECTED_INVALID: Final = "The selected {attribute} is invalid."
DISTINCT: Final = "The {attribute} field has a duplicate value."
DATE_FORMAT: Final = "The {attribute} does not match the format Y-m-d H:i:s."
MEDIA_TYPE: Final = "The {attribute} must be a file of type: " + ", ".join(rc.MEDIA_EXTENSIONS) + "."
OPTIONS_NEITHER: Final = "The {attribute} must contain either text or cards."
OPTIONS_BOTH: Final = "The {attribute} may not contain both text and cards."
CARD_TEXT_OR_MEDIA: Final = "The {attribute} field is required when media is not present."
SUGGESTION_NO_ACTION: Final = "The {attribute} field is required when phone is not present."
SUGGESTION_PHONE_REQUIRED: Final = "The {attribute} field is required when type is call."
SUGGESTION_BOTH_ACTIONS: Final = "The {attribute} field is prohibited when url is present."
SUGGESTION_TYPE_MISMATCH: Final = "The {attribute} must be {expected} when {present} is present."
INVALID: Final = "The {attribute} is invalid."
INVALID_JSON: Final = "The request body is not valid JSON."
MIN_CHARS: Final = "The {attribute} must be at least {min} characters."
GREATER_THAN: Final = "The {attribute} must be greater than {value}."
LESS_THAN: Final = "The {attribute} must be less than {value}."
NUL_CHARACTER: Final = "The {attribute} may not contain NUL characters."
LONE_SURROGATE: Final = "The {attribute} may not contain unpaired UTF-16 surrogates."
CALLBACK_NOT_CALLABLE: Final = "The {attribute} {reason}."

_ATTRIBUTE: Final = "{attribute}"
# ctx key of an error raised by a model validator: the paths (relative to the
# error's loc) of the fields the error is about.
_FIELDS_CTX: Final = "fields"


def _error(template: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("rcsgate", template, context or None)


# --- field rules ------------------------------------------------------------


def _string_rule(*, max_len: int | None = None, utf16: bool = False) -> BeforeValidator:
    def check(value: object) -> str:
        if value is None:
            raise _error(REQUIRED)
        if not isinstance(value, str):
            raise _error(STRING)
        if max_len is not None and (rc.utf16_len(value) if utf16 else len(value)) > max_len:
            raise _error(MAX_CHARS, max=max_len)
        return value

    return BeforeValidator(check)


def _predicate_rule(predicate: Callable[[str], bool], template: str) -> BeforeValidator:
    def check(value: object) -> str:
        if value is None:
            raise _error(REQUIRED)
        if not isinstance(value, str):
            raise _error(STRING)
        if not predicate(value):
            raise _error(template)
        return value

    return BeforeValidator(check)


def _url_rule(max_len: int, *, media: bool = False) -> BeforeValidator:
    def check(value: object) -> str:
        if value is None:
            raise _error(REQUIRED)
        if not isinstance(value, str):
            raise _error(STRING)
        if len(value) > max_len:
            raise _error(MAX_CHARS, max=max_len)
        if not rc.is_http_url(value):
            raise _error(FORMAT)
        if media and not rc.is_allowed_media_url(value):
            raise _error(MEDIA_TYPE)
        return value

    return BeforeValidator(check)


def _phone(value: object) -> str:
    """domain.phones' one rule: a string of digits (one leading "+" allowed) or a JSON integer; the
    digits go on, so "+380..." and "380..." are the same number everywhere after this."""
    if value is None:
        raise _error(REQUIRED)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _error(STRING)
    phone = normalize_phone(value)
    if phone is None:
        raise _error(FORMAT)
    return phone


def _callback_policy(value: str, info: ValidationInfo) -> str:
    """The webhook URL policy (webhooks.url_policy) at accept time, so that a URL webhooks could never
    be sent to is refused now rather than dropped at send time: a non-public IP literal in any
    spelling or a local name (unless the context allows private destinations), a link-local or
    cloud metadata host (always). Names are not resolved here; delivery checks what they resolve to."""
    context = info.context if isinstance(info.context, Mapping) else {}
    try:
        check_callback_url(value, allow_private=context.get(ALLOW_PRIVATE_CALLBACKS_CONTEXT_KEY) is True)
    except CallbackUrlError as exc:
        reason = str(exc).removeprefix("callback URL ").rstrip(".")
        raise _error(CALLBACK_NOT_CALLABLE, reason=reason) from None
    return value


def _reference_id(value: object) -> str:
    if not isinstance(value, str):
        raise _error(STRING)
    if len(value) > rc.REFERENCE_ID_MAX:
        raise _error(MAX_CHARS, max=rc.REFERENCE_ID_MAX)
    if not rc.is_valid_reference_id(value):
        raise _error(ALPHA_NUM)
    return value


def _sms_text(value: object) -> str:
    if value is None:
        raise _error(REQUIRED)
    if not isinstance(value, str):
        raise _error(STRING)
    encoding, units = rc.sms_text_units(value)
    if units > rc.sms_text_max(encoding):
        raise _error(MAX_CHARS, max=rc.sms_text_max(encoding))
    return value


_INT_STRING_RE: Final = re.compile(r"-?[0-9]{1,19}")


def _int_rule(lo: int, hi: int, *, between: bool) -> BeforeValidator:
    """An integer in [lo, hi]: `between` picks Laravel's "between" message over min/max."""

    def check(value: object) -> int:
        if value is None:
            raise _error(REQUIRED)
        if isinstance(value, str) and _INT_STRING_RE.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(INTEGER)
        if between and not lo <= value <= hi:
            raise _error(BETWEEN, min=lo, max=hi)
        if value < lo:
            raise _error(MIN_NUMBER, min=lo)
        if value > hi:
            raise _error(MAX_NUMBER, max=hi)
        return value

    return BeforeValidator(check)


_TRUE: Final = (True, 1, "true", "1")
_FALSE: Final = (False, 0, "false", "0")


def _boolean(value: object) -> bool:
    # `type(value) in (...)` keeps 1.0 out; bool/int compare equal, both wanted.
    if type(value) in (bool, int, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise _error(BOOLEAN)


def _suggestion_type(value: object) -> str:
    if value not in ("link", "call"):
        raise _error(SELECTED_INVALID)
    return str(value)


def _start_at(value: object) -> datetime:
    if not isinstance(value, str):
        raise _error(STRING)
    parsed = rc.parse_start_at(value)
    if parsed is None:
        raise _error(DATE_FORMAT)
    return parsed


def _check_items(value: object, lo: int, hi: int) -> list[Any]:
    if value is None:
        raise _error(REQUIRED)
    if not isinstance(value, list):
        raise _error(ARRAY)
    if len(value) < lo:
        raise _error(MIN_ITEMS, min=lo)
    if len(value) > hi:
        raise _error(MAX_ITEMS, max=hi)
    return value


def _items_rule(lo: int, hi: int) -> BeforeValidator:
    """A JSON array of lo..hi items, checked before the items are validated."""
    return BeforeValidator(lambda value: _check_items(value, lo, hi))


def _cards_items(value: object, info: ValidationInfo) -> list[Any]:
    context = info.context if isinstance(info.context, Mapping) else {}
    max_cards = context.get(MAX_CARDS_CONTEXT_KEY)
    if not isinstance(max_cards, int) or isinstance(max_cards, bool) or max_cards < 1:
        max_cards = rc.DEFAULT_MAX_CARDS
    return _check_items(value, 1, max_cards)


def _doc(kind: str, description: str | None = None, **rules: Any) -> WithJsonSchema:
    """The OpenAPI schema of a field validated by hand above: what a valid value looks like, so that
    clients (and generated tests) can build one. Validation itself stays with the rules above."""
    schema: dict[str, Any] = {"type": kind, **rules}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


_HTTP_URL: Final = r"^https?://[^\s/?#]+"
_UTF16: Final = "counted in UTF-16 code units"

Sender = Annotated[
    str,
    _string_rule(max_len=rc.SENDER_MAX),
    _doc("string", "Name of one of the account's active RCS agents", minLength=1, maxLength=rc.SENDER_MAX),
]
PhoneNumber = Annotated[
    str,
    BeforeValidator(_phone),
    _doc(
        "string",
        "9-15 digits, country code first, no leading 0 (a leading + or a JSON integer works too)",
        pattern=PHONE_PATTERN,
    ),
]
ReferenceId = Annotated[
    str,
    BeforeValidator(_reference_id),
    _doc("string", pattern=rf"^[A-Za-z0-9]{{1,{rc.REFERENCE_ID_MAX}}}$"),
]
RcsText = Annotated[
    str,
    _string_rule(max_len=rc.RCS_TEXT_MAX, utf16=True),
    _doc("string", f"At most {rc.RCS_TEXT_MAX} characters, {_UTF16}", minLength=1, maxLength=rc.RCS_TEXT_MAX),
]
CardTitle = Annotated[
    str, _string_rule(max_len=rc.CARD_TITLE_MAX), _doc("string", minLength=1, maxLength=rc.CARD_TITLE_MAX)
]
CardText = Annotated[
    str,
    _string_rule(max_len=rc.CARD_TEXT_MAX, utf16=True),
    _doc(
        "string", f"At most {rc.CARD_TEXT_MAX} characters, {_UTF16}", minLength=1, maxLength=rc.CARD_TEXT_MAX
    ),
]
SuggestionText = Annotated[
    str,
    _string_rule(max_len=rc.SUGGESTION_TEXT_MAX),
    _doc("string", minLength=1, maxLength=rc.SUGGESTION_TEXT_MAX),
]
PostbackData = Annotated[
    str,
    _string_rule(max_len=rc.POSTBACK_DATA_MAX),
    _doc("string", minLength=1, maxLength=rc.POSTBACK_DATA_MAX),
]
SuggestionType = Annotated[rc.SuggestionKind, BeforeValidator(_suggestion_type)]
ActionUrl = Annotated[
    str,
    _url_rule(rc.URL_MAX),
    _doc("string", "An absolute http(s) URL", maxLength=rc.URL_MAX, pattern=_HTTP_URL),
]
MediaUrl = Annotated[
    str,
    _url_rule(rc.URL_MAX, media=True),
    _doc(
        "string",
        "An absolute http(s) URL; a file extension, if the path has one, must be one of "
        + ", ".join(rc.MEDIA_EXTENSIONS),
        maxLength=rc.URL_MAX,
        pattern=_HTTP_URL,
    ),
]
CallbackUrl = Annotated[
    str,
    # Before-validators run right to left: the policy sees only what passed the shape rule.
    BeforeValidator(_callback_policy),
    _url_rule(rc.CALLBACK_URL_MAX),
    _doc("string", "An absolute http(s) URL", maxLength=rc.CALLBACK_URL_MAX, pattern=_HTTP_URL),
]
SmsSender = Annotated[
    str,
    _predicate_rule(rc.is_valid_sms_sender, FORMAT),
    _doc(
        "string",
        "One of the account's SMS senders: 3-11 Latin letters or digits, or 3-15 digits",
        pattern=r"^([A-Za-z0-9]{3,11}|[0-9]{3,15})$",
    ),
]
SmsText = Annotated[
    str,
    BeforeValidator(_sms_text),
    _doc(
        "string",
        f"At most {rc.SMS_GSM7_MAX} GSM-7 septets (an extension character takes two), or "
        f"{rc.SMS_UCS2_MAX} UTF-16 code units for other texts",
        minLength=1,
        maxLength=rc.SMS_GSM7_MAX,
    ),
]
ValidityHours = Annotated[
    int,
    _int_rule(rc.VALIDITY_HOURS_MIN, rc.VALIDITY_HOURS_MAX, between=True),
    _doc("integer", "Hours", minimum=rc.VALIDITY_HOURS_MIN, maximum=rc.VALIDITY_HOURS_MAX),
]
ValiditySeconds = Annotated[
    int,
    _int_rule(rc.VALIDITY_SECONDS_MIN, rc.VALIDITY_SECONDS_MAX, between=True),
    _doc(
        "integer",
        "Seconds; wins over validity",
        minimum=rc.VALIDITY_SECONDS_MIN,
        maximum=rc.VALIDITY_SECONDS_MAX,
    ),
]
TariffCode = Annotated[
    int, _int_rule(0, TARIFF_CODE_MAX, between=False), _doc("integer", minimum=0, maximum=TARIFF_CODE_MAX)
]
GroupId = Annotated[
    int, _int_rule(1, GROUP_ID_MAX, between=False), _doc("integer", minimum=1, maximum=GROUP_ID_MAX)
]
Flag = Annotated[bool, BeforeValidator(_boolean), _doc("boolean")]
StartAt = Annotated[
    datetime,
    BeforeValidator(_start_at),
    _doc(
        "string",
        "yyyy-mm-dd hh:mm:ss or ISO 8601; without an offset, in the account's time zone; from now to "
        f"23:59:59 there of the {rc.START_AT_MAX_DAYS}th day",
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ Tt][0-9]{2}:[0-9]{2}",
    ),
]


def _present(name: str, kind: str, *, absent: str | None = None, **others: Any) -> dict[str, Any]:
    """A JSON Schema alternative for a model's OpenAPI document: `name` given (not null), `absent`
    left out or null, and the `others` properties as described."""
    properties: dict[str, Any] = {name: {"type": kind}, **others}
    if absent is not None:
        properties[absent] = {"type": "null"}
    return {"required": [name], "properties": properties}


# --- models -----------------------------------------------------------------


def _blank_texts_are_null(data: Any, keys: tuple[str, ...]) -> Any:
    """Message texts (``keys``) that are only whitespace count as empty, so as null (`str.isspace` is
    False for "", which `_Model` handles for every field)."""
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and value.isspace():
                return {
                    k: None if k in keys and isinstance(v, str) and v.isspace() else v
                    for k, v in data.items()
                }
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # True for request bodies: any JSON that is not an object reads as {}.
    _is_body: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _empty_strings_are_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Most objects have no empty string: hand them on as they are (a campaign has 5000).
            if "" not in data.values():
                return data
            return {
                key: None if isinstance(value, str) and value == "" else value for key, value in data.items()
            }
        if cls._is_body and not isinstance(data, BaseModel):
            return {}
        return data


class RecipientIn(_Model):
    number: PhoneNumber
    reference_id: ReferenceId | None = None

    def to_domain(self) -> rc.Recipient:
        return rc.Recipient(number=self.number, reference_id=self.reference_id)


class SuggestionIn(_Model):
    """A button: `url` (link) xor `phone` (call). `type` may be left out (the
    pages never send it; the official client always does): it is inferred,
    and when given it must match."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _present("url", "string", absent="phone", type={"enum": ["link", None]}),
                _present("phone", "string", absent="url", type={"enum": ["call", None]}),
            ]
        }
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_texts(cls, data: Any) -> Any:
        return _blank_texts_are_null(data, ("text", "postback_data"))

    type: SuggestionType | None = None
    text: SuggestionText
    url: ActionUrl | None = None
    phone: PhoneNumber | None = None
    postback_data: PostbackData | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        if self.url is not None and self.phone is not None:
            raise _error(SUGGESTION_BOTH_ACTIONS, fields=["phone"])
        if self.url is None and self.phone is None:
            if self.type == "call":
                raise _error(SUGGESTION_PHONE_REQUIRED, fields=["phone"])
            raise _error(SUGGESTION_NO_ACTION, fields=["url"])
        if self.type is not None and self.type != self.kind:
            present = "url" if self.kind == "link" else "phone"
            raise _error(SUGGESTION_TYPE_MISMATCH, expected=self.kind, present=present, fields=["type"])
        return self

    @property
    def kind(self) -> rc.SuggestionKind:
        return "link" if self.url is not None else "call"

    def to_domain(self) -> rc.Suggestion:
        return rc.Suggestion(
            text=self.text, kind=self.kind, url=self.url, phone=self.phone, postback_data=self.postback_data
        )


class MediaIn(_Model):
    url: MediaUrl

    def to_domain(self) -> rc.Media:
        return rc.Media(url=self.url)


class CardIn(_Model):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [_present("text", "string"), _present("media", "object")]}
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_texts(cls, data: Any) -> Any:
        return _blank_texts_are_null(data, ("title", "text"))

    title: CardTitle | None = None
    text: CardText | None = None
    media: MediaIn | None = None
    suggestions: (
        Annotated[
            list[SuggestionIn],
            _items_rule(0, rc.MAX_SUGGESTIONS_PER_CARD),
            Field(max_length=rc.MAX_SUGGESTIONS_PER_CARD),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _media_or_text(self) -> Self:
        if self.media is None and self.text is None:
            raise _error(CARD_TEXT_OR_MEDIA, fields=["text"])
        return self

    def to_domain(self) -> rc.Card:
        return rc.Card(
            title=self.title,
            text=self.text,
            media=self.media.to_domain() if self.media is not None else None,
            suggestions=tuple(s.to_domain() for s in self.suggestions or ()),
        )


class OptionsIn(_Model):
    """Exactly one of `text` and `cards` (1 card: single card; 2+: carousel)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [_present("text", "string", absent="cards"), _present("cards", "array", absent="text")]
        }
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_texts(cls, data: Any) -> Any:
        return _blank_texts_are_null(data, ("text",))

    text: RcsText | None = None
    # The most cards is a setting (RCSGATE_MAX_CARDS), so the schema gives only the least.
    cards: Annotated[list[CardIn], BeforeValidator(_cards_items), Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _text_xor_cards(self) -> Self:
        if self.text is not None and self.cards is not None:
            raise _error(OPTIONS_BOTH)
        if self.text is None and self.cards is None:
            raise _error(OPTIONS_NEITHER)
        return self

    def to_domain(self) -> rc.RcsContent:
        if self.cards is not None:
            return rc.RcsContent(cards=tuple(card.to_domain() for card in self.cards))
        return rc.RcsContent(text=self.text)


class SmsAlternativeIn(_Model):
    @model_validator(mode="before")
    @classmethod
    def _blank_texts(cls, data: Any) -> Any:
        return _blank_texts_are_null(data, ("text",))

    text: SmsText
    sender: SmsSender
    validity: ValidityHours | None = None
    validity_seconds: ValiditySeconds | None = None
    check_stop_list: Flag | None = None

    def to_domain(self) -> rc.SmsAlternative:
        return rc.SmsAlternative(
            sender=self.sender,
            text=self.text,
            validity_seconds=rc.validity_to_seconds(self.validity, self.validity_seconds),
            check_stop_list=self.check_stop_list is not False,
        )


class AlternativeChannelIn(_Model):
    sms: SmsAlternativeIn | None = None


class _CommonFields(TypedDict):
    sender: str
    content: rc.RcsContent
    validity_seconds: int
    sms_alternative: rc.SmsAlternative | None
    callback_url: str | None
    tariff_code: int | None
    add_to_contact_book: bool
    check_stop_list: bool


class _SendRequest(_Model):
    """Fields shared by the three endpoints. `validity_seconds` and
    `callback_url` are accepted on all of them."""

    _is_body: ClassVar[bool] = True

    sender: Sender
    options: OptionsIn
    alternative_channel: AlternativeChannelIn | None = None
    callback_url: CallbackUrl | None = None
    tariff_code: TariffCode | None = None
    validity: ValidityHours | None = None
    validity_seconds: ValiditySeconds | None = None
    add_to_contact_book: Flag | None = None
    check_stop_list: Flag | None = None

    def _common(self) -> _CommonFields:
        sms = self.alternative_channel.sms if self.alternative_channel is not None else None
        return _CommonFields(
            sender=self.sender,
            content=self.options.to_domain(),
            validity_seconds=rc.validity_to_seconds(self.validity, self.validity_seconds),
            sms_alternative=sms.to_domain() if sms is not None else None,
            callback_url=self.callback_url,
            tariff_code=self.tariff_code,
            add_to_contact_book=self.add_to_contact_book is not False,
            check_stop_list=self.check_stop_list is not False,
        )


class SendRcsMessageRequest(_SendRequest):
    """POST /api/messages/rcs/send"""

    phone: RecipientIn

    def to_domain(self) -> rc.SingleRcsSend:
        return rc.SingleRcsSend(recipient=self.phone.to_domain(), **self._common())


class SendRcsCampaignRequest(_SendRequest):
    """POST /api/campaigns/rcs/send: numbers (and given reference_ids) unique."""

    phones: Annotated[
        list[RecipientIn],
        _items_rule(1, rc.CAMPAIGN_PHONES_MAX),
        Field(min_length=1, max_length=rc.CAMPAIGN_PHONES_MAX),
    ]
    start_at: StartAt | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        duplicates: list[str] = []
        numbers: set[str] = set()
        references: set[str] = set()
        for index, phone in enumerate(self.phones):
            if phone.number in numbers:
                duplicates.append(f"phones.{index}.number")
            numbers.add(phone.number)
            if phone.reference_id is not None:
                if phone.reference_id in references:
                    duplicates.append(f"phones.{index}.reference_id")
                references.add(phone.reference_id)
        if duplicates:
            raise _error(DISTINCT, fields=duplicates)
        return self

    def to_domain(self) -> rc.RcsCampaignSend:
        return rc.RcsCampaignSend(
            recipients=tuple(phone.to_domain() for phone in self.phones),
            start_at=self.start_at,
            **self._common(),
        )


class SendRcsCampaignGroupsRequest(_SendRequest):
    """POST /api/campaigns/rcs/send-groups: contact-list ids; a repeated id is
    accepted and counted once."""

    groups: Annotated[
        list[GroupId],
        _items_rule(1, rc.CAMPAIGN_GROUPS_MAX),
        Field(min_length=1, max_length=rc.CAMPAIGN_GROUPS_MAX),
    ]
    start_at: StartAt | None = None

    def to_domain(self) -> rc.RcsGroupsCampaignSend:
        return rc.RcsGroupsCampaignSend(
            group_ids=tuple(dict.fromkeys(self.groups)),
            start_at=self.start_at,
            **self._common(),
        )


# --- errors -----------------------------------------------------------------

# pydantic's own error types (FastAPI's query, path and header parameters, and plain model fields) in
# Laravel's words: type -> (template, {placeholder: the error's ctx key holding its value}).
_BUILTIN_MESSAGES: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "missing": (REQUIRED, {}),
    "model_type": (ARRAY, {}),
    "model_attributes_type": (ARRAY, {}),
    "dict_type": (ARRAY, {}),
    "list_type": (ARRAY, {}),
    "string_type": (STRING, {}),
    "string_unicode": (STRING, {}),
    "int_type": (INTEGER, {}),
    "int_parsing": (INTEGER, {}),
    "int_parsing_size": (INTEGER, {}),
    "int_from_float": (INTEGER, {}),
    "bool_type": (BOOLEAN, {}),
    "bool_parsing": (BOOLEAN, {}),
    "json_invalid": (INVALID_JSON, {}),
    "json_type": (INVALID_JSON, {}),
    "greater_than_equal": (MIN_NUMBER, {"min": "ge"}),
    "less_than_equal": (MAX_NUMBER, {"max": "le"}),
    "greater_than": (GREATER_THAN, {"value": "gt"}),
    "less_than": (LESS_THAN, {"value": "lt"}),
    "string_too_short": (MIN_CHARS, {"min": "min_length"}),
    "string_too_long": (MAX_CHARS, {"max": "max_length"}),
    "too_short": (MIN_ITEMS, {"min": "min_length"}),
    "too_long": (MAX_ITEMS, {"max": "max_length"}),
    "string_pattern_mismatch": (FORMAT, {}),
    "literal_error": (SELECTED_INVALID, {}),
    "enum": (SELECTED_INVALID, {}),
}
# Our own errors (PydanticCustomError of this type) carry their Laravel-style text already.
_OWN_TYPE: Final = "rcsgate"


def _display(path: str) -> str:
    return path.replace("_", " ")


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type"))
    message = str(error.get("msg", ""))
    if kind == _OWN_TYPE or _ATTRIBUTE in message:
        return message
    if error.get("input", "") is None:
        return REQUIRED
    template, placeholders = _BUILTIN_MESSAGES.get(kind, (INVALID, {}))
    context = error.get("ctx") or {}
    for placeholder, key in placeholders.items():
        template = template.replace("{" + placeholder + "}", str(context.get(key, "")))
    return template


def format_errors(
    errors: Iterable[Mapping[str, Any]], *, strip_prefix: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """BSG's `errors` object from pydantic error dicts (`ValidationError.errors()`,
    or FastAPI's `RequestValidationError.errors()` with strip_prefix=("body",)):
    the API's one 422 formatter, Laravel's wording for every error."""
    result: dict[str, list[str]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if strip_prefix and tuple(loc[: len(strip_prefix)]) == strip_prefix:
            loc = loc[len(strip_prefix) :]
        context = error.get("ctx") or {}
        fields = context.get(_FIELDS_CTX) if isinstance(context, Mapping) else None
        paths = [".".join([*loc, str(field)]) for field in fields] if fields else [".".join(loc)]
        message = _message(error)
        for path in paths:
            key = path or "body"
            text = message.replace(_ATTRIBUTE, _display(key))
            messages = result.setdefault(key, [])
            if text not in messages:
                messages.append(text)
    return result


def validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    """`{"phone.number": ["The phone.number format is invalid."], ...}` for the
    422 body `{"message": "The given data was invalid.", "errors": ...}`."""
    return format_errors(exc.errors(include_url=False))
