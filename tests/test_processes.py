"""The real `rcsgate` processes: what `make run` does, restarts, logs, and the scaled-mode commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

RCSGATE = str(Path(sys.executable).parent / "rcsgate")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    base.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}",
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
    )
    return base


def cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([RCSGATE, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


class Proc:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.proc = subprocess.Popen([RCSGATE, *args], env=env, stdout=self.handle, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{env['RCSGATE_PORT']}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become ready:\n" + self.log.read_text())

    def wait_log(self, text: str) -> None:
        deadline = time.monotonic() + 30
        while text not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{text!r} never logged:\n" + self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then expect a graceful exit (uvicorn re-raises the signal after its clean shutdown)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.handle.close()
        assert code in (0, -signal.SIGTERM), self.log.read_text()
        assert "workers_stopped" in self.log.read_text()


def test_make_run_flow_restart_and_logs(env: dict[str, str], tmp_path: Path, started: list[Proc]) -> None:
    cmd(env, "db", "upgrade")
    demo = json.loads(cmd(env, "demo", "--json").stdout)
    again = cmd(env, "demo").stdout
    assert f"API key: {demo['api_key']}" in again

    log = tmp_path / "serve.log"
    server = Proc(env, log, "serve")
    started.append(server)
    server.wait_ready()
    with httpx.Client(base_url=server.base, timeout=10) as c:
        token = c.post("/api/auth/login", json={"api_key": demo["api_key"]}).json()["bearer"]
        r = c.get(
            "/api/accounts/balance", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"}
        )
        assert r.json() == {"data": {"balance": 100.0, "currency": "EUR", "credit": 0.0}}
        assert r.headers["x-request-id"] == "trace-42"
        # The single send's fast lane (api/fast_lane.py) still runs inside the request-id middleware
        # and answers errors in the same shape.
        r = c.post("/api/messages/rcs/send", json={}, headers={"X-Request-ID": "trace-43"})
        assert r.status_code == 401 and r.headers["x-request-id"] == "trace-43"
        assert r.json() == {"message": "Unauthenticated.", "errors": {}}
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/healthz").json() == {"status": "ok"}
        spec = c.get("/openapi.json").json()
        assert {"/api/auth/login", "/api/auth/refresh", "/api/accounts/balance", "/api/senders"} <= set(
            spec["paths"]
        )
        assert c.get("/docs").status_code == 200
    server.stop()

    # The generated secret is kept under var/, so tokens survive a restart.
    assert (tmp_path / "var" / "jwt_secret").stat().st_mode & 0o077 == 0
    server = Proc(env, log, "serve")
    started.append(server)
    server.wait_ready()
    with httpx.Client(base_url=server.base, timeout=10) as c:
        assert c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    server.stop()

    lines = [line for line in log.read_text().splitlines() if not line.startswith("rcsgate serving on")]
    records = [json.loads(line) for line in lines]  # every log line is one JSON object
    assert any(r["event"] == "Application startup complete." for r in records)
    requests = [r for r in records if r["event"] == "request"]
    assert any(r["request_id"] == "trace-42" and r["status"] == 200 and r["account_id"] for r in requests)
    assert all(r["request_id"] for r in requests)
    text = log.read_text()
    assert demo["api_key"] not in text and token not in text


def test_api_with_two_workers_and_a_separate_worker(
    env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    cmd(env, "db", "upgrade")
    key = json.loads(cmd(env, "demo", "--json").stdout)["api_key"]
    api = Proc(env, tmp_path / "api.log", "api", "--workers", "2")
    started.append(api)
    api.wait_ready()
    worker = Proc(env, tmp_path / "worker.log", "worker")
    started.append(worker)
    with httpx.Client(base_url=api.base, timeout=10) as c:
        token = c.post("/api/auth/login", json={"api_key": key}).json()["bearer"]
        # Whichever process answers, the shared secret under var/ verifies the token.
        for _ in range(10):
            assert (
                c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )
    worker.wait_log("workers_started")
    worker.stop()
    api.stop()
