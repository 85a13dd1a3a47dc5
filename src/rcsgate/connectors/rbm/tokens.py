"""Bearer tokens from a service-account key, as Google's RBM API wants them.

google-auth's ``service_account.Credentials`` signs the JWT-bearer grant and asks the key file's
``token_uri``; its refresh is synchronous (it uses ``requests``), so it runs in a thread, never on
the event loop. One token per connector, shared by all its submits: refreshed when google-auth
counts it stale (3 min 45 s before expiry) and once more when the API answers 401.
"""

from __future__ import annotations

import asyncio
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from rcsgate.connectors.rbm.protocol import SCOPE


class TokenError(Exception):
    """No token could be had (the token endpoint is down or refuses the key)."""


class ServiceAccountTokens:
    def __init__(self, info: dict[str, Any], *, timeout_seconds: float = 10.0) -> None:
        self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        self._timeout = timeout_seconds
        self._lock = asyncio.Lock()
        # The token a 401 was answered to: a refresh is forced only if nobody refreshed since.
        self.refreshes = 0

    async def token(self, *, stale: str | None = None) -> str:
        """A valid token; with ``stale``, one other than that (which the API just refused)."""
        async with self._lock:
            creds = self._credentials
            if not creds.valid or (stale is not None and creds.token == stale):
                try:
                    await asyncio.to_thread(self._refresh)
                except (google.auth.exceptions.GoogleAuthError, OSError) as exc:
                    raise TokenError(f"token refresh failed: {exc}"[:300]) from None
                self.refreshes += 1
            token = creds.token
            if not isinstance(token, str):
                raise TokenError("the token endpoint answered without an access token")
            return token

    def _refresh(self) -> None:
        request = google.auth.transport.requests.Request()
        self._credentials.refresh(_Timed(request, self._timeout))


class _Timed:
    """google-auth's request callable with a timeout, so a hung token endpoint cannot hold the thread."""

    def __init__(self, request: google.auth.transport.requests.Request, timeout: float) -> None:
        self._request = request
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._request(*args, **kwargs)
