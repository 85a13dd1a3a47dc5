"""A local Google RCS Business Messaging ("local RBM"): the real RBM connector, with google-auth and
a service-account key whose ``token_uri`` points here, runs against it unchanged, before Google has
approved an agent and in tests. HTTP shapes, limits and events follow Google's documentation
(docs/connectors/rbm.md); what happens to a message follows the simulator's rules
(connectors/simulation.py), so the RBM path and the simulator path tell the same story.

Google's API, on one aiohttp application (``LocalRbm.app``, or ``mount()`` on another one):

* ``POST /token`` — the OAuth2 JWT-bearer grant (see ``fake_auth``).
* ``POST /v1/phones/{E164}/agentMessages?messageId=&agentId=`` — bearer token required (401
  UNAUTHENTICATED), the AgentMessage checked as Google checks it (400 INVALID_ARGUMENT naming the
  field, see ``fake_validate``), then the outcome by the phone's last four digits:

      9990, 9996  404 NOT_FOUND (not an RCS user / agent not launched on the carrier)
      9998        403 PERMISSION_DENIED (agent not launched and the number is not a tester)
      9995        400 INVALID_ARGUMENT (content rejected)
      9997        503 UNAVAILABLE for the first 3 submits of a messageId, then accepted
      9991        accepted; a TTL_EXPIRATION_REVOKED server event instead of DELIVERED
      9992        accepted; no event at all
      9993        accepted; DELIVERED only
      9994        accepted; DELIVERED, READ, then the user taps the first suggestion of the first
                  card (or the first chip): a user message with ``suggestionResponse``
      other       accepted; DELIVERED, then READ

  An accepted message answers 200 with the AgentMessage, ``name`` and ``sendTime``. A messageId
  the same agent already used answers the first answer again and schedules nothing (Google
  ignores such a message), or 409 ALREADY_EXISTS with ``duplicate_status=409``.
* ``DELETE /v1/phones/{E164}/agentMessages/{messageId}?agentId=`` — 200 ``{}`` while the message
  is not delivered (its pending events are cancelled, it never gets any), 404 NOT_FOUND once it is
  (its DELIVERED is due on the clock, pushed or not), once TTL revoked it, or for an unknown id.

Events are pushed one per POST to ``webhook_url`` in Google's signed Pub/Sub envelope
(``protocol.envelope``), in due order through one queue, each retried with capped exponential
backoff until the receiver answers exactly 200. As at Google, one failing event holds back all
behind it, and nothing is dropped while running (Google gives up after 7 days; this never does).
Without a webhook URL events wait in the queue (``GET /v1/local/events``) until one is set.

Faults (``RbmFaults``, ``GET/PUT /v1/local/faults``): the simulator service's submit faults (5xx,
TCP reset, processed-then-never-answered, black hole, slow) decided the same reproducible way, plus
``duplicate_rate`` (an event pushed a second time, same eventId, same envelope) and
``out_of_order_rate`` (a message's DELIVERED held back until after its READ).

Local routes under ``/v1/local`` (fake_admin; not Google's) show the submit journal and stats, set
faults and the webhook, expire tokens, run Google's webhook handshake and inject user messages.

Timing is the simulator's, on the injected clock; a test moving a ``ManualClock`` calls ``wake()``
so the pusher looks at once instead of at its next idle tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from aiohttp import web

from rcsgate.clock import Clock, SystemClock
from rcsgate.connectors.base import ClickReport, OutboundMessage, Report, StatusReport
from rcsgate.connectors.rbm.fake_admin import LocalRoutes
from rcsgate.connectors.rbm.fake_auth import (
    PublicKeyLike,
    TokenAuthority,
    TokenRefused,
    key_of,
    make_service_account_key,
)
from rcsgate.connectors.rbm.fake_events import (
    chosen_suggestion_type,
    click_content,
    rfc3339,
    server_event,
    status_event,
    user_message,
)
from rcsgate.connectors.rbm.fake_push import (
    EventPusher,
    HandshakeResult,
    Outgoing,
    RbmFaults,
    random_client_token,
)
from rcsgate.connectors.rbm.fake_validate import (
    FieldViolation,
    check_agent_id,
    check_agent_message,
    check_message_id,
    check_phone,
    parse_duration,
    parse_time,
)
from rcsgate.connectors.simulation import (
    TRANSIENT_FAILURES,
    Outcome,
    Profile,
    ReportQueue,
    SimulatedUpstream,
    schedule,
)
from rcsgate.connectors.simulator_service import Attempt, Decision, _answer, _reset, decide
from rcsgate.connectors.simulator_wire import CLIENT_HEADER
from rcsgate.domain import json_text
from rcsgate.logging_setup import get_logger

__all__ = ["HandshakeResult", "LocalRbm", "RbmFaults", "make_service_account_key"]

log = get_logger("rcsgate.rbm_local")

# Google keeps undelivered messages 30 days; the fake only needs some expiry for OutboundMessage.
_DEFAULT_LIFETIME: Final = timedelta(days=30)
_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    503: "UNAVAILABLE",
}
_NOT_FOUND: Final = "Requested entity was not found."
_UNAVAILABLE: Final = "The service is currently unavailable."
_KEY_BITS: Final = 62


@dataclass(slots=True)
class _Message:
    """One (agentId, messageId): the submits it got and, once accepted, its fate."""

    key: int  # the simulator's integer message id: seeds faults and outcome, names the reports
    message_id: str
    agent_id: str
    phone: str
    attempts: list[Attempt] = field(default_factory=list)
    processed: int = 0  # submits that reached the rules (faulted ones did not), as SubmitLog counts
    answer: dict[str, Any] | None = None
    outcome: Outcome | None = None
    content: dict[str, Any] = field(default_factory=dict)
    delivered_at: datetime | None = None
    ttl_revoked_at: datetime | None = None
    revoked: Literal["agent", "ttl"] | None = None
    revoke_requests: int = 0
    scheduled: int = 0  # its reports still in the report queue
    out_of_order: bool = False
    held: Outgoing | None = None  # its DELIVERED, waiting for its READ (out-of-order fault)

    def view(self, now: datetime) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "agentId": self.agent_id,
            "phoneNumber": self.phone,
            "submits": len(self.attempts),
            "answered": sum(a.answered for a in self.attempts),
            "accepted": self.answer is not None,
            "outcome": self.outcome,
            "delivered": self.revoked is None and self.delivered_at is not None and self.delivered_at <= now,
            "revoked": self.revoked is not None,
            "revoked_by": self.revoked,
            "revoke_requests": self.revoke_requests,
            "attempts": [a.view() for a in self.attempts],
        }


@dataclass
class _Stats:
    bad_requests: int = 0
    unauthenticated: int = 0
    faults: Counter[str] = field(default_factory=Counter)


def google_error(code: int, message: str, *, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Google's JSON error body (google.rpc.Status)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def _violation(exc: FieldViolation) -> web.Response:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": exc.field, "description": exc.description}],
        }
    ]
    return web.json_response(google_error(400, exc.message, details=details), status=400)


def _path_phone(raw: str) -> str:
    # aiohttp decodes %2B already; a client that double-encodes still means "+".
    return "+" + raw[3:] if raw[:3].upper() == "%2B" else raw


def _dumps(value: Any) -> str:
    """The submit's answer (one per message) as compact JSON, through orjson where it can."""
    return json_text.dumps_compact(value).decode()


