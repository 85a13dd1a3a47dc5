"""What every request handler needs, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from rcsgate.clock import Clock
from rcsgate.config import Settings
from rcsgate.services.auth import TokenIssuer
from rcsgate.services.send_batcher import SendBatcher
from rcsgate.store.db import Database
from rcsgate.store.signals import Signals

from .rate_limit import AccountRateLimiter


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    tokens: TokenIssuer
    limiter: AccountRateLimiter
    # Poked after accepting messages or changing a campaign, so dispatchers (in this process, or on
    # PostgreSQL in any process) start at once instead of at their next poll.
    signals: Signals
    # Single sends of concurrent requests, accepted in shared transactions.
    sends: SendBatcher


def context_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_context(request: Request) -> AppContext:
    # async: FastAPI would run a plain function in its thread pool, a thread hop per request.
    return context_of(request)
