"""Domain errors. Services raise these; ``api/errors.py`` is the one place that maps them to HTTP.

DomainError
├── NotFound            an object that does not exist *for this account*
├── Unauthenticated     missing, unknown, revoked, tampered or expired credentials
├── InvalidInput        field-level problems: {"field": ["reason", ...]}
├── Rejected            a valid request the rules refuse (e.g. "Insufficient funds")
├── RateLimited         too many requests, or the same request repeated too soon
└── Unavailable         a dependency (the database) cannot be reached right now
    └── StorageFull     the database has no space left for a write (until space is freed)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    def __init__(self, what: str = "Not found.") -> None:
        super().__init__(what)


class Unauthenticated(DomainError):
    def __init__(self, message: str = "Unauthenticated.") -> None:
        super().__init__(message)


class InvalidInput(DomainError):
    def __init__(
        self,
        errors: Mapping[str, Sequence[str]],
        message: str = "The given data was invalid.",
    ) -> None:
        super().__init__(message)
        self.errors = {field: list(reasons) for field, reasons in errors.items()}

    @classmethod
    def field(cls, name: str, reason: str) -> InvalidInput:
        return cls({name: [reason]})


class Rejected(DomainError):
    """A well-formed request that the rules refuse; reported as 422 with just a message."""


class RateLimited(DomainError):
    def __init__(self, message: str = "Too Many Attempts.", retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    def __init__(self, message: str = "Service temporarily unavailable.") -> None:
        super().__init__(message)


class StorageFull(Unavailable):
    """A write failed because the database's disk (or its size limit) is full: nothing was written,
    and the same request may succeed once space is freed."""
