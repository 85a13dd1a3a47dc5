"""Single sends from concurrent requests are accepted in shared transactions (services/send_batcher):
each request must still get exactly the answer it would get alone — repeats, references, keys and
funds decided in arrival order, nothing stored for a refused request, and a revoked key refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveServer
from rcsgate.services import accounts, auth
from rcsgate.services.demo import ensure_demo
from rcsgate.store.db import Database
from rcsgate.store.tables import ledger_entries, messages

SEND = "/api/messages/rcs/send"


def text_body(phone: str, reference: str | None = None, text: str = "hi") -> dict[str, Any]:
    return {
        "phone": {"number": phone, **({"reference_id": reference} if reference else {})},
        "sender": "demo_agent",
        "options": {"text": text},
    }


@pytest.fixture
def demo(server_factory: Callable[..., LiveServer]) -> tuple[LiveServer, int, str]:
    srv = server_factory()  # no dispatcher: what is accepted stays as accepted
    created = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    return srv, created.account_id, srv.token(created.api_key)


def fire(srv: LiveServer, token: str, bodies: list[dict[str, Any]], **headers: str) -> list[httpx.Response]:
    """POST every body at once (one connection each), answers in the bodies' order."""

    def post(body: dict[str, Any]) -> httpx.Response:
        with srv.client(headers={"Authorization": f"Bearer {token}", **headers}) as c:
            return c.post(SEND, json=body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def count(srv: LiveServer, query: Any) -> int:
    async def run(db: Database) -> int:
        async with db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    return srv.call(run)


def test_concurrent_distinct_sends_are_all_accepted_with_distinct_ids(
    demo: tuple[LiveServer, int, str],
) -> None:
    srv, account_id, token = demo
    answers = fire(srv, token, [text_body(f"38066{i:07d}") for i in range(40)])
    assert [r.status_code for r in answers] == [200] * 40
    ids = [r.json()["data"]["id"] for r in answers]
    assert len(set(ids)) == 40
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.account_id == account_id))
        == 40
    )
    # One reservation per message, each of the text price.
    reserved = select(func.count()).where(
        ledger_entries.c.kind == "reserve", ledger_entries.c.message_id.in_(ids)
    )
    assert count(srv, reserved) == 40


def test_concurrent_repeats_of_one_body_give_one_message(demo: tuple[LiveServer, int, str]) -> None:
    srv, account_id, token = demo
    answers = fire(srv, token, [text_body("380661231231")] * 12)
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 1, 429: 11}, codes
    refused = [r for r in answers if r.status_code == 429]
    assert all(r.json()["message"] == "Too many duplicate request detected" for r in refused)
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.account_id == account_id)) == 1
    )


def test_concurrent_uses_of_one_idempotency_key_replay_one_answer(demo: tuple[LiveServer, int, str]) -> None:
    srv, account_id, token = demo
    answers = fire(srv, token, [text_body("380661231231")] * 8, **{"Idempotency-Key": "same-key"})
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.json()["data"]["id"] for r in answers}) == 1
    # The same key with another body, at the same moment: refused, whatever the order.
    mixed = fire(
        srv, token, [text_body("380661231232"), text_body("380661231233")], **{"Idempotency-Key": "k2"}
    )
    assert sorted(r.status_code for r in mixed) == [200, 422]
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.account_id == account_id)) == 2
    )


def test_concurrent_sends_of_one_reference_accept_one(demo: tuple[LiveServer, int, str]) -> None:
    srv, _, token = demo
    answers = fire(srv, token, [text_body(f"38066123{i:04d}", reference="ref1") for i in range(10)])
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 1, 422: 9}, codes
    assert all("phone.reference_id" in r.json()["errors"] for r in answers if r.status_code == 422)
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.reference_id == "ref1")) == 1
    )


def test_funds_for_part_of_a_burst_accept_exactly_that_part(demo: tuple[LiveServer, int, str]) -> None:
    srv, account_id, token = demo
    balance = srv.call(lambda db: accounts.get_account(db, account_id)).balance
    # Leave exactly 7 text messages' worth (0.02 each) of the demo balance.
    srv.call(
        lambda db: accounts.topup(db, srv.clock, account_id=account_id, amount=str(Decimal("0.14") - balance))
    )
    answers = fire(srv, token, [text_body(f"38066{i:07d}") for i in range(20)])
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 7, 422: 13}, codes
    assert all(
        r.json() == {"message": "Insufficient funds", "errors": {}} for r in answers if r.status_code == 422
    )
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.account_id == account_id)) == 7
    )
    reserved = select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
        ledger_entries.c.account_id == account_id, ledger_entries.c.kind == "reserve"
    )
    assert count(srv, reserved) == 7 * 200_000  # 0.02 in 10^-7 units
    after = srv.call(lambda db: accounts.get_account(db, account_id))
    assert after.balance == Decimal("0.14") and after.reserved_units == 7 * 200_000  # reserved, not charged


def test_a_revoked_keys_token_is_refused_by_the_batch(demo: tuple[LiveServer, int, str]) -> None:
    srv, account_id, token = demo
    keys = srv.call(lambda db: auth.list_keys(db, account_id=account_id))
    for key in keys:
        srv.call(lambda db, key_id=key.id: auth.revoke_key(db, srv.clock, key_id=key_id))
    answers = fire(srv, token, [text_body(f"38066{i:07d}") for i in range(5)])
    assert [r.status_code for r in answers] == [401] * 5
    # Credentials are judged before the body, as on every route.
    assert fire(srv, token, [{"phone": {}}])[0].status_code == 401
    assert (
        count(srv, select(func.count()).select_from(messages).where(messages.c.account_id == account_id)) == 0
    )
