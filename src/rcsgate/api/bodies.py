"""Request bodies: the one JSON reader of every route, and hand validation (so a validation context and
Laravel-style messages apply).

``decode_json`` is where every request body becomes Python values, on every route that takes one (the
single-send fast lane included). Besides malformed JSON it refuses, with a 422 naming the field:

- strings that are not Unicode text: an unpaired UTF-16 surrogate escape (``"\\ud800"``) decodes to a
  Python string that cannot be encoded, hashed or stored (it was a 500 wherever it went);
- NUL characters (``"\\u0000"``): PostgreSQL cannot store them in text, and SQLite would keep them
  where no other client expects them, so both engines refuse them alike;
- nesting deeper than ``MAX_DEPTH`` levels (in any field, known or not): deeper structures run the
  standard library's JSON encoder and pydantic into Python's recursion limit.

Cost on the hot path (a well-formed body): orjson parses it (a fifth of ``json.loads``' time) and four
byte scans rule the faults out, half of what ``json.loads`` alone took (2 against 4 µs for a single
send); only a body that might hold one of the faults is walked in Python.
orjson refuses what the standard library used to accept in a few cases (NaN and Infinity, numbers beyond
64 bits, which it would also read as floats, byte-order marks, UTF-16 bodies): such bodies, and any
orjson refuses, are read again by ``json.loads`` so that they mean what they meant before.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from rcsgate.api.rcs_requests import (
    ALLOW_PRIVATE_CALLBACKS_CONTEXT_KEY,
    INVALID_JSON,
    LONE_SURROGATE,
    MAX_CARDS_CONTEXT_KEY,
    NUL_CHARACTER,
    format_errors,
    validation_errors,
)
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.json_text import may_hold_long_number
from rcsgate.services.repeats import RequestKey

M = TypeVar("M", bound=BaseModel)

# Far above any request the API describes (a send body nests 6 levels: options.cards.N.suggestions.N.x),
# far below Python's recursion limit (1000 frames, which json.dumps and pydantic share with the caller).
MAX_DEPTH: Final = 64
TOO_DEEP: Final = f"The request body may not be nested more than {MAX_DEPTH} levels deep."

_NUL_ESCAPE: Final = b"\\u0000"  # the only way a NUL can be in valid JSON


def decode_json(raw: bytes) -> Any:
    """The request body's JSON value; InvalidInput (422) when it is not JSON, holds a string that is not
    storable text, or nests more than MAX_DEPTH levels."""
    suspect: bool
    # orjson reads an integer beyond 64 bits as a float: such a body goes to json.loads.
    if may_hold_long_number(raw):
        value, suspect = _decode_stdlib(raw), True
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # Lone surrogates land here too: json.loads reads them, and the walk below names the field.
            value, suspect = _decode_stdlib(raw), True
        else:
            suspect = _NUL_ESCAPE in raw
    if suspect:
        errors = body_faults(value)
        if errors:
            raise InvalidInput(errors)
    elif raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(value):
        raise InvalidInput({"body": [TOO_DEEP]})
    return value


def _decode_stdlib(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise InvalidInput({"body": [TOO_DEEP]}) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidInput({"body": [INVALID_JSON]}) from exc


def _too_deep(value: Any) -> bool:
    """More than MAX_DEPTH levels of arrays and objects, counted level by level (no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return False


def _string_fault(text: str) -> str | None:
    if "\x00" in text:
        return NUL_CHARACTER
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return LONE_SURROGATE
    return None


def _printable(key: str) -> str:
    """A key as it can be shown in the answer (which is UTF-8 JSON): faulty characters escaped."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def body_faults(value: Any) -> dict[str, list[str]]:
    """The 422 ``errors`` for a decoded body: every string (value or key) holding a NUL or an unpaired
    surrogate, by its dotted path; or only the nesting, when it is deeper than MAX_DEPTH."""
    if _too_deep(value):
        return {"body": [TOO_DEEP]}
    faults: list[dict[str, Any]] = []
    # (node, its path, what is wrong with its own key): popped in the body's order.
    stack: list[tuple[Any, tuple[str | int, ...], str | None]] = [(value, (), None)]
    while stack:
        node, path, key_fault = stack.pop()
        if key_fault is not None:
            faults.append({"type": "rcsgate", "loc": path, "msg": key_fault})
        if isinstance(node, str):
            fault = _string_fault(node)
            if fault is not None:
                faults.append({"type": "rcsgate", "loc": path, "msg": fault})
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                fault = _string_fault(key)
                children.append((item, (*path, key if fault is None else _printable(key)), fault))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((node[index], (*path, index), None) for index in range(len(node) - 1, -1, -1))
    return format_errors(faults)


async def json_body(request: Request) -> Any:
    return decode_json(await request.body())


def parse(
    model: type[M], body: Any, *, max_cards: int | None = None, allow_private_callbacks: bool = False
) -> M:
    """``body`` validated as ``model``; a 422 (InvalidInput) otherwise. ``allow_private_callbacks`` is
    RCSGATE_WEBHOOKS_ALLOW_PRIVATE: a ``callback_url`` is judged by the webhook URL policy."""
    context: dict[str, Any] = {ALLOW_PRIVATE_CALLBACKS_CONTEXT_KEY: allow_private_callbacks}
    if max_cards is not None:
        context[MAX_CARDS_CONTEXT_KEY] = max_cards
    try:
        return model.model_validate(body, context=context)
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc)) from exc


def request_key(path: str, body: Any, idempotency_key: str | None) -> RequestKey:
    """A request's identity for duplicate detection: path plus the body with its keys in a fixed order."""
    try:
        # ~10 times faster than json.dumps on a 5000-phone campaign; the same compact form.
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits (decode_json lets them through)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(path.encode() + b"\n" + canonical).hexdigest()
    return RequestKey(body_hash=digest, idempotency_key=idempotency_key)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a hand-validated body (app.py moves its definitions to components)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
