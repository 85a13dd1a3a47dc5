"""The embedded server (SQLite `rcsgate serve`) killed twice with SIGKILL mid-campaign and restarted:
every promise kept (see test_crash_recovery.py, whose cluster and checks this shares; a file of its
own so that the suite's two workers run the two long crash tests side by side)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import eventually
from recovery_watch import RecoveryWatch
from test_crash_recovery import (  # noqa: F401  (cluster: the fixture)
    Cluster,
    _check_promises,
    _phones,
    _prepare,
    _send_campaign,
    _settled,
    _wait_in_flight,
    cluster,
)

pytestmark = pytest.mark.slow


def test_embedded_server_killed_twice_keeps_every_promise(
    tmp_path: Path,
    cluster: Callable[[str], Cluster],  # noqa: F811  (the fixture imported above)
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}"
    c = cluster(url)
    key = _prepare(c)
    phones = _phones()
    sim = c.simulator()
    serve = c.start("serve")
    serve.wait_ready()
    with httpx.Client(base_url=serve.base, headers={"X-API-KEY": key}, timeout=30) as client:
        _send_campaign(client, phones)
    c.watch = watch = RecoveryWatch(url)
    in_flight = []
    for _ in range(2):
        # Kill mid-dispatch: this very process (the restarted one, too) has messages claimed and
        # not answered yet.
        in_flight.append(_wait_in_flight(url, c.pids, timeout=60))
        c.kill(serve)
        serve = c.start("serve")
        serve.wait_ready()
    assert all(in_flight), f"a kill found nothing in flight: {in_flight}"
    eventually(
        lambda: _settled(url, phones), what="every message and webhook settled", timeout=180, interval=1
    )
    with httpx.Client(base_url=sim.base, timeout=30) as sim_client:
        _check_promises(c, url, phones, sim_client)
    watch.wait_all(timeout=30)
    watch.check("sqlite, serve")
