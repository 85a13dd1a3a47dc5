"""``rcsgate demo``: a ready-to-try demo account."""

from __future__ import annotations

import typer

from rcsgate.cli.common import JsonFlag, emit, load_settings, run
from rcsgate.clock import SystemClock


def demo(as_json: JsonFlag = False) -> None:
    """Create (once) a demo account with 100 EUR, agent demo_agent (UA), SMS sender DemoSMS and prices."""
    from rcsgate.services.demo import ensure_demo

    settings = load_settings()
    setup = run(lambda db: ensure_demo(db, SystemClock(), var_dir=settings.var_dir))
    if as_json:
        emit(setup, True, "")
        return
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Demo account #{setup.account_id}: agent {setup.agent}, SMS sender {setup.sms_sender}")
    typer.echo(f"API key: {setup.api_key}")
    typer.echo("Try:")
    typer.echo(
        f"  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"api_key": "{setup.api_key}"}}\' | python3 -c \'import json,sys; print(json.load(sys.stdin)["bearer"])\')'
    )
    typer.echo(f'  curl -s {base}/api/accounts/balance -H "Authorization: Bearer $TOKEN"')
