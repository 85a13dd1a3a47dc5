"""BSG RCS content, as stored with a message, to Google's AgentMessage, and Google's content limits.

Pure: standard library, ``rcsgate.domain`` and ``protocol`` only.

The stored content is what ``services.sending.content_json`` wrote: ``{"text": ...}`` or
``{"cards": [{"title"?, "text"?, "media"?: {"url"}, "suggestions"?: [{"type", "text", "url"? |
"phone"?, "postback_data"?}]}]}``. Absent optional keys are left out there, but a ``null`` is read
as "absent" everywhere here, so content written by hand or by an older version maps the same way.
A text message may also carry message-level ``suggestions`` (chips, card index 0 in the postback
data, see ``protocol.postback``): the API does not accept them today, the mapping and the limits
are ready for them.

Google's limits (``limit_errors``) are checked when a send through an RBM-routed agent is accepted,
so that what Google would refuse is a 422 for the customer instead of a failed message later. BSG's
own rules are stricter for most of them today; they are all encoded anyway, because BSG's limits are
configurable (the number of cards) or may change. Sources: /work/shared/research/google-rbm.md §1
("Limits"), which cites Google's send guide [G-send] and the generated client [EX2].

Lengths are counted in characters (code points), as Google's reference states them ("Maximum 2000
characters"). Dialogflow's RBM wrapper says "bytes" for the card description; Google's own API
reference is taken as the authority, and ``_length`` is the one place to change if Google proves
to count otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from rcsgate.connectors.rbm import protocol
from rcsgate.domain import json_text

__all__ = [
    "AGENT_MESSAGE_MAX_BYTES",
    "CARD_DESCRIPTION_MAX",
    "CARD_TITLE_MAX",
    "CAROUSEL_MAX_CARDS",
    "CAROUSEL_MIN_CARDS",
    "CHIPS_MAX",
    "MEDIA_URL_SCHEME",
    "OPEN_URL_MAX",
    "POSTBACK_DATA_MAX",
    "SUGGESTIONS_PER_CARD_MAX",
    "SUGGESTION_TEXT_MAX",
    "TEXT_MAX",
    "TTL_MAX_SECONDS",
    "TrafficType",
    "agent_message",
    "encoded_size",
    "limit_errors",
    "suggestion_of",
]

# --- Google's limits (research note §1, "Limits") -----------------------------------------------

TEXT_MAX: Final = 3072  # contentMessage.text [G-send][EX2 AgentContentMessage.java]
SUGGESTION_TEXT_MAX: Final = 25  # a suggestion's label [G-send][EX2 SuggestedAction.java]
POSTBACK_DATA_MAX: Final = 2048  # postbackData [G-send][EX2 SuggestedAction.java]
# The guide says 4, the 2025 generated client 10: the note says to enforce the guide's 4 [G-send].
SUGGESTIONS_PER_CARD_MAX: Final = 4
CHIPS_MAX: Final = 11  # contentMessage.suggestions [G-send][EX2 AgentContentMessage.java]
CAROUSEL_MIN_CARDS: Final = 2  # [G-send]; one card is sent as a standalone card instead
CAROUSEL_MAX_CARDS: Final = 10  # [G-send]; BSG's card limit is a setting and may be higher
CARD_TITLE_MAX: Final = 200  # cardContent.title [EX2 CardContent.java]
CARD_DESCRIPTION_MAX: Final = 2000  # cardContent.description [EX2 CardContent.java]
OPEN_URL_MAX: Final = 2048  # openUrlAction.url (and fallbackUrl) [EX2 SuggestedAction.java]
# Google fetches card media itself and takes https URLs only (stated in the connector brief beside
# the note's §1 limits; the note's table itself does not list it).
MEDIA_URL_SCHEME: Final = "https"
# The whole stringified AgentMessage: at most 250 KB [G-send]. KB is read as 1000 bytes,
# the stricter of the two readings, and the size as UTF-8 bytes of compact JSON: Google parses the
# JSON, so how we escape characters on the wire should not count against us.
AGENT_MESSAGE_MAX_BYTES: Final = 250_000
TTL_MAX_SECONDS: Final = 15 * 24 * 3600  # ttl/expireTime at most 15 days [G-send]

# The longest message id ``protocol.message_uuid`` can carry: checks made before the message has
# an id (accept time) use it so they hold for whatever id the message gets.
_WORST_MESSAGE_ID: Final = (1 << 62) - 1

# --- AgentMessage layout choices --------------------------------------------------------------

# BSG cards carry no layout. A VERTICAL card needs no thumbnailImageAlignment and is valid with or
# without media (HORIZONTAL pairs media with text); MEDIUM media height and carousel width are the
# middle sizes, valid together in standalone cards and carousels alike.
_CARD_ORIENTATION: Final = "VERTICAL"
_MEDIA_HEIGHT: Final = "MEDIUM"
_CAROUSEL_WIDTH: Final = "MEDIUM"

TrafficType = Literal["AUTHENTICATION", "TRANSACTION", "PROMOTION", "SERVICEREQUEST", "ACKNOWLEDGEMENT"]

# --- Laravel-style messages (the same wording as rcsgate.api.rcs_requests) -----------------------

_MAX_CHARS: Final = "The {attribute} may not be greater than {max} characters."
_MAX_ITEMS: Final = "The {attribute} may not have more than {max} items."
_STARTS_WITH: Final = "The {attribute} must start with one of the following: {values}."
_MAX_KILOBYTES: Final = "The {attribute} may not be greater than {max} kilobytes."


# --- reading stored content -------------------------------------------------------------------


def _opt_str(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"RCS content: {key} must be a string")
    return value


def _mappings(node: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The objects of the list ``node[key]``; [] when absent or null."""
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f"RCS content: {key} must be a list of objects")
    return value


