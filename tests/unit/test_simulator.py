"""The simulated upstream: every suffix's outcome on both channels, timing driven only by the
injected clock, idempotent resubmission, sink failures, the realistic profile, zero-latency mode.

Tests move a ManualClock and then poll the collected reports with short real sleeps; nothing
sleeps for a simulated latency."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from rcsgate.clock import ManualClock
from rcsgate.connectors.base import (
    Accepted,
    ClickReport,
    Connector,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    StatusReport,
    SubmitResult,
    TryLater,
)
from rcsgate.connectors.simulator import MAX_SINK_ATTEMPTS, SimulatorConnector

T = TypeVar("T")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TICK = 0.002
# Default latencies: delivered at +0.25 (sent 0.05 + delivered 0.2), read +1.0 later, click +0.5.
DELIVERED = 0.25
READ = 1.25
CLICK = 1.75

CARD_CONTENT: dict[str, Any] = {
    "cards": [
        {
            "title": "Sale",
            "text": "50% off",
            "suggestions": [
                {"type": "link", "text": "Open", "url": "https://example.com", "postback_data": "open-1"},
                {"type": "call", "text": "Call", "phone": "12025550100", "postback_data": "call-1"},
            ],
        },
        {"text": "second card", "suggestions": [{"type": "link", "text": "Other", "url": "https://e.com"}]},
    ]
}


# --------------------------------------------------------------------- helpers


class Collector:
    """A report sink that records what it was given; optionally fails its first ``fail`` calls."""

    def __init__(self, fail: int = 0) -> None:
        self.reports: list[Report] = []
        self.calls = 0
        self.fail = fail

    async def __call__(self, reports: Sequence[Report]) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError("database is locked")
        self.reports.extend(reports)


def message(
    message_id: int, suffix: str = "1234", channel: str = "rcs", content: dict[str, Any] | None = None
) -> OutboundMessage:
    default: dict[str, Any] = {"text": "hello"} if channel == "sms" else CARD_CONTENT
    return OutboundMessage(
        message_id=message_id,
        channel=channel,  # type: ignore[arg-type]
        phone="4477009" + suffix,
        sender="Acme",
        content=default if content is None else content,
        expires_at=T0 + timedelta(hours=1),
    )


def run_sim(
    body: Callable[[SimulatorConnector, ManualClock, Collector], Awaitable[T]],
    *,
    sink: Collector | None = None,
    **options: Any,
) -> T:
    """Run ``body`` against a started simulator on a fresh ManualClock, stopping it afterwards."""

    async def main() -> T:
        clock = ManualClock(T0)
        options.setdefault("tick", TICK)
        sim = SimulatorConnector(clock=clock, **options)
        collector = sink or Collector()
        await sim.start(collector)
        try:
            return await body(sim, clock, collector)
        finally:
            await sim.stop()

    return asyncio.run(main())


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Give the background task several ticks, to show that something does *not* happen."""
    await asyncio.sleep(TICK * 10)


async def submit_until_accepted(sim: SimulatorConnector, msg: OutboundMessage) -> list[SubmitResult]:
    results: list[SubmitResult] = []
    for _ in range(10):
        result = await sim.submit(msg)
        results.append(result)
        if not isinstance(result, TryLater):
            break
    return results


def seen_one(report: Report) -> str:
    return report.status if isinstance(report, StatusReport) else "click"


def seen(collector: Collector) -> list[tuple[str, float]]:
    """Reports as (status or 'click', seconds after T0)."""
    return [(seen_one(r), round((r.at - T0).total_seconds(), 6)) for r in collector.reports]


# --------------------------------------------------------------------- outcome table

