"""The console's campaign editor: its form, read into the body ``POST /api/campaigns/rcs/send`` (or
``send-groups``) takes, validated by the same request models. (The cost estimate shown before sending
is ``services.campaign_estimate``.)

The form is plain HTML (it works without JavaScript): cards and suggestions are numbered fields
(``card_0_title``, ``card_0_s1_text``, ...). ``to_body`` builds the API's JSON body from them, so a
campaign made in the console is accepted by exactly the rules and the service an API client meets.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rcsgate.api.bodies import parse
from rcsgate.api.rcs_requests import OptionsIn, SendRcsCampaignGroupsRequest, SendRcsCampaignRequest
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.phones import normalize_phone
from rcsgate.domain.rcs_content import CAMPAIGN_PHONES_MAX, DEFAULT_MAX_CARDS, MAX_SUGGESTIONS_PER_CARD
from rcsgate.services.sending import content_json

KINDS: Final = ("text", "card", "carousel")
SOURCES: Final = ("paste", "csv", "lists")
CSV_MAX_BYTES: Final = 2 * 1024 * 1024
PHONE_HEADERS: Final = ("phone", "number", "msisdn", "phone_number", "mobile", "tel")
REFERENCE_HEADERS: Final = ("reference_id", "reference", "ref")


@dataclass
class Line:
    """A recipient as read from the pasted text or the CSV file, with where it came from."""

    line: int
    number: str
    reference_id: str | None = None


@dataclass
class Recipients:
    lines: list[Line] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    where: str = "Line"  # how a position is named: a line of pasted text, a row of a CSV file


def _split_line(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;\t]", text)]


def pasted_recipients(text: str) -> Recipients:
    """One number per line, optionally followed by a comma and a reference id; blank lines skipped."""
    out = Recipients()
    for index, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parts = _split_line(raw)
        number = normalize_phone(parts[0].replace(" ", ""))
        if number is None:
            out.errors.append(
                f"Line {index}: {parts[0]!r} is not a phone number (9-15 digits, country code first)."
            )
            continue
        out.lines.append(Line(index, number, parts[1] if len(parts) > 1 and parts[1] else None))
    return out


def csv_recipients(text: str) -> Recipients:
    """A CSV of numbers: the column headed phone (or number, msisdn, ...) or else the first; a
    reference_id column is used when there is one. A first row without a phone number is a header."""
    out = Recipients(where="Row")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error:
        rows = list(csv.reader(io.StringIO(text)))
    phone_col, ref_col, start = 0, None, 0
    if rows:
        header = [h.strip().lower() for h in rows[0]]
        if not header or normalize_phone(header[0].replace(" ", "")) is None:
            start = 1
            phone_col = next((i for i, h in enumerate(header) if h in PHONE_HEADERS), 0)
            ref_col = next((i for i, h in enumerate(header) if h in REFERENCE_HEADERS), None)
    for index, row in enumerate(rows[start:], start=start + 1):
        if not any(cell.strip() for cell in row):
            continue
        value = row[phone_col].strip() if phone_col < len(row) else ""
        number = normalize_phone(value.replace(" ", ""))
        if number is None:
            out.errors.append(
                f"Row {index}: {value!r} is not a phone number (9-15 digits, country code first)."
            )
            continue
        ref = row[ref_col].strip() if ref_col is not None and ref_col < len(row) else ""
        out.lines.append(Line(index, number, ref or None))
    return out


def decode_upload(data: bytes) -> str:
    if len(data) > CSV_MAX_BYTES:
        raise InvalidInput.field("csv_file", f"The file may not be larger than {CSV_MAX_BYTES // 1024} KB.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput.field("csv_file", "The file is not text (UTF-8).")


# ------------------------------------------------------------------ the form


@dataclass
class Suggestion:
    text: str = ""
    type: str = "link"
    value: str = ""
    postback: str = ""

    @property
    def empty(self) -> bool:
        return not (self.text.strip() or self.value.strip() or self.postback.strip())


@dataclass
class CardForm:
    title: str = ""
    text: str = ""
    media: str = ""
    suggestions: list[Suggestion] = field(
        default_factory=lambda: [Suggestion() for _ in range(MAX_SUGGESTIONS_PER_CARD)]
    )

    @property
    def empty(self) -> bool:
        return not (self.title.strip() or self.text.strip() or self.media.strip()) and all(
            s.empty for s in self.suggestions
        )


@dataclass
class CampaignForm:
    """The editor's fields, as strings; ``read`` takes them from a submitted form."""

    sender: str = ""
    source: str = "paste"
    groups: list[str] = field(default_factory=list)
    phones_text: str = ""
    csv_data: str = ""
    csv_name: str = ""
    kind: str = "text"
    text: str = ""
    cards: list[CardForm] = field(default_factory=lambda: [CardForm()])
    sms_enabled: bool = False
    sms_sender: str = ""
    sms_text: str = ""
    sms_validity_hours: str = ""
    validity_hours: str = "72"
    start_at: str = ""
    callback_url: str = ""
    check_stop_list: bool = True
    add_to_contact_book: bool = True
    request_token: str = ""

    @classmethod
    def read(
        cls, data: Mapping[str, Any], getlist: Any, *, max_cards: int = DEFAULT_MAX_CARDS
    ) -> CampaignForm:
        def text(name: str, default: str = "") -> str:
            value = data.get(name, default)
            return value if isinstance(value, str) else default

        kind = text("kind", "text")
        kind = kind if kind in KINDS else "text"
        try:
            count = int(text("card_count", "1"))
        except ValueError:
            count = 1
        count = max(1, min(max_cards, count))
        cards: list[CardForm] = []
        for i in range(count):
            card = CardForm(
                title=text(f"card_{i}_title"), text=text(f"card_{i}_text"), media=text(f"card_{i}_media")
            )
            card.suggestions = [
                Suggestion(
                    text=text(f"card_{i}_s{j}_text"),
                    type="call" if text(f"card_{i}_s{j}_type") == "call" else "link",
                    value=text(f"card_{i}_s{j}_value"),
                    postback=text(f"card_{i}_s{j}_postback"),
                )
                for j in range(MAX_SUGGESTIONS_PER_CARD)
            ]
            cards.append(card)
        source = text("source", "paste")
        return cls(
            sender=text("sender"),
            source=source if source in SOURCES else "paste",
            groups=[g for g in getlist("groups") if isinstance(g, str)],
            phones_text=text("phones_text"),
            csv_data=text("csv_data"),
            csv_name=text("csv_name"),
            kind=kind,
            text=text("text"),
            cards=cards,
            sms_enabled=bool(text("sms_enabled")),
            sms_sender=text("sms_sender"),
            sms_text=text("sms_text"),
            sms_validity_hours=text("sms_validity_hours"),
            validity_hours=text("validity_hours", "72"),
            start_at=text("start_at"),
            callback_url=text("callback_url"),
            check_stop_list=bool(text("check_stop_list")),
            add_to_contact_book=bool(text("add_to_contact_book")),
            request_token=text("request_token"),
        )

    def used_cards(self) -> list[CardForm]:
        """The cards the content has: the first for a rich card; for a carousel, every card with
        something in it."""
        if self.kind == "card":
            return self.cards[:1]
        return [c for c in self.cards if not c.empty]

    def content_errors(self) -> dict[str, list[str]]:
        """What the editor itself refuses, before the API's rules."""
        if self.kind == "carousel" and len(self.used_cards()) < 2:
            return {
                "content": ["A carousel has at least 2 cards: fill in a second card, or choose Rich card."]
            }
        return {}

    def options(self) -> dict[str, Any]:
        """``options`` as the API takes it."""
        if self.kind == "text":
            return {"text": self.text}
        cards: list[dict[str, Any]] = []
        for card in self.used_cards():
            out: dict[str, Any] = {}
            if card.title.strip():
                out["title"] = card.title
            if card.text.strip():
                out["text"] = card.text
            if card.media.strip():
                out["media"] = {"url": card.media.strip()}
            suggestions = []
            for s in card.suggestions:
                if s.empty:
                    continue
                item: dict[str, Any] = {"type": s.type, "text": s.text}
                item["phone" if s.type == "call" else "url"] = s.value.strip()
                if s.postback.strip():
                    item["postback_data"] = s.postback
                suggestions.append(item)
            if suggestions:
                out["suggestions"] = suggestions
            cards.append(out)
        return {"cards": cards}

    def recipients(self) -> Recipients:
        if self.source == "csv":
            return csv_recipients(self.csv_data)
        if self.source == "paste":
            return pasted_recipients(self.phones_text)
        return Recipients()

    def group_ids(self) -> list[int]:
        return [int(g) for g in self.groups if g.isdigit()]

    def to_body(self, recipients: Recipients) -> dict[str, Any]:
        """The API request body; with ``source == "lists"`` the send-groups one."""
        body: dict[str, Any] = {"sender": self.sender, "options": self.options()}
        if self.source == "lists":
            body["groups"] = self.group_ids()
        else:
            body["phones"] = [
                {"number": r.number, **({"reference_id": r.reference_id} if r.reference_id else {})}
                for r in recipients.lines
            ]
        if self.sms_enabled:
            sms: dict[str, Any] = {"sender": self.sms_sender, "text": self.sms_text}
            if self.sms_validity_hours.strip():
                sms["validity"] = self.sms_validity_hours.strip()
            body["alternative_channel"] = {"sms": sms}
        if self.validity_hours.strip():
            body["validity"] = self.validity_hours.strip()
        if self.start_at.strip():
            # datetime-local: "2026-01-05T09:30"; a wall time in the account's time zone, as the API reads it.
            body["start_at"] = self.start_at.strip()
        if self.callback_url.strip():
            body["callback_url"] = self.callback_url.strip()
        body["check_stop_list"] = self.check_stop_list
        body["add_to_contact_book"] = self.add_to_contact_book
        return body


