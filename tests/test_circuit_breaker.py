"""The circuit breaker on an injected clock (nothing sleeps), and the HTTP connector honouring it."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest

from rcsgate.connectors import circuit_breaker
from rcsgate.connectors.base import OutboundMessage, TryLater
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.connectors.http_simulator import HttpSimulatorConnector
from rcsgate.connectors.upstream_calls import CIRCUIT_OPEN


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def state(b: CircuitBreaker) -> str:
    # A call, not the attribute, so the type checker does not narrow it across calls that change it.
    return b.state


def breaker(threshold: int = 3, cooldown: float = 10.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(name="test", threshold=threshold, cooldown=cooldown, clock=clock), clock


def test_opens_after_threshold_consecutive_failures_only() -> None:
    b, _ = breaker(threshold=3)
    for _ in range(5):  # failures separated by a success never add up
        b.failure()
        b.failure()
        b.success()
    assert state(b) == "closed" and b.allow()
    b.failure()
    b.failure()
    assert state(b) == "closed"
    b.failure()
    assert state(b) == "open"
    assert not b.allow()


def test_one_probe_after_the_cooldown_then_closed_on_success() -> None:
    b, clock = breaker(threshold=1, cooldown=10.0)
    b.failure()
    clock.t += 9.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()  # the probe
    assert state(b) == "half_open"
    assert not b.allow() and not b.allow()  # everyone else waits for the probe's answer
    b.success()
    assert state(b) == "closed"
    assert all(b.allow() for _ in range(10))


def test_failed_probe_reopens_for_another_cooldown() -> None:
    b, clock = breaker(threshold=2, cooldown=5.0)
    b.failure()
    b.failure()
    clock.t += 5
    assert b.allow()
    b.failure()
    assert state(b) == "open"
    clock.t += 4.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()
    b.success()
    assert state(b) == "closed" and b.failures == 0


def test_late_results_of_calls_made_before_opening() -> None:
    b, clock = breaker(threshold=1, cooldown=5.0)
    b.failure()
    b.failure()  # a late failure while open does not extend the cool-down
    clock.t += 5
    assert b.allow()
    b, _ = breaker(threshold=1)
    b.failure()
    b.success()  # any answer proves the upstream alive
    assert state(b) == "closed"


def test_a_probe_that_never_reports_does_not_block_forever() -> None:
    b, clock = breaker(threshold=1, cooldown=5.0)
    b.failure()
    clock.t += 5
    assert b.allow()
    clock.t += 4
    assert not b.allow()
    clock.t += 1
    assert b.allow()


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **_: object) -> None:
        self.events.append(event)

    warning = info


def test_state_changes_are_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    recording = RecordingLog()
    monkeypatch.setattr(circuit_breaker, "log", recording)
    b, clock = breaker(threshold=1, cooldown=1.0)
    b.failure()
    clock.t += 1
    b.allow()
    b.success()
    b.success()  # no change, no line
    assert recording.events == ["circuit_opened", "circuit_half_open", "circuit_closed"]


@pytest.mark.parametrize("threshold, cooldown", [(0, 1.0), (1, 0.0)])
def test_invalid_settings(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(name="x", threshold=threshold, cooldown=cooldown)


def test_connector_stops_calling_a_dead_upstream() -> None:
    """Connection refused counts as a failure; once open, submits answer TryLater without a call."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    b = CircuitBreaker(name="simulator-http", threshold=2, cooldown=30.0, clock=clock)
    connector = HttpSimulatorConnector(base_url=f"http://127.0.0.1:{port}", timeout_seconds=2.0, breaker=b)
    message = OutboundMessage(
        1, "rcs", "380661231231", "agent", {"text": "hi"}, datetime.now(UTC) + timedelta(hours=1)
    )

    async def main() -> list[TryLater]:
        try:
            results = [await connector.submit(message) for _ in range(5)]
        finally:
            await connector.stop()
        assert all(isinstance(r, TryLater) for r in results)
        return results  # type: ignore[return-value]

    results = asyncio.run(main())
    assert [r.error for r in results[:2]] == ["upstream connection error: ClientConnectorError"] * 2
    assert [r.error for r in results[2:]] == [CIRCUIT_OPEN] * 3
    assert state(b) == "open"


def test_admits_tells_the_dispatcher_how_much_to_claim_without_changing_state() -> None:
    b, clock = breaker(threshold=2, cooldown=10.0)
    assert b.admits() is None  # closed: no limit
    b.failure()
    b.failure()
    assert b.admits() == 0  # open: claim nothing
    clock.t += 9.9
    assert b.admits() == 0
    clock.t += 0.1
    assert b.admits() == 1  # the probe may go
    assert b.admits() == 1 and state(b) == "open"  # asking is not taking
    assert b.allow() and state(b) == "half_open"
    b.success()
    assert b.admits() is None
