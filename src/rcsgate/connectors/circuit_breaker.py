"""A circuit breaker per connector: stop calling an upstream that keeps failing, probe it now and then.

closed --(threshold consecutive failures)--> open --(cool-down passed, one call let through)-->
half-open --(it succeeds)--> closed, or --(it fails)--> open for another cool-down.

While open, callers get ``allow() == False`` at once and answer TryLater without touching the
upstream, so a dead upstream costs one probe per cool-down instead of one call per message per
retry. Hand-written rather than taken from ``aiobreaker`` (unmaintained since 2021) or
``purgatory`` (exception-driven, wall-clock time, lets every call through while half-open): this
one is driven by results, admits exactly one probe and takes an injected monotonic clock.
Single event loop only: no locks, because nothing awaits between a check and its update.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from rcsgate.logging_setup import get_logger
from rcsgate.metrics.instruments import circuit

State = Literal["closed", "open", "half_open"]
log = get_logger("rcsgate.breaker")


class CircuitBreaker:
    def __init__(
        self,
        *,
        name: str,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold must be >= 1 and cooldown > 0")
        self.name, self.threshold, self.cooldown, self._clock = name, threshold, cooldown, clock
        self.state: State = "closed"
        self.failures = 0  # consecutive, while closed
        self._since = 0.0  # when the circuit opened, or when the probe was let through
        circuit(name, False)

    def allow(self) -> bool:
        """May a call go to the upstream now? In half-open state only the one probe may."""
        if self.state == "closed":
            return True
        # A probe that never reported (its task was killed) must not keep the circuit shut forever,
        # so half-open also lets another probe through after a cool-down.
        if self._clock() - self._since < self.cooldown:
            return False
        self._move("half_open")
        return True

    def admits(self) -> int | None:
        """How many calls may go now, without changing state: None (no limit) while closed, 1 for the
        probe once a cool-down has passed, else 0. Lets a caller hold work back instead of having
        it refused one by one."""
        if self.state == "closed":
            return None
        return 1 if self._clock() - self._since >= self.cooldown else 0

    def success(self) -> None:
        """The upstream answered. Any answer proves it alive, even one to a call made before opening."""
        self.failures = 0
        if self.state != "closed":
            self._move("closed")

    def failure(self) -> None:
        """A transient failure: timeout, connection error, 5xx."""
        if self.state == "half_open":
            self._move("open")
        elif self.state == "closed":
            self.failures += 1
            if self.failures >= self.threshold:
                self._move("open")
        # Open: a late failure of a call made before opening changes nothing.

    def _move(self, state: State) -> None:
        previous, self.state, self._since = self.state, state, self._clock()
        circuit(self.name, state != "closed")
        if state == "closed":
            log.info("circuit_closed", connector=self.name, was=previous)
        elif state == "open":
            log.warning("circuit_opened", connector=self.name, was=previous, cooldown=self.cooldown)
            self.failures = 0
        else:
            log.info("circuit_half_open", connector=self.name)