_SUGGESTION_PATH: Final = re.compile(r"(?:options\.)?cards\.([0-9]+)\.suggestions\.([0-9]+)\.([a-z_]+)")
_CARD_PATH: Final = re.compile(r"(?:options\.)?cards\.([0-9]+)\.(media\.url|[a-z_]+)")


def readable(message: str) -> str:
    """An API error message with its field path in the editor's words ("card 2 suggestion 1 text")."""
    message = _SUGGESTION_PATH.sub(
        lambda m: f"card {int(m[1]) + 1} suggestion {int(m[2]) + 1} {m[3].replace('_', ' ')}", message
    )
    message = _CARD_PATH.sub(lambda m: f"card {int(m[1]) + 1} {m[2].replace('.url', ' URL')}", message)
    return message.replace("options.text", "text").replace("alternative channel.sms.", "SMS ")


def readable_errors(errors: Mapping[str, list[str]]) -> dict[str, list[str]]:
    return {key: [readable(r) for r in reasons] for key, reasons in errors.items()}


def parse_content(
    form: CampaignForm, *, max_cards: int
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """The content as it would be stored (``content_json``) when valid, and the errors of the options."""
    if own := form.content_errors():
        return None, own
    try:
        parsed = parse(OptionsIn, form.options(), max_cards=max_cards)
    except InvalidInput as exc:
        return None, readable_errors(
            {f"options.{k}" if k != "body" else "options": v for k, v in exc.errors.items()}
        )
    return content_json(parsed.to_domain()), {}


def parse_send(
    form: CampaignForm, recipients: Recipients, *, max_cards: int, allow_private_callbacks: bool
) -> tuple[SendRcsCampaignRequest | SendRcsCampaignGroupsRequest, dict[str, Any]]:
    """The validated request (the API's model) and the body it was read from; InvalidInput otherwise."""
    if own := form.content_errors():
        raise InvalidInput(own)
    if recipients.errors:
        raise InvalidInput({"recipients": recipients.errors})
    if form.source == "csv" and not form.csv_data.strip():
        raise InvalidInput.field("recipients", "Choose a CSV file of phone numbers.")
    if form.source != "lists" and not recipients.lines:
        raise InvalidInput.field("recipients", "Give at least one phone number.")
    if len(recipients.lines) > CAMPAIGN_PHONES_MAX:
        raise InvalidInput.field(
            "recipients",
            f"A campaign may have at most {CAMPAIGN_PHONES_MAX} recipients; these are {len(recipients.lines)}.",
        )
    body = form.to_body(recipients)
    model: type[SendRcsCampaignRequest] | type[SendRcsCampaignGroupsRequest] = (
        SendRcsCampaignGroupsRequest if form.source == "lists" else SendRcsCampaignRequest
    )
    try:
        parsed = parse(model, body, max_cards=max_cards, allow_private_callbacks=allow_private_callbacks)
    except InvalidInput as exc:
        raise InvalidInput(readable_errors(with_lines(exc.errors, recipients))) from exc
    return parsed, body


_PHONE_KEY: Final = re.compile(r"phones\.([0-9]+)\.(number|reference_id)")
_PHONE_PATH: Final = re.compile(r"phones\.[0-9]+\.")


def with_lines(errors: Mapping[str, list[str]], recipients: Recipients) -> dict[str, list[str]]:
    """The API's errors (of the request model or the service), those about a phone told by the line
    or row it came from ("Line 3: The reference id has already been taken")."""
    out: dict[str, list[str]] = {}
    for key, reasons in errors.items():
        match = _PHONE_KEY.fullmatch(key)
        if match and int(match[1]) < len(recipients.lines):
            where = f"{recipients.where} {recipients.lines[int(match[1])].line}"
            out.setdefault("recipients", []).extend(f"{where}: {_PHONE_PATH.sub('', r)}" for r in reasons)
        else:
            out.setdefault(key, []).extend(reasons)
    return out
