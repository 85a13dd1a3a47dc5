"""Helpers shared by every command group: errors, settings, running an action against the database, output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from rcsgate.config import ConfigError, Settings, normalize_database_url
from rcsgate.domain.errors import DomainError, InvalidInput
from rcsgate.store.db import Database
from rcsgate.store.migrate import NotMigrated, ensure_at_head

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def load_settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:
        first = str(exc).splitlines()
        raise fail(" ".join(first[:3])) from exc


def run(action: Callable[[Database], Awaitable[T]], *, check_schema: bool = True) -> T:
    """Run one async action against the configured database, turning known errors into one line."""
    settings = load_settings()

    async def main() -> T:
        db = Database.from_url(settings.database_url)
        try:
            if check_schema:
                await ensure_at_head(db)
            return await action(db)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except InvalidInput as exc:
        details = "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in exc.errors.items())
        raise fail(details or exc.message) from exc
    except (DomainError, ConfigError, NotMigrated) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(os_error(exc)) from exc
    except DBAPIError as exc:
        raise fail(database_error(exc, settings.database_url)) from exc


def os_error(exc: OSError) -> str:
    """A file that could not be read or written (named), or else a database server out of reach."""
    if exc.filename:
        cause = exc.strerror or str(exc)
        return f"cannot use {exc.filename}: {cause[:1].lower() + cause[1:]}"
    return f"cannot reach the database: {exc}"


def database_error(exc: DBAPIError, url: str | None = None) -> str:
    """The driver's own words (a missing database, say), without SQLAlchemy's statement and traceback;
    for SQLite, with the database file they are about."""
    cause = str(exc.orig).strip() or type(exc.orig).__name__
    path = sqlite_file(url) if url else None
    if path is not None:
        return f"database error: {cause} (SQLite database {path})"
    return f"database error: {cause}"


def sqlite_file(url: str) -> Path | None:
    """The absolute path of an SQLite database URL's file; None for PostgreSQL and in-memory SQLite."""
    try:
        normalized = normalize_database_url(url)
    except ConfigError:
        return None
    if not normalized.startswith("sqlite"):
        return None
    database = make_url(normalized).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.7f}"
    return value


def emit(data: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        typer.echo(json.dumps(_plain(data), indent=2, sort_keys=True))
    else:
        typer.echo(text() if callable(text) else text)
