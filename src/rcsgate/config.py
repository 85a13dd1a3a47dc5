"""Settings, read from the environment with the prefix ``RCSGATE_``.

Embedded mode (an SQLite URL) is meant to start with no configuration at all, so
it generates its JWT secret and keeps it under ``var/``. A scaled deployment
(PostgreSQL) runs several processes that must share one secret, so it refuses to
start without an explicit one rather than silently issuing tokens that other
processes reject.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Claim holders' liveness (dispatch/liveness.py): the dead threshold's floor when unset, and the
# least room it must leave beyond the longest call (one beat interval and the margin).
DEFAULT_DEAD_SECONDS = 12.0
HOLDER_ROOM_SECONDS = 2.0


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says which setting to fix."""


def normalize_database_url(url: str) -> str:
    """Map the accepted URL spellings onto the async drivers we ship."""
    url = url.strip()
    if url.startswith("sqlite+aiosqlite://"):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith("postgresql+asyncpg://"):
        return url
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError(
        f"RCSGATE_DATABASE_URL must be an sqlite:// or postgresql:// URL, got {url.split('://')[0]}://…"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCSGATE_", extra="ignore")

    database_url: str = "sqlite:///./var/rcsgate.db"
    var_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_ttl_seconds: int = Field(default=3600, ge=30)
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Per-account API request budget, in the `limits` package notation.
    rate_limit: str = "200/second"
    webhooks_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Delays before each retry of a failed webhook; after the last one it is given up.
    webhook_retry_schedule: str = "5s,30s,2m,10m,30m,1h,2h,4h,8h,24h"
    # The same request body again within this window is refused with 429.
    duplicate_window_seconds: float = Field(default=10.0, ge=0)
    max_cards: int = Field(default=10, ge=1, le=10)
    # Upstream: the built-in simulator (deterministic by number suffix, or `realistic`).
    simulator_profile: str = Field(default="deterministic", pattern="^(deterministic|realistic)$")
    simulator_seed: int = 0
    simulator_zero_latency: bool = False
    simulator_sent_latency: float = Field(default=0.05, ge=0)
    simulator_delivered_latency: float = Field(default=0.2, ge=0)
    simulator_read_latency: float = Field(default=1.0, ge=0)
    worker_poll_seconds: float = Field(default=0.05, gt=0)
    # Idle loops look less and less often, up to this (work announced by a wake-up is taken at once).
    worker_idle_poll_seconds: float = Field(default=1.0, gt=0)
    # The longest a claim on a message lasts (on a webhook: twice that), whatever its holder: the
    # backstop behind liveness (below). Longer than any one upstream submit or webhook attempt.
    claim_lease_seconds: float = Field(default=60.0, ge=1)
    # A process whose liveness beat is older than this is dead: its claims are freed at once
    # (dispatch/liveness.py). Unset: the longest call timeout + 3 s, at least 12 s. A living process
    # starts no call unless its last beat is younger than this minus the call's timeout minus 1 s.
    claim_holder_dead_seconds: float | None = Field(default=None, gt=0)
    # Upstream over HTTP: the simulator service (`rcsgate simulator`) instead of the embedded one.
    upstream_url: str | None = None
    # Signs the reports the service pushes to /api/upstream/simulator/events; API processes need it.
    upstream_secret: SecretStr | None = None
    # Below the claim lease, so an unanswered submit is recorded before the claim lapses.
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    upstream_breaker_threshold: int = Field(default=5, ge=1)
    upstream_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # How often processes re-read the configured connectors and routes (`rcsgate connectors …`).
    connectors_refresh_seconds: float = Field(default=2.0, gt=0, le=5)
    # Prometheus metrics (docs/deploy.md, "Metrics"): GET /metrics on the API port (serve, api).
    metrics_enabled: bool = True
    # When set, a scrape must send `Authorization: Bearer <token>` (at least 16 characters).
    metrics_token: SecretStr | None = None
    # `rcsgate worker` serves its /metrics on this port, at metrics_host; unset: it serves none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # `rcsgate api --workers N`: the directory its processes share their metrics through, emptied of
    # them at start and at exit (one per `rcsgate api`); unset: a new temporary directory.
    metrics_dir: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from rcsgate.domain.backoff import parse_schedule

        parse_schedule(value)
        return value

    @field_validator("upstream_url")
    @classmethod
    def _upstream_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _upstream_secret(self) -> Settings:
        secret = self.upstream_secret.get_secret_value() if self.upstream_secret else ""
        if secret and len(secret) < 16:
            raise ValueError("RCSGATE_UPSTREAM_SECRET must be at least 16 characters")
        if self.upstream_url and not secret:
            raise ValueError(
                "RCSGATE_UPSTREAM_SECRET is required with RCSGATE_UPSTREAM_URL: it authenticates "
                "the upstream's reports"
            )
        return self

    @field_validator("metrics_dir", mode="before")
    @classmethod
    def _metrics_dir(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_calls(self) -> Settings:
        # A claim lapsing while its worker still waits for an answer would let a second worker
        # submit the same message (or post the same webhook) in parallel.
        longest = self._longest_call
        if self.claim_lease_seconds <= longest:
            raise ValueError(
                "RCSGATE_CLAIM_LEASE_SECONDS must be longer than RCSGATE_UPSTREAM_TIMEOUT_SECONDS "
                "and RCSGATE_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _dead_outlasts_calls(self) -> Settings:
        # A holder starts a call only while its last beat is younger than the threshold minus the
        # call's timeout minus a second's margin; with beats every second it needs two seconds of room.
        dead = self.claim_holder_dead_seconds
        if dead is not None and dead < self._longest_call + HOLDER_ROOM_SECONDS:
            raise ValueError(
                f"RCSGATE_CLAIM_HOLDER_DEAD_SECONDS must be at least {HOLDER_ROOM_SECONDS:g} s longer than "
                "RCSGATE_UPSTREAM_TIMEOUT_SECONDS and RCSGATE_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    @property
    def _longest_call(self) -> float:
        return max(self.upstream_timeout_seconds, self.webhook_timeout_seconds)

    @property
    def holder_dead_seconds(self) -> float:
        """RCSGATE_CLAIM_HOLDER_DEAD_SECONDS, or its default for the configured timeouts."""
        if self.claim_holder_dead_seconds is not None:
            return self.claim_holder_dead_seconds
        return max(DEFAULT_DEAD_SECONDS, self._longest_call + HOLDER_ROOM_SECONDS + 1)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_jwt_secret(self) -> str:
        """The signing secret: explicit, or (embedded only) generated once and kept under var/."""
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
            value = self.jwt_secret.get_secret_value()
            if len(value) < 32:
                raise ConfigError("RCSGATE_JWT_SECRET must be at least 32 characters")
            return value
        if not self.embedded:
            raise ConfigError(
                "RCSGATE_JWT_SECRET is required with a PostgreSQL database: every API process must "
                "sign and verify tokens with the same secret"
            )
        return _load_or_create_secret(self.var_dir / "jwt_secret")


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL makes two processes starting at once agree on one secret: the loser reads the winner's.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
