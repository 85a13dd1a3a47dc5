"""Request bodies that are validated by hand (so a validation context and Laravel-style messages apply)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from rcsgate.api.rcs_requests import validation_errors
from rcsgate.domain.errors import InvalidInput
from rcsgate.services.repeats import RequestKey

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput({"body": ["The request body is not valid JSON."]}) from exc


def parse(model: type[M], body: Any, *, max_cards: int) -> M:
    try:
        return model.model_validate(body, context={"max_cards": max_cards})
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc)) from exc


def request_key(path: str, body: Any, idempotency_key: str | None) -> RequestKey:
    """A request's identity for duplicate detection: path plus the body with its keys in a fixed order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()
    return RequestKey(body_hash=digest, idempotency_key=idempotency_key)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a hand-validated body (app.py moves its definitions to components)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