# suffix -> (submit result type after any TryLaters, reports as (status, due offset))
RCS_ROWS: dict[str, tuple[type, list[tuple[str, float]]]] = {
    "1234": (Accepted, [("delivered", DELIVERED), ("read", READ)]),
    "9990": (NotCapable, []),
    "9991": (Accepted, [("undelivered", DELIVERED)]),
    "9992": (Accepted, []),
    "9993": (Accepted, [("delivered", DELIVERED)]),
    "9994": (Accepted, [("delivered", DELIVERED), ("read", READ), ("click", CLICK)]),
    "9995": (Rejected, []),
    "9996": (NotCapable, []),
    "9997": (Accepted, [("delivered", DELIVERED), ("read", READ)]),
}
SMS_ROWS: dict[str, tuple[type, list[tuple[str, float]]]] = {
    "1234": (Accepted, [("delivered", DELIVERED)]),
    **{s: (Accepted, [("delivered", DELIVERED)]) for s in ("9990", "9991", "9992", "9993", "9994")},
    "9995": (Rejected, []),
    "9996": (Accepted, [("undelivered", DELIVERED)]),
    "9997": (Accepted, [("delivered", DELIVERED)]),
}
CASES = [("rcs", s, *row) for s, row in RCS_ROWS.items()] + [("sms", s, *row) for s, row in SMS_ROWS.items()]


@pytest.mark.parametrize(("channel", "suffix", "result_type", "expected"), CASES)
def test_outcome_table(
    channel: str, suffix: str, result_type: type, expected: list[tuple[str, float]]
) -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        results = await submit_until_accepted(sim, message(1, suffix, channel))
        assert isinstance(results[-1], result_type)
        if suffix == "9997":
            assert [type(r) for r in results] == [TryLater, TryLater, TryLater, Accepted]
        else:
            assert len(results) == 1
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) >= len(expected))
        await settle()
        assert seen(sink) == expected
        assert all(r.message_id == 1 for r in sink.reports)
        assert sim.pending == 0

    run_sim(body)


def test_failure_results_carry_the_documented_reasons() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        assert await sim.submit(message(1, "9995")) == Rejected("rejected by upstream")
        assert await sim.submit(message(2, "9995", "sms")) == Rejected("rejected by upstream")
        assert await sim.submit(message(3, "9990")) == NotCapable()
        assert await sim.submit(message(4, "9997")) == TryLater("upstream unreachable")

    run_sim(body)


def test_name_and_protocol() -> None:
    sim: Connector = SimulatorConnector(clock=ManualClock(T0))
    assert sim.name == "simulator"


# --------------------------------------------------------------------- timing


def test_no_report_before_its_due_time() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        assert await sim.submit(message(1)) == Accepted("sim-1")
        clock.advance(DELIVERED - 0.001)
        await settle()
        assert sink.reports == []
        clock.advance(0.002)
        await wait_for(lambda: len(sink.reports) == 1)
        assert sink.reports == [StatusReport(1, "delivered", T0 + timedelta(seconds=DELIVERED))]

        clock.advance(READ - DELIVERED - 0.002)  # 1 ms before the read is due
        await settle()
        assert len(sink.reports) == 1
        clock.advance(0.001)  # exactly due: now >= due fires
        await wait_for(lambda: len(sink.reports) == 2)
        assert sink.reports[1] == StatusReport(1, "read", T0 + timedelta(seconds=READ))

    run_sim(body)


def test_latencies_are_configurable_and_at_is_the_due_time() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        clock.advance(5)
        await sim.submit(message(1, "9994"))
        clock.advance(100)
        await wait_for(lambda: len(sink.reports) == 3)
        # Handed over 100 s late, but stamped with the moments they were due.
        assert seen(sink) == [("delivered", 8.0), ("read", 15.0), ("click", 26.0)]

    run_sim(body, sent_latency=1, delivered_latency=2, read_latency=7, click_latency=11)


def test_due_order_across_messages_and_ties_in_scheduling_order() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        await sim.submit(message(1))
        clock.advance(0.1)
        await sim.submit(message(2))
        await sim.submit(message(3, "9993"))
        clock.advance(60)  # everything becomes due in one step
        await wait_for(lambda: len(sink.reports) == 5)
        assert [(r.message_id, seen_one(r)) for r in sink.reports] == [
            (1, "delivered"),
            (1, "read"),  # read_latency 0: same due time as delivered, scheduled after it
            (2, "delivered"),
            (2, "read"),
            (3, "delivered"),
        ]

    run_sim(body, read_latency=0)


