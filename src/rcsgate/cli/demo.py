"""``rcsgate demo``: a ready-to-try demo account."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer

from rcsgate.cli.common import JsonFlag, emit, load_settings, run
from rcsgate.clock import SystemClock


def demo(as_json: JsonFlag = False) -> None:
    """Create (once) a demo account with 100 EUR, agent demo_agent (UA), SMS sender DemoSMS and prices,
    and its web console user demo@example.com (the password is printed only when the user is created)."""
    from rcsgate.services.demo import DemoSetup, DemoUser, ensure_demo, ensure_demo_user
    from rcsgate.store.db import Database

    settings = load_settings()
    clock = SystemClock()

    async def action(db: Database) -> tuple[DemoSetup, DemoUser]:
        setup = await ensure_demo(db, clock, var_dir=settings.var_dir)
        return setup, await ensure_demo_user(db, clock, account_id=setup.account_id)

    setup, user = run(action)
    base = f"http://{settings.host}:{settings.port}"
    console_url = f"{base}/console/"
    if as_json:
        data: dict[str, Any] = asdict(setup)
        if user.password is not None:
            data.update(console_url=console_url, console_user=user.email, console_password=user.password)
        emit(data, True, "")
        return
    typer.echo(f"Demo account #{setup.account_id}: agent {setup.agent}, SMS sender {setup.sms_sender}")
    typer.echo(f"API key: {setup.api_key}")
    if user.password is not None:
        typer.echo(f"Console: {console_url}  user: {user.email}  password: {user.password}")
    else:
        typer.echo(
            f"Console: {console_url}  user: {user.email}  (its password was printed when it was created; "
            f"to set another: rcsgate users set-password {user.email} --password-stdin)"
        )
    typer.echo("Try:")
    typer.echo(
        f"  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"api_key": "{setup.api_key}"}}\' | python3 -c \'import json,sys; print(json.load(sys.stdin)["bearer"])\')'
    )
    typer.echo(f'  curl -s {base}/api/accounts/balance -H "Authorization: Bearer $TOKEN"')
