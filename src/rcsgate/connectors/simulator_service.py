"""The simulator as a service of its own (``rcsgate simulator``): an upstream outside our processes
that survives their crashes, answers over HTTP, pushes signed reports back, and misbehaves on
request. HTTP API and fault semantics: docs/simulator.md.

What it answers and which reports it schedules is connectors/simulation.py, exactly as in the
embedded simulator. On top of that:

* fault injection per submit (5xx, connection reset, process-then-drop timeouts, black holes,
  slow answers), decided by a generator seeded with ``(seed, message id, attempt)`` so a run is
  reproducible whatever order the submits arrive in, and changeable at run time (``PUT /v1/faults``);
* a journal of every submit and whether its answer reached the client (``GET /v1/submits``), for
  crash tests that must tell a resubmission after a lost answer from a duplicate send;
* reports pushed in due order, in signed batches, retried with backoff until rcsgate answers 2xx:
  nothing is dropped while the service runs (a stop drops what is still pending, and says so).

aiohttp's server rather than uvicorn: it exposes the request's transport, which is what lets a
fault abort the connection with a real TCP reset instead of an HTTP error answer.

With ``ServiceOptions.rbm`` the same server also plays Google RCS Business Messaging (the local
RBM, connectors/rbm/fake.py): its token endpoint and ``/v1/phones/...`` API beside the simulator's
API, its events pushed to ``rbm_webhook_url``, its local routes under ``/v1/local``. It follows the
same latency and profile options, and ``rbm_key_out`` writes a service-account key whose
``token_uri`` points at this server, for the RBM connector to use as its credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rcsgate.clock import Clock, SystemClock
from rcsgate.connectors.rbm.protocol import fingerprint
from rcsgate.connectors.simulation import Pending, Profile, ReportQueue, SimulatedUpstream
from rcsgate.connectors.simulator_wire import (
    CLIENT_HEADER,
    MAX_REPORT_BATCH,
    answer_body,
    decode_submit,
    encode_reports,
    sign_reports,
)
from rcsgate.domain.backoff import exponential_delay
from rcsgate.gc_tuning import tune_for_simulator
from rcsgate.logging_setup import configure_logging, get_logger

if TYPE_CHECKING:
    # Imported lazily at run time: the local RBM reuses this module's fault machinery.
    from rcsgate.connectors.rbm.fake import LocalRbm
    from rcsgate.connectors.smpp.fake_smsc import FakeSmsc

log = get_logger("rcsgate.simulator_service")

FaultKind = Literal["none", "error", "reset", "timeout", "blackhole"]
# A batch body stays well under the ingress limit (1 MiB) even with long postback data.
MAX_BATCH_BYTES: Final = 512 * 1024
# How long the pusher sleeps with nothing scheduled; a new report wakes it at once anyway.
_IDLE_SECONDS: Final = 1.0
_INJECTED_ERROR: Final = "injected fault"


class FaultConfig(BaseModel):
    """Fault injection, per submit. The four exclusive rates are tried in this order with one draw."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1, description="answer 503 without processing")
    reset_rate: float = Field(
        default=0.0, ge=0, le=1, description="abort the connection (TCP RST), unprocessed"
    )
    timeout_rate: float = Field(
        default=0.0, ge=0, le=1, description="process the submit, then never answer (the nasty one)"
    )
    blackhole_rate: float = Field(default=0.0, ge=0, le=1, description="never answer, unprocessed")
    slow_rate: float = Field(
        default=0.0, ge=0, le=1, description="answer after slow_seconds (independent draw)"
    )
    slow_seconds: float = Field(default=2.0, ge=0, le=600)
    # Timeouts and black holes hold the connection this long, then reset it: longer than any
    # sensible client timeout, short enough not to pile up connections forever.
    hang_seconds: float = Field(default=30.0, gt=0, le=3600)
    seed: int = 0

    @model_validator(mode="after")
    def _exclusive_rates(self) -> FaultConfig:
        if self.error_rate + self.reset_rate + self.timeout_rate + self.blackhole_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + reset_rate + timeout_rate + blackhole_rate must not exceed 1")
        return self


