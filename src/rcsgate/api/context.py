"""What every request handler needs, built once per process by the app factory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from rcsgate.clock import Clock
from rcsgate.config import Settings
from rcsgate.services.auth import TokenIssuer
from rcsgate.store.db import Database

from .rate_limit import AccountRateLimiter


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    tokens: TokenIssuer
    limiter: AccountRateLimiter
    # Set after accepting a message so an in-process dispatcher starts at once instead of at its next poll.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sweep_wake: asyncio.Event = field(default_factory=asyncio.Event)


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx
