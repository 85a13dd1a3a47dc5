"""Per-account request budget (moving window), kept in this process's memory.

Scaled deployments share nothing here yet: each API process enforces its own
budget, so N processes allow up to N times the limit.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from rcsgate.domain.errors import RateLimited


class AccountRateLimiter:
    def __init__(self, spec: str) -> None:
        self._item = parse(spec)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, account_id: int) -> None:
        key = str(account_id)
        if self._limiter.hit(self._item, "account", key):
            return
        stats = self._limiter.get_window_stats(self._item, "account", key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited("Too Many Attempts.", retry_after=retry_after)
