"""Login, refresh, bearer and X-API-KEY authentication, revocation and token tampering."""

from __future__ import annotations

import base64
import json

import jwt

from conftest import JWT_SECRET, LiveServer
from rcsgate.services import auth


def test_login_gives_a_bearer_that_opens_the_api(server: LiveServer) -> None:
    _, key = server.new_account()
    with server.client() as c:
        r = c.post("/api/auth/login", json={"api_key": key})
        assert r.status_code == 200
        assert set(r.json()) == {"bearer"}
        token = r.json()["bearer"]
        assert c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # BSG's own docs write "Bearer: <token>"; accept that spelling too.
        assert (
            c.get("/api/accounts/balance", headers={"Authorization": f"Bearer: {token}"}).status_code == 200
        )


def test_v1_api_key_header_works(server: LiveServer) -> None:
    _, key = server.new_account()
    with server.client() as c:
        r = c.get("/api/accounts/balance", headers={"X-API-KEY": key})
        assert r.status_code == 200
        assert c.get("/api/accounts/balance", headers={"X-API-KEY": key + "x"}).status_code == 401


def test_unknown_or_malformed_key_is_401_json(server: LiveServer) -> None:
    server.new_account()
    with server.client() as c:
        for key in ["live_" + "A" * 32, "nope", "", "test_short"]:
            r = c.post("/api/auth/login", json={"api_key": key})
            assert r.status_code in (401, 422), key
            body = r.json()
            assert set(body) == {"message", "errors"}
        r = c.post("/api/auth/login", json={"api_key": "live_" + "A" * 32})
        assert r.status_code == 401
        assert r.json() == {"message": "Unauthenticated.", "errors": {}}


def test_missing_credentials_is_401(server: LiveServer) -> None:
    with server.client() as c:
        for path in ["/api/accounts/balance", "/api/accounts/tariff", "/api/senders?type=sms"]:
            r = c.get(path)
            assert r.status_code == 401
            assert r.json()["message"] == "Unauthenticated."
        assert c.get("/api/accounts/balance", headers={"Authorization": "Basic abc"}).status_code == 401
        assert c.post("/api/auth/refresh").status_code == 401


def test_refresh_returns_a_new_working_token(server: LiveServer) -> None:
    _, key = server.new_account()
    token = server.token(key)
    server.clock.advance(5)
    with server.client() as c:
        r = c.post("/api/auth/refresh", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        fresh = r.json()["bearer"]
        assert fresh != token
        assert c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_expired_token_is_rejected_and_cannot_be_refreshed(server: LiveServer) -> None:
    _, key = server.new_account()
    token = server.token(key)
    headers = {"Authorization": f"Bearer {token}"}
    with server.client() as c:
        server.clock.advance(3599)
        assert c.get("/api/accounts/balance", headers=headers).status_code == 200
        server.clock.advance(1)
        r = c.get("/api/accounts/balance", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"message": "Token has expired.", "errors": {}}
        assert c.post("/api/auth/refresh", headers=headers).status_code == 401


def test_token_lifetime_is_configurable(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(jwt_ttl_seconds=60)
    _, key = srv.new_account()
    token = srv.token(key)
    srv.clock.advance(61)
    with srv.client() as c:
        assert c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_revoking_a_key_invalidates_its_tokens(server: LiveServer) -> None:
    account_id, key = server.new_account()
    token = server.token(key)
    other = server.call(lambda db: auth.create_key(db, server.clock, account_id=account_id))
    other_token = server.token(other.key)
    first = server.call(lambda db: auth.list_keys(db, account_id=account_id))[0]
    assert first.id != other.info.id
    server.call(lambda db: auth.revoke_key(db, server.clock, key_id=first.id))
    with server.client() as c:
        assert c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert c.get("/api/accounts/balance", headers={"X-API-KEY": key}).status_code == 401
        assert c.post("/api/auth/login", json={"api_key": key}).status_code == 401
        # The account's other key is untouched.
        assert (
            c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {other_token}"}).status_code
            == 200
        )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_forged_and_unsigned_tokens_are_rejected(server: LiveServer) -> None:
    account_id, key = server.new_account("a")
    victim_id, _ = server.new_account("b")
    token = server.token(key)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(victim_id)
    now = int(server.clock.now().timestamp())
    forged = [
        f"{header}.{_b64(claims)}.{signature}",  # payload changed, old signature
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",  # alg none
        jwt.encode({**claims, "iat": now, "exp": now + 60}, "wrong-secret-" + "y" * 40, algorithm="HS256"),
        jwt.encode(
            {**claims, "iat": now, "exp": now + 60}, JWT_SECRET, algorithm="HS512"
        ),  # not our algorithm
        token[:-2] + ("aa" if token[-2:] != "aa" else "bb"),
        "not.a.token",
    ]
    with server.client() as c:
        for bad in forged:
            r = c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
            assert r.json()["message"] in {"Unauthenticated.", "Token has expired."}
    assert account_id != victim_id


def test_token_signed_with_our_secret_but_for_a_foreign_key_is_rejected(server: LiveServer) -> None:
    account_a, key_a = server.new_account("a")
    account_b, _ = server.new_account("b")
    token = server.token(key_a)
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False})
    # Same secret, but the key named in the token belongs to another account.
    claims["sub"] = str(account_b)
    crafted = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    with server.client() as c:
        assert (
            c.get("/api/accounts/balance", headers={"Authorization": f"Bearer {crafted}"}).status_code == 401
        )
    assert account_a != account_b


def test_keys_have_the_documented_shape_and_are_stored_hashed(server: LiveServer) -> None:
    account_id, key = server.new_account()
    assert key.startswith("live_") and len(key) >= 5 + 24
    test_key = server.call(lambda db: auth.create_key(db, server.clock, account_id=account_id, mode="test"))
    assert test_key.key.startswith("test_")

    async def dump(db):  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        async with db.read() as conn:
            return [tuple(r) for r in await conn.execute(text("SELECT * FROM api_keys"))]

    rows = server.call(dump)
    flat = " ".join(str(v) for row in rows for v in row)
    assert key not in flat and key[5:] not in flat
    assert test_key.key not in flat