@dataclass(frozen=True, slots=True)
class Decision:
    kind: FaultKind
    slow: bool


def decide(config: FaultConfig, message_id: int, attempt: int) -> Decision:
    """The fault for one submit. Seeded per submit, not drawn from one stream, so concurrent
    arrival order does not change which submit of which message fails."""
    rng = random.Random(f"rcsgate-faults:{config.seed}:{message_id}:{attempt}")
    draw, slow = rng.random(), rng.random() < config.slow_rate
    bound = 0.0
    kinds: tuple[tuple[FaultKind, float], ...] = (
        ("error", config.error_rate),
        ("reset", config.reset_rate),
        ("timeout", config.timeout_rate),
        ("blackhole", config.blackhole_rate),
    )
    for kind, rate in kinds:
        bound += rate
        if draw < bound:
            return Decision(kind, slow)
    return Decision("none", slow)


@dataclass(slots=True)
class Attempt:
    fault: FaultKind
    slow: bool
    # What the upstream decided (accepted, not_capable, rejected, unavailable); None if the fault
    # struck before the submit was processed.
    result: str | None = None
    # The whole answer was handed to the client's connection. A client that gave up a moment
    # before cannot be told apart, so keep slow answers clear of the client's timeout.
    answered: bool = False
    # Who submitted (the client's X-Rcsgate-Client header: host and process id), so a crash test can
    # tell a resubmission after its submitter died from a double submit.
    client: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "slow": self.slow,
            "result": self.result,
            "answered": self.answered,
            "client": self.client,
        }


@dataclass
class ServiceOptions:
    # Where the simulator API's reports go, signed with ``secret``; None with ``rbm`` alone (a
    # local RBM for the RBM connector, nobody using the simulator's own API).
    report_url: str | None
    secret: str | None
    host: str = "127.0.0.1"
    port: int = 9090
    sent_latency: float = 0.05
    delivered_latency: float = 0.2
    read_latency: float = 1.0
    click_latency: float = 0.5
    profile: Profile = "deterministic"
    seed: int = 0
    zero_latency: bool = False
    report_timeout: float = 10.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    # The local Google RBM beside the simulator API (see the module docstring).
    rbm: bool = False
    # Where its events go; None keeps them queued (GET /v1/local/events) until one is set.
    rbm_webhook_url: str | None = None
    # Signs its events (X-Goog-Signature) and the webhook handshake; random when None.
    rbm_client_token: str | None = None
    # Service-account key files (Google's JSON) whose token grants it accepts.
    rbm_key_files: tuple[Path, ...] = ()
    # Writes a fresh key file here (mode 0600), trusted, its token_uri pointing at this server.
    rbm_key_out: Path | None = None
    # The token_uri written into rbm_key_out; default http://<host>:<port>/token (127.0.0.1 for a
    # wildcard host). Set it when clients reach the server under another name (containers).
    rbm_token_uri: str | None = None
    # What a repeated messageId gets: 200 with the first answer (default) or 409 ALREADY_EXISTS.
    rbm_duplicate_status: int = 200
    # Events in flight to the webhook at once (Pub/Sub push keeps several outstanding).
    rbm_push_concurrency: int = 8
    # A local SMSC (connectors/smpp/fake_smsc.py) on this SMPP port, its counts at /v1/local/smpp/stats.
    smpp_port: int | None = None

    def check(self) -> None:
        """Raise ValueError for options the service cannot work with."""
        if self.report_url is None and not self.rbm and self.smpp_port is None:
            raise ValueError("a report URL is needed (or the local RBM or SMSC alone: rbm, smpp_port)")
        if self.smpp_port is not None and not 1 <= self.smpp_port <= 65535:
            raise ValueError("the SMPP port must be 1-65535")
        if self.report_url is not None:
            if not self.report_url.startswith(("http://", "https://")):
                raise ValueError("the report URL must be an http:// or https:// URL")
            sign_reports(self.secret or "", b"{}")  # refuses a short secret now, not at the first push
        if not self.rbm:
            return
        for url in (self.rbm_webhook_url, self.rbm_token_uri):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError("the RBM webhook URL and token URI must be http:// or https:// URLs")
        if self.rbm_duplicate_status not in (200, 409):
            raise ValueError("the RBM duplicate status must be 200 or 409")
        for path in self.rbm_key_files:
            if not path.is_file():
                raise ValueError(f"RBM key file {path} does not exist")