def _media_url(card: Mapping[str, Any]) -> str | None:
    media = card.get("media")
    if media is None:
        return None
    if not isinstance(media, Mapping):
        raise ValueError("RCS content: media must be an object")
    return _opt_str(media, "url")


def _phone(suggestion: Mapping[str, Any]) -> str | None:
    phone = _opt_str(suggestion, "phone")
    return phone.lstrip("+") if phone is not None else None


def _cards(content: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The cards of card content, None for text content; ValueError for neither or both."""
    text = content.get("text")
    cards = _mappings(content, "cards")
    if (text is None) == (not cards):
        raise ValueError("RCS content is either a text or cards")
    if text is not None and not isinstance(text, str):
        raise ValueError("RCS content: text must be a string")
    return cards or None


def _length(value: str) -> int:
    return len(value)


# --- AgentMessage -------------------------------------------------------------------------------


def _suggestion(message_id: int, card: int, index: int, suggestion: Mapping[str, Any]) -> dict[str, Any]:
    text = _opt_str(suggestion, "text")
    if text is None:
        raise ValueError("RCS content: a suggestion needs a text")
    url = _opt_str(suggestion, "url")
    phone = _phone(suggestion)
    action: dict[str, Any] = {"text": text, "postbackData": protocol.postback(message_id, card, index)}
    # BSG's validation allows exactly one of url and phone; `type` only breaks a tie in content
    # stored by other means, so that a call button never turns into a link.
    if phone is not None and (url is None or suggestion.get("type") == "call"):
        action["dialAction"] = {"phoneNumber": f"+{phone}"}
    elif url is not None:
        action["openUrlAction"] = {"url": url}
    else:
        raise ValueError("RCS content: a suggestion needs a url or a phone")
    return {"action": action}


def _suggestions(
    message_id: int, card: int, suggestions: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    return [_suggestion(message_id, card, index, s) for index, s in enumerate(suggestions)]


def _card_content(message_id: int, index: int, card: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    title = _opt_str(card, "title")
    if title is not None:
        out["title"] = title
    description = _opt_str(card, "text")
    if description is not None:
        out["description"] = description
    media_url = _media_url(card)
    if media_url is not None:
        out["media"] = {"height": _MEDIA_HEIGHT, "contentInfo": {"fileUrl": media_url}}
    suggestions = _mappings(card, "suggestions")
    if suggestions:
        out["suggestions"] = _suggestions(message_id, index, suggestions)
    return out


def _content_message(message_id: int, content: Mapping[str, Any]) -> dict[str, Any]:
    cards = _cards(content)
    if cards is None:
        message: dict[str, Any] = {"text": content["text"]}
        chips = _mappings(content, "suggestions")
        if chips:
            message["suggestions"] = _suggestions(message_id, 0, chips)
        return message
    if len(cards) == 1:
        standalone = {
            "cardOrientation": _CARD_ORIENTATION,
            "cardContent": _card_content(message_id, 0, cards[0]),
        }
        return {"richCard": {"standaloneCard": standalone}}
    carousel = {
        "cardWidth": _CAROUSEL_WIDTH,
        "cardContents": [_card_content(message_id, index, card) for index, card in enumerate(cards)],
    }
    return {"richCard": {"carouselCard": carousel}}


def agent_message(
    message_id: int,
    content: Mapping[str, Any],
    *,
    ttl_seconds: int | None,
    traffic_type: TrafficType | None = None,
) -> dict[str, Any]:
    """Google's AgentMessage for our message ``message_id`` with the stored ``content``.

    Every suggestion's ``postbackData`` is ``protocol.postback(message_id, card, suggestion)``; the
    customer's own postback data stays with us (see ``suggestion_of``). ``ttl_seconds`` (1 s to 15
    days) becomes ``ttl``; None sends none, leaving Google's own retention. The output has no nulls
    and is the same for the same input, key order included.

    ``messageTrafficType`` is left out unless ``traffic_type`` is given. Google says it is optional
    for now and will become required, and that multi-use agents get an error without it [G-send].
    It is not a property of the content: it must match what the agent was registered for (a
    promotional text sent as TRANSACTION is misclassified, with billing and compliance
    consequences), so it is for the connector to pass from the agent's settings, not for this
    mapping to guess.

    ValueError for content that is neither a text nor cards, or a suggestion without a text or an
    action. Google's limits are not checked here: ``limit_errors`` does that when the send is
    accepted.
    """
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
        raise ValueError("message id must be a positive integer")
    out: dict[str, Any] = {"contentMessage": _content_message(message_id, content)}
    if traffic_type is not None:
        out["messageTrafficType"] = traffic_type
    if ttl_seconds is not None:
        if isinstance(ttl_seconds, bool) or not 1 <= ttl_seconds <= TTL_MAX_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {TTL_MAX_SECONDS}")
        out["ttl"] = f"{ttl_seconds}s"
    return out


def encoded_size(message: Mapping[str, Any]) -> int:
    """The size of an AgentMessage as ``AGENT_MESSAGE_MAX_BYTES`` counts it."""
    return len(json_text.dumps_compact(message))


# --- taps ---------------------------------------------------------------------------------------


def suggestion_of(content: Mapping[str, Any], card: int, suggestion: int) -> tuple[str, str | None] | None:
    """The customer's own (text, postback_data) of suggestion ``suggestion`` of card ``card`` (card 0
    for a text message's chips), for the click webhook; None when the content has no such
    suggestion or cannot be read."""
    if card < 0 or suggestion < 0:
        return None
    try:
        cards = _cards(content)
        if cards is None:
            suggestions = _mappings(content, "suggestions") if card == 0 else []
        else:
            suggestions = _mappings(cards[card], "suggestions") if card < len(cards) else []
        if suggestion >= len(suggestions):
            return None
        chosen = suggestions[suggestion]
        text = _opt_str(chosen, "text")
        postback_data = _opt_str(chosen, "postback_data")
    except ValueError:
        return None
    return (text, postback_data) if text is not None else None


# --- limits -------------------------------------------------------------------------------------


class _Errors:
    """Collects field errors in the API's 422 shape: keys are dotted request paths, messages name
    the path with underscores shown as spaces, as ``rcs_requests.format_errors`` does."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, path: str, template: str, **values: Any) -> None:
        text = template.format(attribute=path.replace("_", " "), **values)
        messages = self.fields.setdefault(path, [])
        if text not in messages:
            messages.append(text)

    def max_chars(self, path: str, value: str | None, limit: int) -> None:
        if value is not None and _length(value) > limit:
            self.add(path, _MAX_CHARS, max=limit)


