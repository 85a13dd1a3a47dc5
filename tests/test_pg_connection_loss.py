"""PostgreSQL connections dropped under a running server (a database restart, a failover, an idle
timeout in a proxy): pooled connections that sat idle are checked before use, so the next request
gets a fresh connection instead of an error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from conftest import LiveServer
from rcsgate.services.demo import ensure_demo
from rcsgate.store import db as store_db

SEND = "/api/messages/rcs/send"


async def _terminate_other_backends(url: str) -> int:
    """Close every other session on the server's database, as a restart would."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(killed)
    finally:
        await conn.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_send_after_the_database_dropped_every_idle_connection_is_accepted(
    server_factory: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory()
    created = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    token = srv.token(created.api_key)

    def body(n: int) -> dict[str, object]:
        return {"phone": {"number": f"38050123456{n}"}, "sender": "demo_agent", "options": {"text": "hi"}}

    with srv.client(headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.post(SEND, json=body(0)).status_code == 200
        # Every pooled connection has now been idle "long enough" to be checked at its next use.
        monkeypatch.setattr(store_db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert asyncio.run(_terminate_other_backends(srv.db_url)) >= 1
        for n in range(1, 4):
            answer = client.post(SEND, json=body(n))
            assert answer.status_code == 200, answer.text