def test_delivered_before_read_even_when_both_due_at_once() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        for i in range(20):
            await sim.submit(message(i))
        clock.advance(3600)
        await wait_for(lambda: len(sink.reports) == 40)
        for i in range(20):
            mine = [seen_one(r) for r in sink.reports if r.message_id == i]
            assert mine == ["delivered", "read"]
        ats = [r.at for r in sink.reports]
        assert ats == sorted(ats)

    run_sim(body)


def test_reports_scheduled_before_start_are_delivered_after_it() -> None:
    async def main() -> None:
        clock = ManualClock(T0)
        sim = SimulatorConnector(clock=clock, tick=TICK)
        await sim.submit(message(1, "9993"))
        clock.advance(1)
        sink = Collector()
        await sim.start(sink)
        try:
            await wait_for(lambda: len(sink.reports) == 1)
        finally:
            await sim.stop()

    asyncio.run(main())


# --------------------------------------------------------------------- submit semantics


def test_9997_fails_three_times_then_accepts() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        msg = message(7, "9997")
        for n in range(1, 4):
            assert await sim.submit(msg) == TryLater("upstream unreachable")
            assert sim.submits.counts[7] == n
        assert sim.pending == 0
        accepted = await sim.submit(msg)
        assert accepted == Accepted("sim-7")
        assert await sim.submit(msg) == accepted  # later submits: the same answer, nothing new
        assert sim.submits.counts[7] == 5
        assert sim.pending == 2
        # The count is per message id: another 9997 message starts from scratch.
        assert isinstance(await sim.submit(message(8, "9997")), TryLater)

    run_sim(body)


def test_resubmit_is_idempotent() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        msg = message(42, "9994")
        first = await sim.submit(msg)
        clock.advance(0.1)
        second = await sim.submit(msg)
        assert first == second == Accepted("sim-42")
        assert sim.submits.counts == {42: 2}
        assert sim.pending == 3
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) == 3)
        await settle()
        # Reports keep the timing of the first submission.
        assert seen(sink) == [("delivered", DELIVERED), ("read", READ), ("click", CLICK)]

    run_sim(body)


def test_submit_log_counts_every_call() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        await sim.submit(message(1))
        await sim.submit(message(2, "9995"))
        await sim.submit(message(2, "9995"))
        await sim.submit(message(3, "9990"))
        assert sim.submits.counts == {1: 1, 2: 2, 3: 1}

    run_sim(body)


# --------------------------------------------------------------------- clicks


def test_click_carries_first_suggestion_of_first_card() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        await sim.submit(message(9, "9994"))
        clock.advance(CLICK)
        await wait_for(lambda: len(sink.reports) == 3)
        assert sink.reports[2] == ClickReport(9, "Open", "open-1", T0 + timedelta(seconds=CLICK))

    run_sim(body)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"text": "plain text, no cards"}, None),
        ({"cards": [{"text": "no buttons"}]}, None),
        ({"cards": [{"text": "empty", "suggestions": []}]}, None),
        ({"cards": []}, None),
        (
            {
                "cards": [
                    {"text": "x", "suggestions": [{"type": "link", "text": "Go", "url": "https://e.com"}]}
                ]
            },
            ("Go", None),
        ),
        (
            {
                "cards": [
                    {"text": "x", "suggestions": [{"type": "call", "text": "Call", "postback_data": "c"}]}
                ]
            },
            ("Call", "c"),
        ),
    ],
)
def test_click_only_when_there_is_a_first_suggestion(
    content: dict[str, Any], expected: tuple[str, str | None] | None
) -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        await sim.submit(message(9, "9994", content=content))
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) >= 2)
        await settle()
        clicks = [r for r in sink.reports if isinstance(r, ClickReport)]
        if expected is None:
            assert clicks == []
            assert [seen_one(r) for r in sink.reports] == ["delivered", "read"]
        else:
            assert [(c.text, c.postback_data) for c in clicks] == [expected]

    run_sim(body)


