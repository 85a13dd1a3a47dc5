"""Retry timing: the webhook redelivery schedule, exponential backoff for upstream calls, and how
long idle worker loops wait before looking for work again.

Pure functions only (no clock, no I/O) so the dispatcher can compute "next attempt at" values
inside a transaction and tests can pin the randomness with a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

__all__ = [
    "DEFAULT_WEBHOOK_SCHEDULE",
    "IdleWait",
    "exponential_delay",
    "parse_schedule",
    "retry_delay",
]

# Roughly 35 hours of cumulative retrying: long enough to ride out a receiver's weekend
# outage of a day, short enough that a dead endpoint stops costing us work.
DEFAULT_WEBHOOK_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 86400)

# Shared default generator; callers that need reproducibility pass their own.
_DEFAULT_RNG = random.Random()

_UNIT_SECONDS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TOKEN_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>ms|s|m|h|d)?", re.IGNORECASE)


def _check_jitter(jitter: float) -> None:
    # jitter >= 1 could produce zero or negative delays, which would hammer the receiver.
    if not (0.0 <= jitter < 1.0):
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")


def _jittered(value: float, jitter: float, rng: random.Random | None) -> float:
    if jitter == 0.0:
        return value
    # Symmetric, bounded jitter: spreads out retries of many deliveries that failed together
    # (one receiver outage) without drifting far from the documented schedule.
    return value * (1.0 + (rng or _DEFAULT_RNG).uniform(-jitter, jitter))


def retry_delay(
    attempt: int,
    schedule: Sequence[float],
    *,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next delivery attempt, or ``None`` to give up.

    ``attempt`` counts failed attempts so far (1 = the first attempt just failed), so
    ``schedule[attempt - 1]`` is the nominal delay. The result lies within
    ``nominal * (1 ± jitter)``.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failures and starts at 1, got {attempt}")
    _check_jitter(jitter)
    if attempt > len(schedule):
        return None
    return _jittered(float(schedule[attempt - 1]), jitter, rng)


def parse_schedule(text: str) -> tuple[float, ...]:
    """Parse a comma-separated schedule such as ``"5s,30s,2m,10m,1h,24h"`` or ``"5,30,120"``.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d`` (case-insensitive); a bare number means seconds.
    Every entry must be a positive finite duration. Order is not enforced: a flat or even
    shrinking schedule is a legitimate operator choice.
    """
    if not text or not text.strip():
        raise ValueError("retry schedule is empty; expected e.g. '5s,30s,2m,10m,1h'")
    delays: list[float] = []
    for index, raw in enumerate(text.split(","), start=1):
        token = raw.strip()
        if not token:
            raise ValueError(f"retry schedule entry {index} is empty in {text!r}")
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise ValueError(
                f"retry schedule entry {index} ({token!r}) is not a duration; "
                "use a number with an optional unit ms/s/m/h/d, e.g. '30s' or '2m'"
            )
        unit = (match["unit"] or "s").lower()
        seconds = float(match["num"]) * _UNIT_SECONDS[unit]
        # The regex already excludes signs, so only zero (and absurd magnitudes) remain to reject.
        if not (seconds > 0.0 and math.isfinite(seconds)):
            raise ValueError(f"retry schedule entry {index} ({token!r}) must be a positive duration")
        delays.append(seconds)
    return tuple(delays)


def exponential_delay(
    attempt: int,
    *,
    base: float = 1.0,
    factor: float = 2.0,
    cap: float = 300.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> float:
    """Capped exponential backoff: ``min(cap, base * factor ** (attempt - 1))`` ± jitter.

    ``attempt`` counts failures so far (1 = first failure, giving ``base``). The jittered
    value is clamped to ``cap`` so the cap is a hard upper bound callers can rely on.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failures and starts at 1, got {attempt}")
    if not (base > 0.0 and math.isfinite(base)):
        raise ValueError(f"base must be a positive finite number, got {base!r}")
    if not (factor >= 1.0 and math.isfinite(factor)):
        raise ValueError(f"factor must be a finite number >= 1, got {factor!r}")
    if not (cap >= base and math.isfinite(cap)):
        raise ValueError(f"cap must be finite and >= base ({base!r}), got {cap!r}")
    _check_jitter(jitter)
    try:
        nominal = min(cap, base * factor ** (attempt - 1))
    except OverflowError:
        # Attempt numbers grow without bound in long outages; the cap was reached long ago.
        nominal = cap
    return min(cap, _jittered(nominal, jitter, rng))


class IdleWait:
    """How long a worker loop waits before it looks for due work again: ``poll_seconds`` while it
    finds work, then twice as long after each look that found none, up to ``max_seconds``. Work
    announced by a wake-up (new messages, new outbox rows) is taken at once whatever the wait; the
    polls only find work that became due with time (schedules, retries, lapsed leases), which may so
    wait up to ``max_seconds``. An idle process then costs a few looks a second, not twenty."""

    def __init__(self, poll_seconds: float, max_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.max_seconds = max(poll_seconds, max_seconds)
        self._next = poll_seconds

    def found(self) -> None:
        self._next = self.poll_seconds

    def next(self) -> float:
        wait = self._next
        self._next = min(self._next * 2, self.max_seconds)
        return wait