def _check_suggestions(
    errors: _Errors, path: str, card: int, suggestions: Sequence[Mapping[str, Any]], limit: int
) -> None:
    if len(suggestions) > limit:
        errors.add(path, _MAX_ITEMS, max=limit)
    for index, suggestion in enumerate(suggestions):
        at = f"{path}.{index}"
        errors.max_chars(f"{at}.text", _opt_str(suggestion, "text"), SUGGESTION_TEXT_MAX)
        errors.max_chars(f"{at}.url", _opt_str(suggestion, "url"), OPEN_URL_MAX)
        # Google gets our postback data, not the customer's: it must fit for any message id.
        ours = protocol.postback(_WORST_MESSAGE_ID, card, index)
        if _length(ours) > POSTBACK_DATA_MAX:
            errors.add(f"{at}.postback_data", _MAX_CHARS, max=POSTBACK_DATA_MAX)


def _is_https(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() == MEDIA_URL_SCHEME and bool(parts.netloc)


def limit_errors(content: Mapping[str, Any]) -> dict[str, list[str]]:
    """Google's limits that ``content`` (as stored) breaks, in the API's 422 ``errors`` shape:
    ``{"options.cards.0.media.url": ["The options.cards.0.media.url must start with one of the
    following: https://."]}``. Empty when Google would take it.

    Meant for content that passed BSG's validation; content that is not even a text or cards is a
    ValueError (the request rules own that message).
    """
    errors = _Errors()
    cards = _cards(content)
    if cards is None:
        errors.max_chars("options.text", content["text"], TEXT_MAX)
        _check_suggestions(errors, "options.suggestions", 0, _mappings(content, "suggestions"), CHIPS_MAX)
    else:
        # One card is a standalone card, so the carousel minimum cannot be broken by valid content.
        if len(cards) > CAROUSEL_MAX_CARDS:
            errors.add("options.cards", _MAX_ITEMS, max=CAROUSEL_MAX_CARDS)
        for index, card in enumerate(cards):
            path = f"options.cards.{index}"
            errors.max_chars(f"{path}.title", _opt_str(card, "title"), CARD_TITLE_MAX)
            errors.max_chars(f"{path}.text", _opt_str(card, "text"), CARD_DESCRIPTION_MAX)
            media_url = _media_url(card)
            if media_url is not None and not _is_https(media_url):
                errors.add(f"{path}.media.url", _STARTS_WITH, values=f"{MEDIA_URL_SCHEME}://")
            suggestions = _mappings(card, "suggestions")
            _check_suggestions(errors, f"{path}.suggestions", index, suggestions, SUGGESTIONS_PER_CARD_MAX)
    # The whole message, measured as it will be sent: the longest possible postback data and ttl.
    worst = agent_message(
        _WORST_MESSAGE_ID, content, ttl_seconds=TTL_MAX_SECONDS, traffic_type="ACKNOWLEDGEMENT"
    )
    if encoded_size(worst) > AGENT_MESSAGE_MAX_BYTES:
        errors.add("options", _MAX_KILOBYTES, max=AGENT_MESSAGE_MAX_BYTES // 1000)
    return errors.fields