@dataclass
class _Stats:
    reports_pushed: int = 0
    batches_pushed: int = 0
    push_failures: int = 0
    last_push_error: str | None = None
    bad_submits: int = 0
    faults: Counter[str] = field(default_factory=Counter)


class SimulatorService:
    def __init__(self, options: ServiceOptions, *, clock: Clock | None = None) -> None:
        options.check()
        self.options = options
        self.clock = clock or SystemClock()
        self.faults = options.faults
        self.reports = ReportQueue(on_push=self._wake)
        self.upstream = SimulatedUpstream(
            clock=self.clock,
            sent_latency=options.sent_latency,
            delivered_latency=options.delivered_latency,
            read_latency=options.read_latency,
            click_latency=options.click_latency,
            profile=options.profile,
            seed=options.seed,
            zero_latency=options.zero_latency,
            reports=self.reports,
        )
        self.journal: dict[int, list[Attempt]] = {}
        self.stats = _Stats()
        self._wakeup = asyncio.Event()
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/messages", self.submit),
                web.get("/v1/submits", self.submits),
                web.get("/v1/stats", self.stats_view),
                web.get("/v1/faults", self.faults_view),
                web.put("/v1/faults", self.set_faults),
                web.get("/healthz", self.health),
                web.get("/readyz", self.health),
            ]
        )
        self.rbm = _local_rbm(options, self.clock) if options.rbm else None
        if self.rbm is not None:
            self.rbm.mount(self.app)
        self.smsc: FakeSmsc | None = None
        if options.smpp_port is not None:
            from rcsgate.connectors.smpp.fake_smsc import FakeSmsc

            self.smsc = FakeSmsc(host=options.host, port=options.smpp_port)
            self.app.add_routes([web.get("/v1/local/smpp/stats", self.smpp_stats)])

    async def smpp_stats(self, request: web.Request) -> web.StreamResponse:
        assert self.smsc is not None
        return web.json_response(self.smsc.stats())

    def _wake(self) -> None:
        self._wakeup.set()

    # ------------------------------------------------------------------ submits

    async def submit(self, request: web.Request) -> web.StreamResponse:
        try:
            message = decode_submit(await request.read())
        except ValueError as exc:
            self.stats.bad_submits += 1
            return web.json_response({"error": str(exc)}, status=400)
        attempts = self.journal.setdefault(message.message_id, [])
        faults = self.faults  # one config for the whole submit, even if it is changed meanwhile
        decision = decide(faults, message.message_id, len(attempts) + 1)
        attempt = Attempt(
            fault=decision.kind,
            slow=decision.slow,
            client=request.headers.get(CLIENT_HEADER, "")[:100] or None,
        )
        attempts.append(attempt)
        self.stats.faults[decision.kind] += 1
        if decision.kind == "reset":
            return _reset(request)
        if decision.kind == "blackhole":
            await asyncio.sleep(faults.hang_seconds)
            return _reset(request)
        if decision.kind == "error":
            status, payload = 503, {"result": "unavailable", "error": _INJECTED_ERROR}
        else:
            status, payload = answer_body(self.upstream.submit(message))
            attempt.result = payload["result"]
            if decision.kind == "timeout":
                await asyncio.sleep(faults.hang_seconds)
                return _reset(request)
        if decision.slow:
            await asyncio.sleep(faults.slow_seconds)
        return await _answer(request, web.json_response(payload, status=status), attempt)

    async def submits(self, request: web.Request) -> web.Response:
        wanted = {int(v) for v in request.query.getall("message_id", []) if v.isdigit()}
        messages = {
            str(mid): {
                "submits": len(attempts),
                "answered": sum(a.answered for a in attempts),
                "attempts": [a.view() for a in attempts],
            }
            for mid, attempts in self.journal.items()
            if not wanted or mid in wanted
        }
        return web.json_response({"messages": messages})

    async def stats_view(self, request: web.Request) -> web.Response:
        s = self.stats
        attempts = [a for entries in self.journal.values() for a in entries]
        return web.json_response(
            {
                "pending_reports": len(self.reports),
                "reports_pushed": s.reports_pushed,
                "batches_pushed": s.batches_pushed,
                "push_failures": s.push_failures,
                "last_push_error": s.last_push_error,
                "messages": len(self.journal),
                "accepted_messages": self.upstream.accepted_count,
                "submits": len(attempts),
                "answered": sum(a.answered for a in attempts),
                "bad_submits": s.bad_submits,
                "faults_injected": {k: s.faults[k] for k in ("error", "reset", "timeout", "blackhole")},
                "slow_answers": sum(a.slow for a in attempts),
                "faults": self.faults.model_dump(),
            }
        )

    async def faults_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.model_dump())

    async def set_faults(self, request: web.Request) -> web.Response:
        """Change some knobs (the body names only those); the rest keep their values."""
        try:
            patch = await request.json()
            if not isinstance(patch, dict):
                raise ValueError("the body must be a JSON object")
            self.faults = FaultConfig.model_validate({**self.faults.model_dump(), **patch})
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            return web.json_response({"error": str(exc)}, status=422)
        log.info("simulator_faults_changed", **self.faults.model_dump())
        return web.json_response(self.faults.model_dump())

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # ------------------------------------------------------------------ reports

    async def push_reports(self) -> None:
        """Hand due reports to rcsgate in due order, one batch at a time, until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.options.report_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            failures = 0
            while True:
                self._wakeup.clear()
                now = self.clock.now()
                batch = self.reports.pop_due(now, MAX_REPORT_BATCH)
                if not batch:
                    due = self.reports.next_due()
                    wait = _IDLE_SECONDS if due is None else (due - now).total_seconds()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(_IDLE_SECONDS, max(0.0, wait))):
                            await self._wakeup.wait()
                    continue
                try:
                    error = await self._post(session, self._fit(batch))
                except BaseException:
                    self.reports.requeue(batch)  # cancelled mid-push: keep them for whoever asks
                    raise
                if error is None:
                    failures = 0
                    self.stats.reports_pushed += len(batch)
                    self.stats.batches_pushed += 1
                    continue
                # Back at their places, so the retry sends them (and nothing overtakes them) in order.
                self.reports.requeue(batch)
                failures += 1
                self.stats.push_failures += 1
                self.stats.last_push_error = error
                log.warning(
                    "simulator_report_push_failed", error=error, reports=len(batch), failures=failures
                )
                await asyncio.sleep(exponential_delay(failures, base=0.1, cap=5.0))

    def _fit(self, batch: list[Pending]) -> bytes:
        """Encode the batch, handing back its tail while the body is too large for the ingress."""
        body = encode_reports([p.report for p in batch])
        while len(batch) > 1 and len(body) > MAX_BATCH_BYTES:
            half = len(batch) // 2
            self.reports.requeue(batch[half:])
            del batch[half:]
            body = encode_reports([p.report for p in batch])
        return body

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> str | None:
        url = self.options.report_url
        assert url is not None  # push_reports runs only with a report URL
        headers = sign_reports(self.options.secret or "", body)
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"rcsgate answered {response.status}"
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]


def _local_rbm(options: ServiceOptions, clock: Clock) -> LocalRbm:
    from rcsgate.connectors.rbm.fake import LocalRbm

    rbm = LocalRbm(
        clock=clock,
        webhook_url=options.rbm_webhook_url,
        client_token=options.rbm_client_token,
        sent_latency=options.sent_latency,
        delivered_latency=options.delivered_latency,
        read_latency=options.read_latency,
        click_latency=options.click_latency,
        profile=options.profile,
        seed=options.seed,
        zero_latency=options.zero_latency,
        duplicate_status=409 if options.rbm_duplicate_status == 409 else 200,
        push_timeout=options.report_timeout,
        push_concurrency=options.rbm_push_concurrency,
    )
    for path in options.rbm_key_files:
        try:
            rbm.trust(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"RBM key file {path}: {exc}") from exc
    return rbm


def _write_rbm_key(rbm: LocalRbm, options: ServiceOptions, path: Path, port: int) -> None:
    """A fresh service-account key for the local RBM, trusted by it, readable by its owner only."""
    host = options.host if options.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    key = rbm.new_key(options.rbm_token_uri or f"http://{host}:{port}/token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(key, out, indent=2)
    path.chmod(0o600)  # an existing file keeps its mode through O_CREAT


def _reset(request: web.Request) -> web.StreamResponse:
    """Abort the connection with a TCP reset (SO_LINGER 0), leaving the client without an answer."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp finds the transport gone and writes nothing.
    return web.Response(status=503)


