"""Recovery time in the crash tests: seconds from a SIGKILL until the killed process's claims are back
in work. Its claims carry its claim_holders row (dispatch/liveness.py), which is labelled with its
host and pid; the reaper frees the claims and deletes the row in one transaction, so the claims are
back the moment the row is gone. A thread polls the table every ``interval`` seconds."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from rcsgate.config import normalize_database_url
from rcsgate.store.db import Database

HOST = socket.gethostname()
# The target (docs/PERFORMANCE.md, "Recovery time").
RECOVERY_SECONDS = 15.0


def rows(url: str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        db = Database.from_url(normalize_database_url(url))
        try:
            async with db.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(text(sql), params or {})]
        finally:
            await db.close()

    return asyncio.run(fetch())


def pid_of(label: str) -> int | None:
    """The pid in a holder's label (``host:pid role``), if it is this host's."""
    where, _, _ = label.partition(" ")
    host, _, pid = where.rpartition(":")
    return int(pid) if host == HOST and pid.isdigit() else None


@dataclass
class Kill:
    pid: int
    at: float  # monotonic time of the SIGKILL
    holders: list[int]
    claims: int  # messages (sending, or being revoked) and webhook deliveries it held
    back_after: float | None = None  # seconds until its claims were back in work


class RecoveryWatch:
    def __init__(self, url: str, *, interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self.kills: list[Kill] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def killed(self, pid: int, at: float) -> Kill:
        """Note a process just SIGKILLed at ``at`` (monotonic): its holders and what they held."""
        registered = rows(self.url, "SELECT id, label FROM claim_holders")
        holders = [int(r["id"]) for r in registered if pid_of(r["label"]) == pid]
        claims = self._claims(holders)
        kill = Kill(pid, at, holders, claims)
        if not holders:
            kill.back_after = 0.0  # it had not registered yet: it held nothing
        with self._lock:
            self.kills.append(kill)
        return kill

    def _claims(self, holders: list[int]) -> int:
        if not holders:
            return 0
        ids = ", ".join(str(h) for h in holders)
        [row] = rows(
            self.url,
            f"SELECT (SELECT count(*) FROM messages WHERE holder_id IN ({ids})"
            " AND (status = 'sending' OR (status = 'sent' AND lease_until IS NOT NULL)))"
            f" + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND holder_id IN ({ids}))"
            " AS n",
        )
        return int(row["n"])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                waiting = [k for k in self.kills if k.back_after is None]
            if not waiting:
                continue
            try:
                alive = {int(r["id"]) for r in rows(self.url, "SELECT id FROM claim_holders")}
            except Exception:  # the database busy or restarting: look again at the next tick
                continue
            now = time.monotonic()
            for kill in waiting:
                if not alive & set(kill.holders):
                    kill.back_after = now - kill.at

    def wait_all(self, timeout: float) -> list[Kill]:
        """Every kill once its claims are back (or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(k.back_after is not None for k in self.kills):
                    break
            time.sleep(self.interval)
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.kills)

    def report(self, engine: str) -> str:
        measured = [k for k in self.kills if k.claims and k.back_after is not None]
        figures = ", ".join(f"{k.back_after:.1f} s ({k.claims} claims)" for k in measured)
        worst = max((k.back_after or 0.0 for k in measured), default=0.0)
        return f"[{engine}] RECOVERY after SIGKILL: {figures or 'no kill held claims'}; worst {worst:.1f} s"

    def check(self, engine: str) -> str:
        report = self.report(engine)
        print("\n" + report)
        slow = [k for k in self.kills if k.back_after is None or k.back_after > RECOVERY_SECONDS]
        assert not slow, f"claims not back within {RECOVERY_SECONDS:g} s of the kill: {slow}; {report}"
        return report