# --------------------------------------------------------------------- sink failures


def test_sink_exception_is_retried_on_a_later_tick() -> None:
    sink = Collector(fail=2)

    async def body(sim: SimulatorConnector, clock: ManualClock, s: Collector) -> None:
        await sim.submit(message(1))
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) == 2)
        await settle()
        # The failing batch was retried in place: order kept, nothing duplicated.
        assert seen(sink) == [("delivered", DELIVERED), ("read", READ)]
        assert sink.calls == 3

    run_sim(body, sink=sink)


def test_poison_report_is_dropped_and_the_task_survives() -> None:
    sink = Collector(fail=MAX_SINK_ATTEMPTS)

    async def body(sim: SimulatorConnector, clock: ManualClock, s: Collector) -> None:
        await sim.submit(message(1, "9993"))
        clock.advance(60)
        await wait_for(lambda: sink.calls >= MAX_SINK_ATTEMPTS and sim.pending == 0)
        assert sink.reports == []
        await sim.submit(message(2, "9993"))
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) == 1)
        assert sink.reports[0].message_id == 2
        assert sink.calls == MAX_SINK_ATTEMPTS + 1

    run_sim(body, sink=sink)


# --------------------------------------------------------------------- lifecycle


def test_stop_drops_pending_reports_and_can_restart() -> None:
    async def main() -> None:
        clock = ManualClock(T0)
        sim = SimulatorConnector(clock=clock, tick=TICK)
        sink = Collector()
        await sim.stop()  # not started: nothing to do
        await sim.start(sink)
        with pytest.raises(RuntimeError):
            await sim.start(sink)
        await sim.submit(message(1))
        assert sim.pending == 2
        await sim.stop()
        assert sim.pending == 0
        clock.advance(60)
        await sim.start(sink)
        await settle()
        assert sink.reports == []
        # The upstream still remembers what it accepted.
        assert await sim.submit(message(1)) == Accepted("sim-1")
        assert sim.pending == 0
        await sim.stop()
        await sim.stop()

    asyncio.run(main())


def test_stop_hands_over_the_reports_already_due() -> None:
    """A worker stopping gracefully must not lose the answers to what it just submitted."""

    async def main() -> None:
        clock = ManualClock(T0)
        sim = SimulatorConnector(clock=clock, tick=60.0)  # the loop would not look again for a minute
        sink = Collector()
        await sim.start(sink)
        await settle()
        for mid in (1, 2, 3):
            await sim.submit(message(mid))
        clock.advance(DELIVERED)  # delivered is due, read is not
        await sim.stop()
        delivered = sorted(r.message_id for r in sink.reports if isinstance(r, StatusReport))
        assert delivered == [1, 2, 3]
        assert all(r.status == "delivered" for r in sink.reports if isinstance(r, StatusReport))
        assert sim.pending == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"sent_latency": -1},
        {"delivered_latency": float("nan")},
        {"read_latency": float("inf")},
        {"click_latency": -0.1},
        {"tick": 0},
        {"profile": "chaotic"},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatorConnector(clock=ManualClock(T0), **options)


# --------------------------------------------------------------------- realistic profile


async def _realistic_run(
    seed: int, count: int, channel: str = "rcs"
) -> tuple[list[SubmitResult], list[Report]]:
    clock = ManualClock(T0)
    sim = SimulatorConnector(clock=clock, profile="realistic", seed=seed, tick=TICK)
    sink = Collector()
    # Submitted before start, so the whole batch is drained in one go once the clock moves.
    results = [await sim.submit(message(i, f"{i % 9000:04d}", channel)) for i in range(count)]
    expected = sim.pending
    clock.advance(3600)
    await sim.start(sink)
    try:
        await wait_for(lambda: len(sink.reports) == expected)
    finally:
        await sim.stop()
    return results, sink.reports


def test_realistic_profile_is_reproducible_per_seed() -> None:
    a = asyncio.run(_realistic_run(seed=7, count=300))
    b = asyncio.run(_realistic_run(seed=7, count=300))
    c = asyncio.run(_realistic_run(seed=8, count=300))
    assert a == b
    assert a != c