async def _answer(request: web.Request, response: web.StreamResponse, attempt: Attempt) -> web.StreamResponse:
    transport = request.transport
    if transport is None or transport.is_closing():
        return response  # the client left (it timed out): nobody gets this answer
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        return response
    attempt.answered = True
    return response


async def serve(options: ServiceOptions, stop: asyncio.Event) -> None:
    """Run the service until ``stop`` is set."""
    service = SimulatorService(options)
    # A short shutdown grace: held (faulted) requests would otherwise keep a stop waiting for minutes.
    runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    pusher: asyncio.Task[None] | None = None
    rbm = service.rbm
    try:
        await web.TCPSite(runner, options.host, options.port).start()
        if service.smsc is not None:
            await service.smsc.start()
            log.info("simulator_smpp_listening", host=options.host, port=options.smpp_port)
        if options.report_url is not None:
            pusher = asyncio.create_task(service.push_reports(), name="simulator-report-push")
        if rbm is not None:
            if options.rbm_key_out is not None:
                _write_rbm_key(rbm, options, options.rbm_key_out, runner.addresses[0][1])
            await rbm.start()
            # A generated token is shown whole: the webhook cannot check signatures without it.
            shown = rbm.client_token if options.rbm_client_token is None else fingerprint(rbm.client_token)
            log.info(
                "simulator_rbm_enabled",
                webhook_url=rbm.webhook_url,
                client_token=shown,
                key_file=str(options.rbm_key_out) if options.rbm_key_out else None,
            )
        log.info(
            "simulator_listening",
            host=options.host,
            port=options.port,
            report_url=options.report_url,
            **service.faults.model_dump(),
        )
        await stop.wait()
    finally:
        if pusher is not None:
            pusher.cancel()
            await asyncio.wait({pusher})
        if rbm is not None:
            await rbm.stop()
        if service.smsc is not None:
            await service.smsc.stop()
        await runner.cleanup()
        log.info("simulator_stopped", pending_reports_dropped=len(service.reports))


def run(options: ServiceOptions, *, log_level: str = "INFO") -> None:
    """The ``rcsgate simulator`` command: serve until SIGTERM or SIGINT."""
    configure_logging(log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(options, stop)

    tune_for_simulator()
    runner: Any = asyncio.run
    try:
        # The local RBM shares the cores with the rcsgate it serves (in benchmarks too): the faster
        # loop where uvicorn[standard] installed it, as the fake SMSC does (~5 % of its CPU).
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    runner(main())
