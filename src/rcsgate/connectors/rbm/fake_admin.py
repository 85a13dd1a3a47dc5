"""The local RBM's own routes under ``/v1/local`` (not Google's), for tests, demos and docs:

* ``GET  /v1/local/submits[?messageId=&agentId=]`` — the journal per messageId: submits, answered,
  accepted, outcome, delivered, revoked (and by whom), revoke requests, each attempt's fault;
* ``GET  /v1/local/stats`` — pending / queued / pushed events, push failures, tokens, faults;
* ``GET|PUT /v1/local/faults`` — ``RbmFaults``; a PUT names only the knobs it changes;
* ``POST /v1/local/tokens:expire`` — every access token ends now (the next call gets 401);
* ``GET|PUT /v1/local/webhook`` — ``{"url": ...}``, null to keep events queued;
* ``POST /v1/local/webhook:validate`` — Google's handshake, optional body ``{"url": ...}``;
* ``GET  /v1/local/events`` — due events not pushed yet (all of them while there is no webhook);
* ``POST /v1/local/phones/{E164}/userMessages`` — a user writes: ``{"agentId"?, and one of "text",
  "location": {latitude, longitude}, "userFile": {payload: {fileUri, mimeType, ...}},
  "suggestionResponse": {text, postbackData}}``.

Errors are Google-style JSON errors, 400 for anything the caller got wrong.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from rcsgate.connectors.rbm.fake_push import RbmFaults
from rcsgate.logging_setup import get_logger

if TYPE_CHECKING:
    from rcsgate.connectors.rbm.fake import LocalRbm

log = get_logger("rcsgate.rbm_local")

_USER_MESSAGE_FIELDS = frozenset({"agentId", "text", "location", "userFile", "suggestionResponse"})


def bad_request(message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}, status=400
    )


async def _json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw and empty_ok:
        return {}
    body = json.loads(raw)  # a JSONDecodeError is a ValueError, answered 400 by the callers
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


class LocalRoutes:
    def __init__(self, rbm: LocalRbm) -> None:
        self.rbm = rbm

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/local/submits", self.submits),
            web.get("/v1/local/stats", self.stats),
            web.get("/v1/local/faults", self.faults),
            web.put("/v1/local/faults", self.set_faults),
            web.post("/v1/local/tokens:expire", self.expire_tokens),
            web.get("/v1/local/webhook", self.webhook),
            web.put("/v1/local/webhook", self.set_webhook),
            web.post("/v1/local/webhook:validate", self.validate_webhook),
            web.get("/v1/local/events", self.events),
            web.post("/v1/local/phones/{phone}/userMessages", self.user_message),
        ]

    async def submits(self, request: web.Request) -> web.Response:
        wanted = request.query.getall("messageId", [])
        return web.json_response({"messages": self.rbm.journal_entries(wanted, request.query.get("agentId"))})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.rbm.stats_snapshot())

    async def faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.rbm.faults.model_dump())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            patch = await _json_object(request)
            self.rbm.faults = RbmFaults.model_validate({**self.rbm.faults.model_dump(), **patch})
        except (ValueError, ValidationError) as exc:
            return bad_request(str(exc))
        log.info("rbm_local_faults_changed", **self.rbm.faults.model_dump())
        return web.json_response(self.rbm.faults.model_dump())

    async def expire_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"expired": self.rbm.expire_tokens()})

    async def webhook(self, request: web.Request) -> web.Response:
        return web.json_response({"url": self.rbm.webhook_url})

    async def set_webhook(self, request: web.Request) -> web.Response:
        try:
            url = (await _json_object(request)).get("url")
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string or null")
            self.rbm.set_webhook(url)
        except ValueError as exc:
            return bad_request(str(exc))
        return web.json_response({"url": self.rbm.webhook_url})

    async def validate_webhook(self, request: web.Request) -> web.Response:
        try:
            url = (await _json_object(request, empty_ok=True)).get("url")
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string")
            result = await self.rbm.validate_webhook(url)
        except ValueError as exc:
            return bad_request(str(exc))
        return web.json_response(result.view())

    async def events(self, request: web.Request) -> web.Response:
        return web.json_response({"events": self.rbm.queued_events()})

    async def user_message(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            unknown = set(body) - _USER_MESSAGE_FIELDS
            if unknown:
                raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
            agent_id = body.get("agentId")
            if agent_id is not None and not isinstance(agent_id, str):
                raise ValueError("agentId must be a string")
            event = self.rbm.inject_user_message(
                request.match_info["phone"],
                agent_id=agent_id,
                text=body.get("text"),
                location=body.get("location"),
                user_file=body.get("userFile"),
                suggestion_response=body.get("suggestionResponse"),
            )
        except ValueError as exc:  # FieldViolation is a ValueError too
            return bad_request(str(exc))
        return web.json_response({"event": event})