def _message_key(agent_id: str, message_id: str) -> int:
    """A stable integer per (agent, messageId): the same id gets the same faults and outcome in every run."""
    digest = hashlib.sha256(f"{agent_id}\x00{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _KEY_BITS) or 1


class LocalRbm:
    """Google's RBM API and push delivery, local. ``app`` serves it (its pusher starts and stops
    with the app); or ``mount()`` the routes on another app and ``start()``/``stop()`` the pusher."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        webhook_url: str | None = None,
        client_token: str | None = None,
        trusted_keys: Mapping[str, PublicKeyLike] | None = None,
        sent_latency: float = 0.05,
        delivered_latency: float = 0.2,
        read_latency: float = 1.0,
        click_latency: float = 0.5,
        profile: Profile = "deterministic",
        seed: int = 0,
        zero_latency: bool = False,
        faults: RbmFaults | None = None,
        duplicate_status: Literal[200, 409] = 200,
        token_lifetime: int = 3600,
        push_timeout: float = 10.0,
        retry_base: float = 0.1,
        retry_cap: float = 10.0,
        push_concurrency: int = 8,
    ) -> None:
        """``client_token`` signs events and the handshake (random when None; read it back from
        ``client_token``). ``trusted_keys`` maps client emails to public keys (or PEM keys).
        ``retry_cap`` bounds the push backoff: Google's is 600 s, a shorter default spares a
        developer whose webhook restarted a wait of minutes."""
        if duplicate_status not in (200, 409):
            raise ValueError("duplicate_status must be 200 or 409")
        self.clock: Clock = clock or SystemClock()
        self.faults = faults or RbmFaults()
        self.duplicate_status = duplicate_status
        self.auth = TokenAuthority(self.clock, lifetime=token_lifetime)
        for email, key in (trusted_keys or {}).items():
            self.auth.trust(email, key)
        self.pusher = EventPusher(
            clock=self.clock,
            client_token=client_token or random_client_token(),
            webhook_url=webhook_url,
            faults=lambda: self.faults,
            collect=self._collect_due,
            next_due=lambda: self.reports.next_due(),
            timeout=push_timeout,
            retry_base=retry_base,
            retry_cap=retry_cap,
            concurrency=push_concurrency,
        )
        self.reports = ReportQueue(on_push=self.pusher.wake)
        # Only for its rules and timing (plan); its memory of accepted ids is per integer id and
        # knows no agents, so the (agent, messageId) memory is ours, see _process.
        self.upstream = SimulatedUpstream(
            clock=self.clock,
            sent_latency=sent_latency,
            delivered_latency=delivered_latency,
            read_latency=read_latency,
            click_latency=click_latency,
            profile=profile,
            seed=seed,
            zero_latency=zero_latency,
            reports=self.reports,
        )
        self.messages: dict[tuple[str, str], _Message] = {}
        self._by_key: dict[int, _Message] = {}
        self._last_agent: dict[str, str] = {}
        self.stats = _Stats()
        self._cancelled = 0  # reports of revoked messages still in the report queue
        self._task: asyncio.Task[None] | None = None
        self.app = web.Application()
        self.app.add_routes([*self.routes(), web.get("/healthz", self.health)])
        self.app.cleanup_ctx.append(self._run_pusher)

    # ------------------------------------------------------------------ setup

    def routes(self) -> list[web.RouteDef]:
        """Google's routes and the local ones (fake_admin), to ``mount`` on another application."""
        return [
            web.post("/token", self.token),
            web.post("/v1/phones/{phone}/agentMessages", self.create_message),
            web.delete("/v1/phones/{phone}/agentMessages/{message_id}", self.revoke_message),
            *LocalRoutes(self).routes(),
        ]

    def mount(self, app: web.Application) -> None:
        """Serve the routes from ``app`` (before it starts); then ``start()``/``stop()`` the pusher."""
        app.add_routes(self.routes())

    @property
    def client_token(self) -> str:
        return self.pusher.client_token

    @property
    def webhook_url(self) -> str | None:
        return self.pusher.webhook_url

    def set_webhook(self, url: str | None) -> None:
        """Where events go from now on; None keeps them queued."""
        self.pusher.set_webhook(url)

    def trust(self, key_info: Mapping[str, Any]) -> None:
        """Accept token grants signed by this service-account key (the JSON of a key file)."""
        email, public = key_of(key_info)
        self.auth.trust(email, public)

    def trust_key(self, client_email: str, public_key: PublicKeyLike) -> None:
        self.auth.trust(client_email, public_key)

    def new_key(self, token_uri: str, **kwargs: Any) -> dict[str, str]:
        """``make_service_account_key``, trusted here already."""
        key = make_service_account_key(token_uri, **kwargs)
        self.trust(key)
        return key

    def expire_tokens(self) -> int:
        """End every access token now (the next call with one gets 401); how many were live."""
        return self.auth.expire_all()

    def wake(self) -> None:
        """Look for due events now (after moving a ManualClock) instead of at the next idle tick."""
        self.pusher.wake(every_slot=True)

    async def validate_webhook(self, url: str | None = None) -> HandshakeResult:
        """Google's webhook validation handshake against ``url`` (default: the webhook URL)."""
        return await self.pusher.validate_webhook(url)

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.pusher.run(), name="rbm-local-event-push")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        log.info("rbm_local_stopped", pending_events_dropped=self.pending_events)

    async def _run_pusher(self, app: web.Application) -> AsyncIterator[None]:
        await self.start()
        yield
        await self.stop()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # ------------------------------------------------------------------ Google's API

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            answer = self.auth.grant({k: v for k, v in form.items() if isinstance(v, str)})
        except TokenRefused as exc:
            log.info("rbm_local_token_refused", error=exc.error, description=exc.description)
            return web.json_response(exc.body(), status=400)
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    def _unauthenticated(self, request: web.Request) -> web.Response | None:
        checked = self.auth.check(request.headers.get("Authorization"))
        if not isinstance(checked, str):
            return None
        self.stats.unauthenticated += 1
        return web.json_response(
            google_error(401, checked),
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )

    async def create_message(self, request: web.Request) -> web.StreamResponse:
        refused = self._unauthenticated(request)
        if refused is not None:
            return refused
        try:
            phone = check_phone(_path_phone(request.match_info["phone"]))
            message_id = check_message_id(request.query.get("messageId"))
            agent_id = check_agent_id(request.query.get("agentId"))
            body = check_agent_message(await request.read(), now=self.clock.now())
        except FieldViolation as exc:
            self.stats.bad_requests += 1
            return _violation(exc)
        message = self.messages.get((agent_id, message_id))
        if message is None:
            message = _Message(_message_key(agent_id, message_id), message_id, agent_id, phone)
            self.messages[(agent_id, message_id)] = message
            self._by_key[message.key] = message
        self._last_agent[phone] = agent_id
        faults = self.faults  # one config for the whole submit, even if it is changed meanwhile
        decision = _decide(faults, message.key, len(message.attempts) + 1)
        attempt = Attempt(
            fault=decision.kind,
            slow=decision.slow,
            client=request.headers.get(CLIENT_HEADER, "")[:100] or None,
        )
        message.attempts.append(attempt)
        self.stats.faults[decision.kind] += 1
        if decision.kind == "reset":
            return _reset(request)
        if decision.kind == "blackhole":
            await asyncio.sleep(faults.hang_seconds)
            return _reset(request)
        if decision.kind == "error":
            attempt.result = "unavailable"
            status, payload = 503, google_error(503, _UNAVAILABLE)
        else:
            attempt.result, status, payload = self._process(message, phone, body)
            if decision.kind == "timeout":
                await asyncio.sleep(faults.hang_seconds)
                return _reset(request)
        if decision.slow:
            await asyncio.sleep(faults.slow_seconds)
        return await _answer(request, web.json_response(payload, status=status, dumps=_dumps), attempt)

    def _process(
        self, message: _Message, phone: str, body: dict[str, Any]
    ) -> tuple[str, int, dict[str, Any]]:
        """(journal result, HTTP status, answer) of a submit that reached the rules."""
        message.processed += 1
        if message.answer is not None:
            if self.duplicate_status == 409:
                text = f"Message with ID {message.message_id} already exists."
                return "duplicate", 409, google_error(409, text)
            return "duplicate", 200, message.answer
        suffix = phone[-4:]
        if suffix == "9998":
            text = "The agent is not launched and the phone number is not a tester of this agent."
            return "permission_denied", 403, google_error(403, text)
        now = self.clock.now()
        outbound = OutboundMessage(
            message_id=message.key,
            channel="rcs",
            phone=phone[1:],
            sender=message.agent_id,
            content=click_content(body),
            expires_at=_expiry(body, now),
        )
        outcome, timing = self.upstream.plan(outbound)
        if suffix == "9997" and message.processed <= TRANSIENT_FAILURES:
            return "unavailable", 503, google_error(503, _UNAVAILABLE)
        if outcome == "not_capable":
            return "not_found", 404, google_error(404, f"{_NOT_FOUND} {phone} cannot be reached over RCS.")
        if outcome == "rejected":
            return "invalid_argument", 400, google_error(400, "The message content was rejected.")
        reports = schedule(outbound, outcome, timing, now)
        for report in reports:
            if isinstance(report, StatusReport) and report.status == "delivered":
                message.delivered_at = report.at
            elif isinstance(report, StatusReport) and report.status == "undelivered":
                message.ttl_revoked_at = report.at
        message.outcome = outcome
        message.content = outbound.content
        rate = self.faults.out_of_order_rate
        # Seeding a generator hashes its seed (SHA-512): only drawn when the fault is on.
        message.out_of_order = (
            rate > 0 and random.Random(f"rbm-out-of-order:{self.faults.seed}:{message.key}").random() < rate
        )
        message.answer = {
            **body,
            "name": f"phones/{phone}/agentMessages/{message.message_id}",
            "sendTime": rfc3339(now),
        }
        message.scheduled = len(reports)
        for report in reports:
            self.reports.push(report)
        return "accepted", 200, message.answer

    async def revoke_message(self, request: web.Request) -> web.Response:
        refused = self._unauthenticated(request)
        if refused is not None:
            return refused
        try:
            phone = check_phone(_path_phone(request.match_info["phone"]))
            agent_id = check_agent_id(request.query.get("agentId"))
        except FieldViolation as exc:
            self.stats.bad_requests += 1
            return _violation(exc)
        message = self.messages.get((agent_id, request.match_info["message_id"]))
        if message is None or message.phone != phone or message.answer is None:
            return web.json_response(google_error(404, _NOT_FOUND), status=404)
        message.revoke_requests += 1
        now = self.clock.now()
        reached = message.delivered_at is not None and message.delivered_at <= now
        ttl_done = message.ttl_revoked_at is not None and message.ttl_revoked_at <= now
        if message.revoked is not None or reached or ttl_done:
            return web.json_response(google_error(404, _NOT_FOUND), status=404)
        message.revoked = "agent"
        # None of its reports was due yet, so all are still queued: dropped when they come due.
        self._cancelled += message.scheduled
        return web.json_response({})

    # ------------------------------------------------------------------ events

    @property
    def pending_events(self) -> int:
        """Events not pushed yet: scheduled, queued, or held back by the out-of-order fault."""
        held = sum(m.held is not None for m in self.messages.values())
        return len(self.reports) - self._cancelled + len(self.pusher.queue) + held

    def queued_events(self) -> list[dict[str, Any]]:
        """Due events waiting for the webhook (all of them while there is none), in push order."""
        self._collect_due()
        return [item.event for item in self.pusher.queue]

    def inject_user_message(
        self,
        phone: str,
        *,
        agent_id: str | None = None,
        text: str | None = None,
        location: dict[str, Any] | None = None,
        user_file: dict[str, Any] | None = None,
        suggestion_response: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a message from the user at ``phone`` to ``agent_id`` (by default the last agent
        that wrote to that phone) and return its event. ValueError for a bad request."""
        phone = check_phone(_path_phone(phone))
        agent = agent_id or self._last_agent.get(phone)
        if not agent:
            raise ValueError(f"no agentId given and no agent has written to {phone}")
        event = user_message(
            agent_id=agent,
            phone=phone,
            at=self.clock.now(),
            text=text,
            location=location,
            user_file=user_file,
            suggestion_response=suggestion_response,
        )
        self._collect_due()  # what became due before now goes out first
        self.pusher.enqueue(self.pusher.prepare(event))
        self.pusher.wake()
        return event

    def _collect_due(self) -> None:
        """Turn due reports into events on the push queue, in due order."""
        while batch := self.reports.pop_due(self.clock.now(), 1000):
            for pending in batch:
                self._convert(pending.report)

    def _convert(self, report: Report) -> None:
        message = self._by_key[report.message_id]
        message.scheduled -= 1
        if message.revoked == "agent":
            self._cancelled -= 1
            return
        ids = {"agent_id": message.agent_id, "phone": message.phone, "message_id": message.message_id}
        push = self.pusher
        if isinstance(report, ClickReport):
            response = {
                "postbackData": report.postback_data or "",
                "text": report.text,
                "type": chosen_suggestion_type(message.content),
            }
            event = user_message(
                agent_id=message.agent_id, phone=message.phone, at=report.at, suggestion_response=response
            )
            push.enqueue(push.prepare(event))
        elif report.status == "delivered":
            item = push.prepare(status_event("DELIVERED", at=report.at, **ids))
            if message.out_of_order and message.outcome in ("read", "click"):
                message.held = item
            else:
                push.enqueue(item)
        elif report.status == "read":
            push.enqueue(push.prepare(status_event("READ", at=report.at, **ids)))
            if message.held is not None:
                push.enqueue(message.held)
                message.held = None
        elif report.status == "undelivered":
            message.revoked = "ttl"
            push.enqueue(push.prepare(server_event("TTL_EXPIRATION_REVOKED", at=report.at, **ids)))

    # ------------------------------------------------------------------ inspection

    def journal(self, message_id: str, agent_id: str | None = None) -> dict[str, Any] | None:
        """The journal entry of a messageId (of ``agent_id``, or of any agent), None if never submitted."""
        entries = self.journal_entries([message_id], agent_id)
        return entries[0] if entries else None

    def journal_entries(
        self, message_ids: Iterable[str] = (), agent_id: str | None = None
    ) -> list[dict[str, Any]]:
        wanted = set(message_ids)
        now = self.clock.now()
        return [
            m.view(now)
            for m in self.messages.values()
            if (not wanted or m.message_id in wanted) and agent_id in (None, m.agent_id)
        ]

    def stats_snapshot(self) -> dict[str, Any]:
        s, push = self.stats, self.pusher
        messages = self.messages.values()
        attempts = [a for m in messages for a in m.attempts]
        return {
            "pending_events": self.pending_events,
            "queued_events": len(push.queue),
            "events_pushed": push.pushed,
            "duplicates_pushed": push.duplicates_pushed,
            "push_failures": push.failures,
            "last_push_error": push.last_error,
            "messages": len(self.messages),
            "accepted_messages": sum(m.answer is not None for m in messages),
            "revoked_messages": sum(m.revoked is not None for m in messages),
            "submits": len(attempts),
            "answered": sum(a.answered for a in attempts),
            "bad_requests": s.bad_requests,
            "unauthenticated": s.unauthenticated,
            "tokens_issued": self.auth.issued,
            "token_refusals": self.auth.refused,
            "faults_injected": {k: s.faults[k] for k in ("error", "reset", "timeout", "blackhole")},
            "handshakes": push.handshakes,
            "last_handshake": push.last_handshake.view() if push.last_handshake else None,
            "webhook_url": push.webhook_url,
            "faults": self.faults.model_dump(),
        }


_NO_FAULT: Final = Decision("none", slow=False)


def _decide(faults: RbmFaults, key: int, attempt: int) -> Decision:
    """``decide``, without seeding a generator (a SHA-512 of the seed) for every submit while no
    submit fault is on: then its answer is always no fault, not slow."""
    if not (
        faults.error_rate
        or faults.reset_rate
        or faults.timeout_rate
        or faults.blackhole_rate
        or faults.slow_rate
    ):
        return _NO_FAULT
    return decide(faults, key, attempt)


def _expiry(body: dict[str, Any], now: datetime) -> datetime:
    if "ttl" in body:
        return now + parse_duration(body["ttl"], "ttl")
    if "expireTime" in body:
        return parse_time(body["expireTime"], "expireTime")
    return now + _DEFAULT_LIFETIME
