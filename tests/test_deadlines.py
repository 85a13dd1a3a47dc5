"""rcsgate.deadlines: coarse timeouts behave as asyncio.timeout does, within their resolution."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from rcsgate.deadlines import Deadlines

RESOLUTION = 0.01

# The local RBM and the API (uvicorn picks it) run on uvloop, the workers on asyncio's own loop.
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


async def _an_await_past_its_deadline_raises_timeout_error_within_the_resolution() -> None:
    deadlines = Deadlines(RESOLUTION)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with deadlines.limit(0.05) as limit:
            await asyncio.sleep(5)
    took = loop.time() - started
    assert limit.expired
    assert 0.05 <= took < 0.05 + RESOLUTION + 0.5  # the upper bound leaves room for a busy machine
    assert deadlines.pending == 0


async def _the_task_goes_on_normally_after_a_timeout() -> None:
    deadlines = Deadlines(RESOLUTION)
    with pytest.raises(TimeoutError):
        async with deadlines.limit(0.02):
            await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.03)  # not cancelled again


async def _an_await_done_in_time_is_left_alone_and_unfiled() -> None:
    deadlines = Deadlines(RESOLUTION)
    async with deadlines.limit(0.2) as limit:
        assert deadlines.pending == 1
        await asyncio.sleep(0.01)
    assert not limit.expired
    assert deadlines.pending == 0
    await asyncio.sleep(0.3)  # the deadline's tick passes: nothing fires into this task


async def _only_the_overdue_of_many_concurrent_limits_time_out() -> None:
    deadlines = Deadlines(RESOLUTION)

    async def wait(limit: float, work: float) -> str:
        try:
            async with deadlines.limit(limit):
                await asyncio.sleep(work)
        except TimeoutError:
            return "timeout"
        return "done"

    cases = [(0.05, 0.5), (0.5, 0.01), (0.05, 0.5), (1.0, 0.1), (0.08, 5.0)]
    results = await asyncio.gather(*(wait(limit, work) for limit, work in cases))
    assert results == ["timeout", "done", "timeout", "done", "timeout"]
    assert deadlines.pending == 0


async def _a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(RESOLUTION)
    entered = asyncio.Event()

    async def body() -> None:
        async with deadlines.limit(5):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.pending == 0


async def _a_cancellation_racing_the_deadline_is_not_swallowed() -> None:
    """Cancelled from elsewhere after the deadline fired: the caller's cancellation wins, as with
    asyncio.timeout (uncancel leaves a count above the one at entry)."""
    deadlines = Deadlines(RESOLUTION)

    async def body() -> None:
        async with deadlines.limit(0.02):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                asyncio.current_task().cancel()  # type: ignore[union-attr]  # a second cancel arrives
                raise

    task = asyncio.create_task(body())
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deadlines(0)


@LOOPS
def test_an_await_past_its_deadline_raises_timeout_error_within_the_resolution(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_an_await_past_its_deadline_raises_timeout_error_within_the_resolution())


@LOOPS
def test_the_task_goes_on_normally_after_a_timeout(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    run(_the_task_goes_on_normally_after_a_timeout())


@LOOPS
def test_an_await_done_in_time_is_left_alone_and_unfiled(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_an_await_done_in_time_is_left_alone_and_unfiled())


@LOOPS
def test_only_the_overdue_of_many_concurrent_limits_time_out(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_only_the_overdue_of_many_concurrent_limits_time_out())


@LOOPS
def test_a_cancellation_from_elsewhere_stays_a_cancellation(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_a_cancellation_from_elsewhere_stays_a_cancellation())


@LOOPS
def test_a_cancellation_racing_the_deadline_is_not_swallowed(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_a_cancellation_racing_the_deadline_is_not_swallowed())
