"""The local RBM (connectors/rbm/fake.py) over real HTTP: google-auth's own service-account flow
against its token endpoint, Google's send/revoke API with its validation and per-suffix outcomes,
signed pushes to a receiver on a real port (order, retries, duplicate and out-of-order faults),
the webhook handshake, user replies, the local inspection routes, and the local RBM served beside
the simulator API by ``simulator_service.serve``. Time moves on a ManualClock; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import pytest
from aiohttp import web
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from rcsgate.clock import ManualClock
from rcsgate.connectors.rbm import protocol
from rcsgate.connectors.rbm.fake import LocalRbm, make_service_account_key
from rcsgate.connectors.simulator_service import ServiceOptions, serve

T = TypeVar("T")

TOKEN = "SJENCPGJESMGUFPY"
AGENT = "demo_agent"
PHONE = "+14155550100"


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


@functools.cache
def sa_key() -> dict[str, str]:
    return make_service_account_key("http://unset/token")


@functools.cache
def other_key() -> dict[str, str]:
    return make_service_account_key("http://unset/token")


def text_message(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"contentMessage": {"text": text, **extra}, "messageTrafficType": "TRANSACTION"}


def card(title: str = "Card", suggestions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"title": title, "description": "A card"}
    if suggestions is not None:
        content["suggestions"] = suggestions
    return content


def reply(text: str, postback: str) -> dict[str, Any]:
    return {"reply": {"text": text, "postbackData": postback}}


@dataclass
class Receiver:
    """A partner webhook: checks every push's signature, records the decoded events, can fail."""

    token: str
    events: list[dict[str, Any]] = field(default_factory=list)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    fail_next: int = 0
    handshake: Callable[[str], web.Response] = lambda secret: web.Response(text=secret)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if "clientToken" in body:
            assert body["clientToken"] == self.token
            return self.handshake(body["secret"])
        data = protocol.open_envelope(body)
        assert data is not None
        if not protocol.signature_ok(self.token, data, request.headers.get(protocol.SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.Response(status=403)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500)
        self.envelopes.append(body)
        self.events.append(json.loads(data))
        return web.Response(status=200)


@dataclass
class Harness:
    rbm: LocalRbm
    clock: ManualClock
    http: httpx.AsyncClient
    receiver: Receiver
    base: str
    key: dict[str, str]
    receiver_url: str
    _token: str | None = None

    def credentials(self, key: dict[str, str] | None = None, scopes: list[str] | None = None) -> Any:
        info = {**(key or self.key), "token_uri": f"{self.base}/token"}
        return service_account.Credentials.from_service_account_info(info, scopes=scopes or [protocol.SCOPE])

    async def refresh(self, creds: Any) -> str:
        # google-auth is synchronous: off the event loop, which serves the token endpoint.
        await asyncio.to_thread(creds.refresh, Request())
        return str(creds.token)

    async def token(self) -> str:
        if self._token is None:
            self._token = await self.refresh(self.credentials())
        return self._token

    async def send(
        self,
        phone: str = PHONE,
        body: dict[str, Any] | None = None,
        *,
        message_id: str | None = None,
        agent: str | None = AGENT,
        token: str | None = None,
    ) -> httpx.Response:
        params = {"messageId": message_id or str(uuid.uuid4())}
        if agent is not None:
            params["agentId"] = agent
        return await self.http.post(
            f"/v1/phones/{phone}/agentMessages",
            params=params,
            json=text_message() if body is None else body,
            headers={"Authorization": f"Bearer {token or await self.token()}"},
        )

    async def revoke(self, message_id: str, phone: str = PHONE) -> httpx.Response:
        return await self.http.delete(
            f"/v1/phones/{phone}/agentMessages/{message_id}",
            params={"agentId": AGENT},
            headers={"Authorization": f"Bearer {await self.token()}"},
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.rbm.wake()

    async def events(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.receiver.events) < count:
            assert time.monotonic() < deadline, f"{len(self.receiver.events)} of {count} events arrived"
            await asyncio.sleep(0.005)
        return self.receiver.events

    async def quiet(self) -> list[dict[str, Any]]:
        """The events once nothing is due or queued any more, plus a moment for stragglers."""
        deadline = time.monotonic() + 3.0
        while self.rbm.pusher.queue or self.rbm.queued_events():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        return self.receiver.events


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


@contextlib.asynccontextmanager
async def harness(*, webhook: bool = True, **options: Any) -> AsyncIterator[Harness]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    receiver = Receiver(TOKEN)
    receiver_app = web.Application()
    receiver_app.router.add_post("/rbm", receiver.handle)
    receiver_runner, receiver_port = await _start(receiver_app)
    options.setdefault("zero_latency", True)
    receiver_url = f"http://127.0.0.1:{receiver_port}/rbm"
    rbm = LocalRbm(
        clock=clock,
        webhook_url=receiver_url if webhook else None,
        client_token=TOKEN,
        retry_base=0.01,
        retry_cap=0.05,
        **options,
    )
    rbm.trust(sa_key())
    runner, port = await _start(rbm.app)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
            yield Harness(rbm, clock, http, receiver, base, sa_key(), receiver_url)
    finally:
        await runner.cleanup()
        await receiver_runner.cleanup()


# ---------------------------------------------------------------------- tokens


def test_google_auth_gets_a_token_that_the_api_takes() -> None:
    async def main() -> None:
        async with harness() as h:
            creds = h.credentials()
            token = await h.refresh(creds)
            assert token.startswith("ya29.")
            assert creds.expiry is not None and creds.valid
            r = await h.send(token=token)
            assert r.status_code == 200, r.text
            assert h.rbm.stats_snapshot()["tokens_issued"] == 1

    run(main)


def test_token_refusals() -> None:
    async def main() -> None:
        async with harness() as h:
            # A key the local RBM does not trust for this account (signature check fails).
            wrong = {**other_key(), "client_email": h.key["client_email"]}
            with pytest.raises(RefreshError, match=r"invalid_grant.*Invalid JWT Signature"):
                await h.refresh(h.credentials(wrong))
            # An account it does not know at all.
            unknown = {**other_key(), "client_email": "nobody@rbm-local.iam.gserviceaccount.com"}
            with pytest.raises(RefreshError, match=r"invalid_grant.*account not found"):
                await h.refresh(h.credentials(unknown))
            # A scope without RBM's.
            with pytest.raises(RefreshError, match="invalid_scope"):
                await h.refresh(h.credentials(scopes=["https://www.googleapis.com/auth/cloud-platform"]))
            # Expired on the local RBM's clock: google-auth stamps the assertion with real time.
            h.clock.advance(timedelta(hours=2))
            with pytest.raises(RefreshError, match=r"invalid_grant.*short-lived"):
                await h.refresh(h.credentials())
            h.clock.advance(timedelta(hours=-2))

            now = int(h.clock.now().timestamp())
            claims = {
                "iss": h.key["client_email"],
                "aud": "https://example.com/token",
                "scope": protocol.SCOPE,
                "iat": now,
                "exp": now + 3600,
            }
            assertion = jwt.encode(claims, h.key["private_key"], algorithm="RS256")
            form = {"grant_type": protocol.JWT_BEARER_GRANT, "assertion": assertion}
            r = await h.http.post("/token", data=form)
            assert r.status_code == 400
            assert r.json() == {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: Failed audience check.",
            }
            # Longer than an hour.
            claims |= {"aud": protocol.TOKEN_AUDIENCE, "exp": now + 7200}
            form["assertion"] = jwt.encode(claims, h.key["private_key"], algorithm="RS256")
            assert (await h.http.post("/token", data=form)).json()["error"] == "invalid_grant"
            # Signed with a shared secret instead of the key.
            claims["exp"] = now + 600
            form["assertion"] = jwt.encode(claims, "secret-secret-secret-secret-secret!", algorithm="HS256")
            assert (await h.http.post("/token", data=form)).json()["error"] == "invalid_grant"
            r = await h.http.post("/token", data={"grant_type": "password", "assertion": "x"})
            assert r.json()["error"] == "unsupported_grant_type"
            # And the hand-made assertion, done right, works.
            form["assertion"] = jwt.encode(claims, h.key["private_key"], algorithm="RS256")
            r = await h.http.post("/token", data=form)
            assert r.status_code == 200
            assert r.json()["expires_in"] == 3600 and r.json()["token_type"] == "Bearer"
            assert h.rbm.stats_snapshot()["token_refusals"] == 8

    run(main)


def test_api_needs_a_live_token() -> None:
    async def main() -> None:
        async with harness() as h:
            url = f"/v1/phones/{PHONE}/agentMessages"
            params = {"messageId": str(uuid.uuid4()), "agentId": AGENT}
            r = await h.http.post(url, params=params, json=text_message())
            assert r.status_code == 401
            assert r.json()["error"]["status"] == "UNAUTHENTICATED"
            assert "missing required authentication credential" in r.json()["error"]["message"]
            r = await h.http.post(
                url, params=params, json=text_message(), headers={"Authorization": "Bearer nope"}
            )
            assert (
                r.status_code == 401 and "invalid authentication credentials" in r.json()["error"]["message"]
            )

            creds = h.credentials()
            token = await h.refresh(creds)
            assert (await h.send(token=token)).status_code == 200
            assert (await h.http.post("/v1/local/tokens:expire")).json() == {"expired": 1}
            r = await h.send(token=token)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            fresh = await h.refresh(creds)  # the connector's refresh-after-401
            assert (await h.send(token=fresh)).status_code == 200
            # Tokens also end with time, an hour on the local RBM's clock.
            h.clock.advance(3601)
            assert (await h.send(token=fresh)).status_code == 401

    run(main)


# ---------------------------------------------------------------------- sending


def test_outcomes_by_phone_suffix() -> None:
    async def main() -> None:
        async with harness() as h:
            for suffix, status, name in (
                ("9990", 404, "NOT_FOUND"),
                ("9996", 404, "NOT_FOUND"),
                ("9998", 403, "PERMISSION_DENIED"),
                ("9995", 400, "INVALID_ARGUMENT"),
            ):
                r = await h.send(f"+1415555{suffix}")
                assert r.status_code == status, (suffix, r.text)
                assert r.json()["error"] == {
                    "code": status,
                    "message": r.json()["error"]["message"],
                    "status": name,
                }

            mid = str(uuid.uuid4())
            for _ in range(3):
                r = await h.send("+14155559997", message_id=mid)
                assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
            r = await h.send("+14155559997", message_id=mid)
            assert r.status_code == 200

            mid = str(uuid.uuid4())
            body = text_message("Hi", suggestions=[reply("Yes", "yes")])
            r = await h.send("+4915112345678", body, message_id=mid)
            assert r.status_code == 200
            answer = r.json()
            assert answer["name"] == f"phones/+4915112345678/agentMessages/{mid}"
            assert answer["contentMessage"] == body["contentMessage"]
            assert answer["sendTime"].endswith("Z")
            entry = h.rbm.journal(mid)
            assert (
                entry is not None and entry["accepted"] and entry["submits"] == 1 and entry["answered"] == 1
            )

    run(main)


def test_percent_encoded_plus_in_the_phone() -> None:
    async def main() -> None:
        async with harness() as h:
            r = await h.send("%2B14155550100")
            assert r.status_code == 200, r.text
            assert r.json()["name"].startswith("phones/+14155550100/")

    run(main)


BIG = "x" * 260_000


@pytest.mark.parametrize(
    ("phone", "query", "body", "field"),
    [
        ("14155550100", {}, text_message(), "phoneNumber"),
        ("+0123", {}, text_message(), "phoneNumber"),
        (PHONE, {"messageId": "12345"}, text_message(), "messageId"),
        (PHONE, {"agentId": None}, text_message(), "agentId"),
        (PHONE, {}, text_message("x" * 3073), "contentMessage.text"),
        (PHONE, {}, text_message(suggestions=[reply("a", "b")] * 12), "contentMessage.suggestions"),
        (PHONE, {}, {"contentMessage": {"text": "a", "richCard": {}}}, "contentMessage"),
        (PHONE, {}, {"contentMessage": {"suggestions": []}}, "contentMessage"),
        (PHONE, {}, {"messageTrafficType": "TRANSACTION"}, "contentMessage"),
        (
            PHONE,
            {},
            {
                "contentMessage": {
                    "richCard": {"carouselCard": {"cardWidth": "SMALL", "cardContents": [card()]}}
                }
            },
            "contentMessage.richCard.carouselCard.cardContents",
        ),
        (
            PHONE,
            {},
            {"contentMessage": {"richCard": {"carouselCard": {"cardContents": [card()] * 11}}}},
            "contentMessage.richCard.carouselCard.cardContents",
        ),
        (
            PHONE,
            {},
            {
                "contentMessage": {
                    "richCard": {"standaloneCard": {"cardContent": card(), "x": 1}, "carouselCard": {}}
                }
            },
            "contentMessage.richCard",
        ),
        (
            PHONE,
            {},
            {
                "contentMessage": {
                    "richCard": {"standaloneCard": {"cardContent": card(suggestions=[reply("a", "b")] * 5)}}
                }
            },
            "contentMessage.richCard.standaloneCard.cardContent.suggestions",
        ),
        (
            PHONE,
            {},
            {"contentMessage": {"richCard": {"standaloneCard": {"cardContent": card("t" * 201)}}}},
            "contentMessage.richCard.standaloneCard.cardContent.title",
        ),
        (
            PHONE,
            {},
            {
                "contentMessage": {
                    "richCard": {
                        "carouselCard": {
                            "cardContents": [card(), {"title": "b", "description": "d" * 2001}],
                        }
                    }
                }
            },
            "contentMessage.richCard.carouselCard.cardContents[1].description",
        ),
        (
            PHONE,
            {},
            text_message(
                suggestions=[{"reply": {"text": "a"}, "action": {"text": "b", "shareLocationAction": {}}}]
            ),
            "contentMessage.suggestions[0]",
        ),
        (
            PHONE,
            {},
            text_message(suggestions=[reply("x" * 26, "b")]),
            "contentMessage.suggestions[0].reply.text",
        ),
        (
            PHONE,
            {},
            text_message(suggestions=[reply("a", "p" * 2049)]),
            "contentMessage.suggestions[0].reply.postbackData",
        ),
        (
            PHONE,
            {},
            text_message(suggestions=[{"action": {"text": "Go", "postbackData": "go"}}]),
            "contentMessage.suggestions[0].action",
        ),
        (
            PHONE,
            {},
            text_message(
                suggestions=[
                    {
                        "action": {
                            "text": "Go",
                            "openUrlAction": {"url": "https://example.com"},
                            "dialAction": {"phoneNumber": "+14155550100"},
                        }
                    }
                ]
            ),
            "contentMessage.suggestions[0].action",
        ),
        (
            PHONE,
            {},
            text_message(
                suggestions=[{"action": {"text": "Call", "dialAction": {"phoneNumber": "0800 123"}}}]
            ),
            "contentMessage.suggestions[0].action.dialAction.phoneNumber",
        ),
        (
            PHONE,
            {},
            {"contentMessage": {"contentInfo": {"fileUrl": "http://example.com/a.png"}}},
            "contentMessage.contentInfo.fileUrl",
        ),
        (PHONE, {}, {**text_message(), "ttl": "60s", "expireTime": "2030-01-01T00:00:00Z"}, "ttl"),
        (PHONE, {}, {**text_message(), "ttl": "1296001s"}, "ttl"),
        (PHONE, {}, {**text_message(), "ttl": "10m"}, "ttl"),
        (PHONE, {}, text_message(BIG[:3000], suggestions=[reply("a", "p" * 2048)] * 11), None),
        (PHONE, {}, {**text_message(), "bigField": BIG}, "agentMessage"),
        (PHONE, {}, {**text_message(), "priority": "HIGH"}, "priority"),
        (PHONE, {}, {"contentMessage": {"text": "hi", "sugestions": []}}, "contentMessage.sugestions"),
    ],
)
def test_validation_names_the_field(
    phone: str, query: dict[str, str | None], body: dict[str, Any], field: str | None
) -> None:
    async def main() -> None:
        async with harness() as h:
            params = {"messageId": str(uuid.uuid4()), "agentId": AGENT, **query}
            r = await h.http.post(
                f"/v1/phones/{phone}/agentMessages",
                params={k: v for k, v in params.items() if v is not None},
                json=body,
                headers={"Authorization": f"Bearer {await h.token()}"},
            )
            if field is None:  # the control: at the limits, still fine
                assert r.status_code == 200, r.text
                return
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["status"] == "INVALID_ARGUMENT"
            assert f"'{field}'" in error["message"] or f'"{field.rpartition(".")[2]}"' in error["message"]
            assert error["details"][0]["fieldViolations"][0]["field"] == field
            assert h.rbm.stats_snapshot()["bad_requests"] == 1

    run(main)


def test_rich_messages_within_the_limits_are_accepted() -> None:
    async def main() -> None:
        async with harness() as h:
            actions = [
                {
                    "action": {
                        "text": "Open",
                        "postbackData": "o",
                        "openUrlAction": {"url": "https://example.com"},
                    }
                },
                {
                    "action": {
                        "text": "Call",
                        "postbackData": "c",
                        "dialAction": {"phoneNumber": "+14155550100"},
                    }
                },
                {
                    "action": {
                        "text": "Map",
                        "postbackData": "m",
                        "viewLocationAction": {
                            "latLong": {"latitude": 52.5, "longitude": 13.4},
                            "label": "B",
                        },
                    }
                },
                {
                    "action": {
                        "text": "Save",
                        "postbackData": "s",
                        "createCalendarEventAction": {
                            "startTime": "2030-01-01T10:00:00Z",
                            "endTime": "2030-01-01T11:00:00.123456789Z",
                            "title": "Meeting",
                        },
                    }
                },
            ]
            media = {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://example.com/a.png"}}
            body = {
                "contentMessage": {
                    "richCard": {
                        "carouselCard": {
                            "cardWidth": "MEDIUM",
                            "cardContents": [{**card(suggestions=actions), "media": media}] + [card()] * 9,
                        }
                    },
                    "suggestions": [{"action": {"text": "Where?", "shareLocationAction": {}}}],
                },
                "ttl": "1296000s",
            }
            assert (await h.send(body=body)).status_code == 200
            file = {
                "contentMessage": {"uploadedRbmFile": {"fileName": "files/abc"}},
                "expireTime": "2026-12-05T00:00:00Z",
            }
            h.clock.set(datetime(2026, 12, 1, tzinfo=UTC))
            assert (await h.send(body=file)).status_code == 200

    run(main)


def test_a_repeated_message_id_answers_the_first_answer_and_sends_nothing() -> None:
    async def main() -> None:
        async with harness() as h:
            mid = str(uuid.uuid4())
            first = await h.send(message_id=mid)
            await h.events(2)
            h.advance(5)
            again = await h.send(body=text_message("Something else"), message_id=mid)
            assert again.status_code == 200 and again.json() == first.json()
            assert len(await h.quiet()) == 2
            entry = h.rbm.journal(mid)
            assert entry is not None and entry["submits"] == 2
            assert [a["result"] for a in entry["attempts"]] == ["accepted", "duplicate"]
            # Another agent may use the same id.
            assert (await h.send(message_id=mid, agent="other_agent")).status_code == 200

        async with harness(duplicate_status=409) as h:
            mid = str(uuid.uuid4())
            assert (await h.send(message_id=mid)).status_code == 200
            r = await h.send(message_id=mid)
            assert r.status_code == 409 and r.json()["error"]["status"] == "ALREADY_EXISTS"

    run(main)


# ---------------------------------------------------------------------- events


def test_events_are_signed_in_googles_envelope_and_in_order() -> None:
    async def main() -> None:
        async with harness(zero_latency=False) as h:
            mid = str(uuid.uuid4())
            assert (await h.send(message_id=mid)).status_code == 200
            await asyncio.sleep(0.05)
            assert h.receiver.events == []  # nothing is due before the clock moves
            assert h.rbm.pending_events == 2
            h.advance(0.25)  # sent + delivered latency
            delivered = (await h.events(1))[0]
            assert delivered == {
                "agentId": AGENT,
                "senderPhoneNumber": PHONE,
                "eventType": "DELIVERED",
                "eventId": delivered["eventId"],
                "messageId": mid,
                "sendTime": delivered["sendTime"],
            }
            h.advance(1.0)
            read = (await h.events(2))[1]
            assert read["eventType"] == "READ" and read["messageId"] == mid
            assert read["eventId"] != delivered["eventId"] and read["sendTime"] > delivered["sendTime"]
            envelope = h.receiver.envelopes[0]
            assert set(envelope) == {"message", "subscription"}
            assert set(envelope["message"]) == {"data", "attributes", "messageId", "publishTime"}
            assert envelope["message"]["attributes"] == {"type": "event"}
            assert h.receiver.bad_signatures == 0
            stats = (await h.http.get("/v1/local/stats")).json()
            assert stats["events_pushed"] == 2 and stats["pending_events"] == 0

    run(main)


def test_event_script_per_suffix() -> None:
    async def main() -> None:
        async with harness() as h:
            ids = {suffix: str(uuid.uuid4()) for suffix in ("9991", "9992", "9993", "9994", "0100")}
            cards = {
                "contentMessage": {
                    "richCard": {
                        "carouselCard": {
                            "cardContents": [
                                card("A", [reply("Yes", "rg1.7.0.0"), reply("No", "rg1.7.0.1")]),
                                card("B", [reply("Other", "rg1.7.1.0")]),
                            ]
                        }
                    },
                    "suggestions": [reply("Chip", "chip")],
                }
            }
            chips = text_message("Pick", suggestions=[reply("Chip", "rg1.8.0.0")])
            for suffix, mid in ids.items():
                body = cards if suffix == "9994" else text_message()
                assert (await h.send(f"+1415555{suffix}", body, message_id=mid)).status_code == 200
            chip_id = str(uuid.uuid4())
            assert (await h.send("+14155559994", chips, message_id=chip_id)).status_code == 200
            events = await h.quiet()
            by_message: dict[str, list[str]] = {}
            for event in events:
                key = event.get("messageId") if "eventType" in event else "user:" + event["senderPhoneNumber"]
                by_message.setdefault(str(key), []).append(event.get("eventType") or "USER_MESSAGE")
            assert by_message[ids["0100"]] == ["DELIVERED", "READ"]
            assert by_message[ids["9993"]] == ["DELIVERED"]
            assert by_message[ids["9994"]] == ["DELIVERED", "READ"]
            assert by_message[ids["9991"]] == ["TTL_EXPIRATION_REVOKED"]
            assert ids["9992"] not in by_message
            revoked = next(e for e in events if e.get("eventType") == "TTL_EXPIRATION_REVOKED")
            assert revoked["phoneNumber"] == "+14155559991" and "senderPhoneNumber" not in revoked
            taps = [e["suggestionResponse"] for e in events if "suggestionResponse" in e]
            assert taps == [
                {"postbackData": "rg1.7.0.0", "text": "Yes", "type": "REPLY"},
                {"postbackData": "rg1.8.0.0", "text": "Chip", "type": "REPLY"},
            ]
            tap = next(e for e in events if "suggestionResponse" in e)
            assert tap["agentId"] == AGENT and tap["senderPhoneNumber"] == "+14155559994"
            assert tap["messageId"] not in ids.values()  # the user message's own id
            assert h.receiver.envelopes[events.index(tap)]["message"]["attributes"] == {"type": "message"}

    run(main)


def test_pushes_are_retried_until_the_webhook_answers_200() -> None:
    async def main() -> None:
        # One push in flight at a time: then the order is the queue's.
        async with harness(push_concurrency=1) as h:
            h.receiver.fail_next = 3
            first, second = str(uuid.uuid4()), str(uuid.uuid4())
            assert (await h.send(message_id=first)).status_code == 200
            assert (await h.send(message_id=second)).status_code == 200
            events = await h.events(4)
            # The failing event held the queue: everything arrives, in the original order.
            assert [(e["messageId"], e["eventType"]) for e in events] == [
                (first, "DELIVERED"),
                (first, "READ"),
                (second, "DELIVERED"),
                (second, "READ"),
            ]
            stats = h.rbm.stats_snapshot()
            assert stats["push_failures"] == 3 and stats["last_push_error"] == "webhook answered 500"

    run(main)


def test_duplicate_and_out_of_order_faults() -> None:
    async def main() -> None:
        async with harness() as h:
            r = await h.http.put("/v1/local/faults", json={"duplicate_rate": 1.0})
            assert r.status_code == 200 and r.json()["duplicate_rate"] == 1.0
            mid = str(uuid.uuid4())
            assert (await h.send(message_id=mid)).status_code == 200
            events = await h.events(4)
            assert [e["eventType"] for e in events] == ["DELIVERED", "READ", "DELIVERED", "READ"]
            assert events[0] == events[2] and events[1] == events[3]  # same eventIds
            assert h.receiver.envelopes[0] == h.receiver.envelopes[2]
            assert h.rbm.stats_snapshot()["duplicates_pushed"] == 2

            r = await h.http.put("/v1/local/faults", json={"duplicate_rate": 0, "out_of_order_rate": 1.0})
            assert r.json()["out_of_order_rate"] == 1.0
            h.receiver.events.clear()
            mid = str(uuid.uuid4())
            assert (await h.send("+14155559994", cards_with_tap(), message_id=mid)).status_code == 200
            assert (await h.send("+14155559993", message_id=str(uuid.uuid4()))).status_code == 200
            events = await h.quiet()
            of_mid = [e["eventType"] for e in events if e.get("messageId") == mid]
            assert of_mid == ["READ", "DELIVERED"]
            assert "DELIVERED" in [
                e.get("eventType") for e in events if e.get("senderPhoneNumber") == "+14155559993"
            ]
            assert any("suggestionResponse" in e for e in events)
            bad = await h.http.put("/v1/local/faults", json={"duplicate_rate": 2})
            assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"

    run(main)


def cards_with_tap() -> dict[str, Any]:
    return {
        "contentMessage": {"richCard": {"standaloneCard": {"cardContent": card("A", [reply("Go", "go")])}}}
    }


def test_events_wait_without_a_webhook() -> None:
    async def main() -> None:
        async with harness(webhook=False) as h:
            mid = str(uuid.uuid4())
            assert (await h.send(message_id=mid)).status_code == 200
            queued = (await h.http.get("/v1/local/events")).json()["events"]
            assert [e["eventType"] for e in queued] == ["DELIVERED", "READ"]
            assert (await h.http.get("/v1/local/webhook")).json() == {"url": None}
            url = h.receiver_url
            assert (await h.http.put("/v1/local/webhook", json={"url": url})).json() == {"url": url}
            assert [e["eventId"] for e in await h.events(2)] == [e["eventId"] for e in queued]
            assert (await h.http.put("/v1/local/webhook", json={"url": "ftp://x"})).status_code == 400

    run(main)


# ---------------------------------------------------------------------- revocation


def test_revoke_before_and_after_delivery() -> None:
    async def main() -> None:
        async with harness(zero_latency=False) as h:
            early, late, silent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
            assert (await h.send(message_id=early)).status_code == 200
            assert (await h.send(message_id=late)).status_code == 200
            assert (await h.send("+14155559992", message_id=silent)).status_code == 200
            r = await h.revoke(early)
            assert r.status_code == 200 and r.json() == {}
            assert (await h.revoke(early)).status_code == 404  # already revoked
            assert h.rbm.pending_events == 2  # late's two
            h.advance(10)
            events = await h.quiet()
            assert {e["messageId"] for e in events} == {late}
            r = await h.revoke(late)
            assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
            assert (await h.revoke(silent, "+14155559992")).status_code == 200  # never delivered
            assert (await h.revoke(str(uuid.uuid4()))).status_code == 404
            assert (await h.revoke(late, "+14155550199")).status_code == 404  # another phone
            entries = {e["messageId"]: e for e in (await h.http.get("/v1/local/submits")).json()["messages"]}
            assert entries[early]["revoked"] and entries[early]["revoked_by"] == "agent"
            assert not entries[early]["delivered"]
            assert entries[late]["delivered"] and not entries[late]["revoked"]
            assert entries[late]["revoke_requests"] == 1

    run(main)


def test_revoke_loses_to_ttl_revocation() -> None:
    async def main() -> None:
        async with harness(zero_latency=False) as h:
            mid = str(uuid.uuid4())
            assert (await h.send("+14155559991", message_id=mid)).status_code == 200
            h.advance(1)
            assert [e["eventType"] for e in await h.events(1)] == ["TTL_EXPIRATION_REVOKED"]
            assert (await h.revoke(mid, "+14155559991")).status_code == 404

    run(main)


# ---------------------------------------------------------------------- handshake, replies, faults


def test_webhook_validation_handshake() -> None:
    async def main() -> None:
        async with harness() as h:
            result = await h.rbm.validate_webhook()
            assert result.ok and result.status == 200 and result.body == result.secret
            assert result.secret.isdigit()
            h.receiver.handshake = lambda secret: web.json_response({"secret": secret})
            r = await h.http.post("/v1/local/webhook:validate")
            assert r.status_code == 200 and r.json()["ok"] is False and r.json()["status"] == 200
            h.receiver.handshake = lambda secret: web.Response(status=403, text=secret)
            assert not (await h.rbm.validate_webhook()).ok
            r = await h.http.post("/v1/local/webhook:validate", json={"url": "http://127.0.0.1:9/rbm"})
            assert r.json()["ok"] is False and r.json()["error"]
            assert h.rbm.stats_snapshot()["handshakes"] == 4

    run(main)


def test_user_messages_are_pushed_as_google_sends_them() -> None:
    async def main() -> None:
        async with harness() as h:
            assert (await h.send()).status_code == 200
            await h.events(2)
            path = f"/v1/local/phones/{PHONE}/userMessages"
            r = await h.http.post(path, json={"text": "STOP"})
            assert r.status_code == 200, r.text
            await h.http.post(
                path.replace("+", "%2B"), json={"location": {"latitude": 52.52, "longitude": 13.4}}
            )
            file = {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg", "fileSizeBytes": 1234}
            await h.http.post(path, json={"userFile": file, "agentId": "other_agent"})
            h.rbm.inject_user_message(PHONE, suggestion_response={"text": "Yes", "postbackData": "rg1.5.0.0"})
            events = (await h.events(6))[2:]
            assert events[0] == {
                "agentId": AGENT,
                "senderPhoneNumber": PHONE,
                "messageId": events[0]["messageId"],
                "sendTime": events[0]["sendTime"],
                "text": "STOP",
            }
            assert events[1]["location"] == {"latitude": 52.52, "longitude": 13.4}
            assert events[2]["agentId"] == "other_agent"
            assert events[2]["userFile"] == {
                "payload": {
                    "mimeType": "image/jpeg",
                    "fileSizeBytes": 1234,
                    "fileUri": "https://example.com/cat.jpg",
                    "fileName": "cat.jpg",
                }
            }
            assert events[3]["suggestionResponse"] == {
                "text": "Yes",
                "postbackData": "rg1.5.0.0",
                "type": "REPLY",
            }
            assert len({e["messageId"] for e in events}) == 4
            for bad in (
                {"text": "a", "location": {"latitude": 1, "longitude": 2}},
                {},
                {"location": {"latitude": 91, "longitude": 0}},
                {"txt": "a"},
            ):
                r = await h.http.post(path, json=bad)
                assert r.status_code == 400, bad
            r = await h.http.post("/v1/local/phones/+14155550199/userMessages", json={"text": "hi"})
            assert r.status_code == 400 and "no agentId" in r.json()["error"]["message"]

    run(main)


def test_submit_faults_and_the_journal() -> None:
    async def main() -> None:
        async with harness() as h:
            await h.token()
            mid = str(uuid.uuid4())
            await h.http.put("/v1/local/faults", json={"error_rate": 1.0})
            r = await h.send(message_id=mid)
            assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
            await h.http.put("/v1/local/faults", json={"error_rate": 0, "reset_rate": 1.0})
            with pytest.raises(httpx.TransportError):
                await h.send(message_id=mid)
            await h.http.put(
                "/v1/local/faults", json={"reset_rate": 0, "timeout_rate": 1.0, "hang_seconds": 0.05}
            )
            with pytest.raises(httpx.TransportError):
                await h.send(message_id=mid)  # processed, then the answer is lost
            await h.http.put("/v1/local/faults", json={"timeout_rate": 0})
            r = await h.send(message_id=mid)
            assert r.status_code == 200  # the resubmission finds it accepted
            events = await h.quiet()
            assert len(events) == 2  # sent once
            journal = (await h.http.get("/v1/local/submits", params={"messageId": mid})).json()["messages"]
            assert len(journal) == 1
            entry = journal[0]
            assert entry["submits"] == 4 and entry["answered"] == 2 and entry["delivered"]
            assert [a["fault"] for a in entry["attempts"]] == ["error", "reset", "timeout", "none"]
            assert [a["result"] for a in entry["attempts"]] == ["unavailable", None, "accepted", "duplicate"]
            stats = (await h.http.get("/v1/local/stats")).json()
            assert stats["faults_injected"] == {"error": 1, "reset": 1, "timeout": 1, "blackhole": 0}
            assert stats["accepted_messages"] == 1 and stats["submits"] == 4

    run(main)


# ---------------------------------------------------------------------- inside `rcsgate simulator`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_simulator_service_serves_the_local_rbm(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = Receiver("SIMULATORRBMTOKEN")
        receiver_app = web.Application()
        receiver_app.router.add_post("/rbm", receiver.handle)
        receiver_runner, receiver_port = await _start(receiver_app)
        port = _free_port()
        key_file = tmp_path / "rbm-key.json"
        trusted = tmp_path / "trusted.json"
        trusted.write_text(json.dumps(other_key()))
        options = ServiceOptions(
            report_url="http://127.0.0.1:9/unused",
            secret="shared-secret-of-the-tests-0123456789",
            port=port,
            zero_latency=True,
            rbm=True,
            rbm_webhook_url=f"http://127.0.0.1:{receiver_port}/rbm",
            rbm_client_token="SIMULATORRBMTOKEN",
            rbm_key_files=(trusted,),
            rbm_key_out=key_file,
        )
        stop = asyncio.Event()
        server = asyncio.create_task(serve(options, stop))
        try:
            deadline = time.monotonic() + 5
            while not key_file.exists():
                assert time.monotonic() < deadline and not server.done()
                await asyncio.sleep(0.01)
            key = json.loads(key_file.read_text())
            assert key["token_uri"] == f"http://127.0.0.1:{port}/token"
            assert key_file.stat().st_mode & 0o077 == 0
            for info in (key, {**other_key(), "token_uri": key["token_uri"]}):
                creds = service_account.Credentials.from_service_account_info(info, scopes=[protocol.SCOPE])
                await asyncio.to_thread(creds.refresh, Request())
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.get("/healthz")).status_code == 200  # the simulator's own routes
                assert (await http.get("/v1/faults")).status_code == 200
                r = await http.post(
                    f"/v1/phones/{PHONE}/agentMessages",
                    params={"messageId": str(uuid.uuid4()), "agentId": AGENT},
                    json=text_message(),
                    headers={"Authorization": f"Bearer {creds.token}"},
                )
                assert r.status_code == 200, r.text
            deadline = time.monotonic() + 3
            while len(receiver.events) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert receiver.bad_signatures == 0
        finally:
            stop.set()
            await server
            await receiver_runner.cleanup()

    run(main)
