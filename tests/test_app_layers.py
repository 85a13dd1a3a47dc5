"""The order of the API's layers: rcsgate's request middleware (request id, access log, size limits)
and the fast lane wrap FastAPI's whole stack (api/app.RcsgateApi), so even an answer Starlette's
error middleware makes carries the request's id."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from conftest import ServerThread, make_settings
from rcsgate.api.app import create_app
from rcsgate.clock import ManualClock


def test_an_unhandled_error_is_a_500_that_carries_its_request_id(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copy(sqlite_template, tmp_path / "rcsgate.db")
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'rcsgate.db'}", tmp_path / "var")
    app = create_app(settings, clock=ManualClock(), configure_logs=False)

    @app.get("/api/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with ServerThread(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        failed = httpx.get(base + "/api/test-only/boom", headers={"x-request-id": "trace-500"}, timeout=10)
        fine = httpx.get(base + "/healthz", headers={"x-request-id": "trace-200"}, timeout=10)
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "trace-500"
    assert "a bug" not in failed.text  # no internals in the answer
    assert fine.status_code == 200 and fine.headers["x-request-id"] == "trace-200"
