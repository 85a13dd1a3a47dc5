import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcsgate.domain.backoff import (
    DEFAULT_WEBHOOK_SCHEDULE,
    exponential_delay,
    parse_schedule,
    retry_delay,
)


def test_default_schedule_shape() -> None:
    assert DEFAULT_WEBHOOK_SCHEDULE == (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 86400)


def test_retry_delay_follows_schedule_without_jitter() -> None:
    schedule = (5.0, 30.0, 120.0)
    assert [retry_delay(n, schedule, jitter=0) for n in (1, 2, 3)] == [5.0, 30.0, 120.0]


def test_retry_delay_gives_up_after_schedule() -> None:
    assert retry_delay(len(DEFAULT_WEBHOOK_SCHEDULE), DEFAULT_WEBHOOK_SCHEDULE) is not None
    assert retry_delay(len(DEFAULT_WEBHOOK_SCHEDULE) + 1, DEFAULT_WEBHOOK_SCHEDULE) is None
    assert retry_delay(1, ()) is None


@given(
    attempt=st.integers(min_value=1, max_value=len(DEFAULT_WEBHOOK_SCHEDULE)),
    jitter=st.floats(min_value=0, max_value=0.99),
    seed=st.integers(),
)
def test_retry_delay_jitter_bounds(attempt: int, jitter: float, seed: int) -> None:
    nominal = DEFAULT_WEBHOOK_SCHEDULE[attempt - 1]
    delay = retry_delay(attempt, DEFAULT_WEBHOOK_SCHEDULE, jitter=jitter, rng=random.Random(seed))
    assert delay is not None
    assert nominal * (1 - jitter) - 1e-9 <= delay <= nominal * (1 + jitter) + 1e-9
    assert delay > 0


def test_retry_delay_jitter_actually_varies() -> None:
    rng = random.Random(1)
    delays = {retry_delay(3, DEFAULT_WEBHOOK_SCHEDULE, rng=rng) for _ in range(20)}
    assert len(delays) > 1


def test_retry_delay_is_reproducible_with_seeded_rng() -> None:
    a = retry_delay(2, DEFAULT_WEBHOOK_SCHEDULE, rng=random.Random(42))
    b = retry_delay(2, DEFAULT_WEBHOOK_SCHEDULE, rng=random.Random(42))
    assert a == b


@pytest.mark.parametrize("attempt", [0, -1])
def test_retry_delay_rejects_bad_attempt(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(attempt, DEFAULT_WEBHOOK_SCHEDULE)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0, float("nan")])
def test_retry_delay_rejects_bad_jitter(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        retry_delay(1, DEFAULT_WEBHOOK_SCHEDULE, jitter=jitter)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s,30s,2m,10m,30m,1h,24h", (5, 30, 120, 600, 1800, 3600, 86400)),
        ("5,30,120", (5, 30, 120)),
        (" 5 s , 1M ,2H,1d ", (5, 60, 7200, 86400)),
        ("500ms,1.5s,.5m", (0.5, 1.5, 30)),
        ("60,30,30", (60, 30, 30)),
        ("1", (1,)),
    ],
)
def test_parse_schedule(text: str, expected: tuple[float, ...]) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5s,,30s", "entry 2 is empty"),
        ("5s,", "entry 2 is empty"),
        ("-5s", "not a duration"),
        ("5x", "not a duration"),
        ("abc", "not a duration"),
        ("1e3", "not a duration"),
        ("0s", "positive"),
        ("5s,0", "entry 2"),
        ("9" * 400, "positive"),
    ],
)
def test_parse_schedule_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_parse_schedule_round_trips_default() -> None:
    text = ",".join(f"{int(s)}s" for s in DEFAULT_WEBHOOK_SCHEDULE)
    assert parse_schedule(text) == DEFAULT_WEBHOOK_SCHEDULE


def test_exponential_delay_grows_and_caps() -> None:
    delays = [exponential_delay(n, jitter=0) for n in range(1, 12)]
    assert delays[:5] == [1, 2, 4, 8, 16]
    assert delays[-1] == 300
    assert exponential_delay(10_000, jitter=0) == 300  # no OverflowError


@given(attempt=st.integers(min_value=1, max_value=5000), seed=st.integers())
def test_exponential_delay_bounds(attempt: int, seed: int) -> None:
    delay = exponential_delay(attempt, base=0.5, cap=60, jitter=0.2, rng=random.Random(seed))
    nominal = min(60.0, 0.5 * 2.0 ** min(attempt - 1, 200))
    assert nominal * 0.8 - 1e-9 <= delay <= min(60.0, nominal * 1.2) + 1e-9


@pytest.mark.parametrize(
    ("base", "factor", "cap", "jitter"),
    [
        (0, 2, 300, 0.2),
        (-1, 2, 300, 0.2),
        (1, 0.5, 300, 0.2),
        (1, 2, 0.5, 0.2),
        (1, 2, 300, 1.5),
        (float("inf"), 2, 300, 0.2),
        (1, 2, float("inf"), 0.2),
    ],
)
def test_exponential_delay_rejects_bad_parameters(
    base: float, factor: float, cap: float, jitter: float
) -> None:
    with pytest.raises(ValueError):
        exponential_delay(1, base=base, factor=factor, cap=cap, jitter=jitter)


def test_exponential_delay_rejects_bad_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        exponential_delay(0)