def test_realistic_outcome_is_keyed_by_message_not_by_order() -> None:
    async def main() -> None:
        sims = [SimulatorConnector(clock=ManualClock(T0), profile="realistic", seed=3) for _ in range(2)]
        ids = list(range(200))
        forward = [await sims[0].submit(message(i)) for i in ids]
        backward = {i: await sims[1].submit(message(i)) for i in reversed(ids)}
        assert forward == [backward[i] for i in ids]

    asyncio.run(main())


def test_realistic_proportions_and_jitter() -> None:
    n = 2000
    results, reports = asyncio.run(_realistic_run(seed=1, count=n))
    by_message: dict[int, list[str]] = {}
    for r in reports:
        by_message.setdefault(r.message_id, []).append(seen_one(r))
    outcomes: Counter[str] = Counter()
    for i, result in enumerate(results):
        if isinstance(result, NotCapable):
            outcomes["not_capable"] += 1
            assert i not in by_message
        else:
            assert isinstance(result, Accepted)
            outcomes["+".join(by_message[i])] += 1
    assert set(outcomes) == {"not_capable", "delivered+read", "undelivered", "delivered"}
    assert 0.74 * n <= outcomes["delivered+read"] <= 0.86 * n
    assert 0.06 * n <= outcomes["not_capable"] <= 0.14 * n
    assert 0.025 * n <= outcomes["undelivered"] <= 0.08 * n
    assert 0.025 * n <= outcomes["delivered"] <= 0.08 * n

    # Nominal delivered offset 0.25 s and read gap 1.0 s, each jittered by +-50%.
    first = {r.message_id: r.at for r in reports if seen_one(r) in ("delivered", "undelivered")}
    offsets = [(at - T0).total_seconds() for at in first.values()]
    assert all(0.25 * 0.5 - 1e-9 <= o <= 0.25 * 1.5 + 1e-9 for o in offsets)
    assert max(offsets) - min(offsets) > 0.15
    gaps = [(r.at - first[r.message_id]).total_seconds() for r in reports if seen_one(r) == "read"]
    assert all(0.5 - 1e-9 <= g <= 1.5 + 1e-9 for g in gaps)


def test_realistic_sms_is_never_not_capable() -> None:
    results, reports = asyncio.run(_realistic_run(seed=1, count=1000, channel="sms"))
    assert all(isinstance(r, Accepted) for r in results)
    statuses = Counter(seen_one(r) for r in reports)
    assert set(statuses) == {"delivered", "undelivered"}
    assert statuses["delivered"] + statuses["undelivered"] == 1000
    assert 0.025 * 1000 <= statuses["undelivered"] <= 0.08 * 1000


def test_realistic_keeps_special_suffixes() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> None:
        for i in range(50):
            assert await sim.submit(message(100 + i, "9995")) == Rejected("rejected by upstream")
            assert await sim.submit(message(200 + i, "9990")) == NotCapable()
        assert await sim.submit(message(1, "9994")) == Accepted("sim-1")
        clock.advance(60)
        await wait_for(lambda: len(sink.reports) == 3)
        assert seen(sink) == [("delivered", DELIVERED), ("read", READ), ("click", CLICK)]

    run_sim(body, profile="realistic", seed=5)


# --------------------------------------------------------------------- zero latency


def test_zero_latency_delivers_a_thousand_messages_quickly() -> None:
    async def body(sim: SimulatorConnector, clock: ManualClock, sink: Collector) -> float:
        started = time.monotonic()
        for i in range(1000):
            assert isinstance(await sim.submit(message(i)), Accepted)
        # The clock never moves: every report is due at submission time.
        await wait_for(lambda: len(sink.reports) == 2000)
        elapsed = time.monotonic() - started
        assert all(r.at == T0 for r in sink.reports)
        return elapsed

    # A tick far longer than the test: only the wake-up on submit can deliver in time.
    elapsed = run_sim(body, zero_latency=True, tick=30)
    assert elapsed < 2.0
