"""Attacks on the bearer token beyond what test_auth.py covers: every spelling of ``alg: none``, near-miss
secrets, any edit to a genuine token, algorithm confusion, expiry tricks, revoked keys on refresh and
writes, and malformed Authorization headers.

Every refusal must be a 401 JSON ``{"message", "errors"}`` on a read, on a write (which must store
nothing) and on ``/api/auth/refresh`` — the place where a forged token would be turned into a genuine
one. Tokens are built by hand (header, payload and HMAC), so the tests control every byte; a control token
built the same way with the right secret must be accepted, which proves the refusals come from the attack
and not from the helper."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import JWT_SECRET, LiveServer
from rcsgate.services import auth

UNAUTHENTICATED = {"message": "Unauthenticated.", "errors": {}}
EXPIRED = {"message": "Token has expired.", "errors": {}}
NEW_CONTACT = 380661239876


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def hs_sign(signing_input: str, secret: str | bytes, digest: Callable[..., Any] = hashlib.sha256) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return b64(hmac.new(key, signing_input.encode(), digest).digest())


def token(
    claims: dict[str, Any],
    *,
    secret: str | bytes = JWT_SECRET,
    header: dict[str, Any] | None = None,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    signing_input = f"{segment(header or {'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims)}"
    return f"{signing_input}.{hs_sign(signing_input, secret, digest)}"


def split(jwt: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = jwt.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


class Accounts:
    """Two accounts: the attacker's (A, with a genuine token) and the victim's (B)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.a_id, self.a_key = server.new_account("attacker")
        self.b_id, self.b_key = server.new_account("victim")
        self.a_token = server.token(self.a_key)
        self.b_token = server.token(self.b_key)
        _, self.a_claims, self.a_signature = split(self.a_token)
        _, self.b_claims, _ = split(self.b_token)

    def fresh(self, claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
        now = int(self.server.clock.now().timestamp())
        return {**claims, "iat": now, "exp": now + 600, **changes}

    def contacts(self, key: str) -> int:
        with self.server.client(headers={"X-API-KEY": key}) as c:
            r = c.get("/api/contacts")
            assert r.status_code == 200, r.text
            return int(r.json()["total"])


def assert_refused(
    server: LiveServer, headers: dict[str, str], body: dict[str, Any] = UNAUTHENTICATED
) -> None:
    """A read, a write and a refresh with these headers: each a 401 with the JSON error body."""
    with server.client() as c:
        for method, path, kwargs in (
            ("GET", "/api/accounts/balance", {}),
            ("POST", "/api/contacts", {"json": {"phone": NEW_CONTACT}}),
            ("POST", "/api/auth/refresh", {}),
        ):
            r = c.request(method, path, headers=headers, **kwargs)
            assert r.status_code == 401, (headers, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json"), (headers, path)
            assert r.json() == body, (headers, path, r.text)


def assert_accepted(server: LiveServer, jwt: str, account_id: int) -> None:
    with server.client(headers={"Authorization": f"Bearer {jwt}"}) as c:
        r = c.get("/api/accounts/balance")
        assert r.status_code == 200, r.text
        r = c.post("/api/auth/refresh")
        assert r.status_code == 200, r.text
    assert split(r.json()["bearer"])[1]["sub"] == str(account_id)


@pytest.fixture
def accounts(server: LiveServer) -> Accounts:
    return Accounts(server)


def test_control_tokens_built_by_hand_are_accepted(server: LiveServer, accounts: Accounts) -> None:
    # The helper is right: the genuine token re-encoded, and a fresh one, both open the API.
    header, claims, _ = split(accounts.a_token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert token(claims).split(".")[2] == accounts.a_signature
    assert_accepted(server, token(accounts.fresh(accounts.a_claims)), accounts.a_id)
    assert_accepted(server, token(accounts.fresh(accounts.b_claims)), accounts.b_id)


def test_unsigned_tokens_in_any_spelling_are_refused(server: LiveServer, accounts: Accounts) -> None:
    claims = accounts.fresh(accounts.b_claims)  # a victim's valid claims, unsigned
    forged = []
    for alg in ("none", "None", "NONE", "nOnE"):
        unsigned = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims)}"
        forged += [f"{unsigned}.", unsigned, f"{unsigned}.{accounts.a_signature}"]
    without_alg = f"{segment({'typ': 'JWT'})}.{segment(claims)}"
    forged += [f"{without_alg}.", f"{without_alg}.{hs_sign(without_alg, JWT_SECRET)}"]
    for jwt in forged:
        assert_refused(server, {"Authorization": f"Bearer {jwt}"})
    assert accounts.contacts(accounts.a_key) == accounts.contacts(accounts.b_key) == 0


def test_near_miss_secrets_are_refused(server: LiveServer, accounts: Accounts) -> None:
    claims = accounts.fresh(accounts.b_claims)
    for secret in (
        "",
        JWT_SECRET[:-1],
        JWT_SECRET + "x",
        JWT_SECRET[:32],
        JWT_SECRET.upper(),
        JWT_SECRET.encode() + b"\x00",
    ):
        assert_refused(server, {"Authorization": f"Bearer {token(claims, secret=secret)}"})
    assert accounts.contacts(accounts.b_key) == 0


def test_any_edit_to_a_genuine_token_breaks_its_signature(server: LiveServer, accounts: Accounts) -> None:
    # The attacker holds a genuine token for account A and edits it, keeping A's signature.
    other_key = server.call(lambda db: auth.create_key(db, server.clock, account_id=accounts.a_id))
    header, claims, signature = split(accounts.a_token)
    b_kid = accounts.b_claims["kid"]
    payload_edits: list[dict[str, Any]] = [
        {**claims, "kid": other_key.info.id},  # another live key of the same account
        {**claims, "kid": b_kid},  # the victim's key
        {**claims, "sub": str(accounts.b_id), "kid": b_kid},  # the victim entirely
        {**claims, "sub": accounts.b_id, "kid": b_kid},
        {**claims, "exp": claims["exp"] + 10 * 365 * 86400},  # never expires
        {**claims, "mode": "test" if claims["mode"] == "live" else "live"},
        {k: v for k, v in claims.items() if k != "jti"},
        {**claims, "admin": True},
    ]
    original_header = accounts.a_token.split(".")[0]
    forged = [f"{original_header}.{segment(p)}.{signature}" for p in payload_edits]
    payload = accounts.a_token.split(".")[1]
    forged += [
        f"{segment({**header, 'alg': 'HS512'})}.{payload}.{signature}",  # header swapped, signature kept
        f"{segment({**header, 'kid': '1'})}.{payload}.{signature}",
        f"{original_header}.{payload}.{accounts.b_token.split('.')[2]}",  # another genuine signature
        f"{original_header}.{payload}.",  # signature stripped
        f"{original_header}.{payload}",
        f"{accounts.a_token}.{signature}",  # an extra segment
        f"{original_header}.{payload}.{signature}.x.y",  # JWE-shaped
        f"{original_header}.{payload}.{signature[:-4]}",  # signature truncated
        f"{original_header}.{accounts.b_token.split('.')[1]}.{signature}",  # the victim's genuine payload
    ]
    for jwt in forged:
        assert_refused(server, {"Authorization": f"Bearer {jwt}"})
    assert accounts.contacts(accounts.a_key) == accounts.contacts(accounts.b_key) == 0
    # The genuine token itself is untouched by all this.
    assert_accepted(server, accounts.a_token, accounts.a_id)


def test_only_hs256_is_accepted_even_with_our_own_secret(server: LiveServer, accounts: Accounts) -> None:
    # The worst case for algorithm confusion: the server's own secret, under another algorithm's name.
    claims = accounts.fresh(accounts.b_claims)
    forged = [
        token(claims, header={"alg": "HS384", "typ": "JWT"}, digest=hashlib.sha384),
        token(claims, header={"alg": "hs256", "typ": "JWT"}),
        token(claims, header={"alg": "HS256 ", "typ": "JWT"}),
    ]
    # RSA/EC/EdDSA names with an HMAC over our secret: a verifier that took the secret as a public key.
    for alg in ("RS256", "RS512", "PS256", "ES256", "EdDSA"):
        forged.append(token(claims, header={"alg": alg, "typ": "JWT"}))
    # A key supplied by the token itself (embedded JWK, a JKU to fetch): never trusted.
    attacker = b"attacker-chosen-secret-" + b"z" * 40
    forged.append(
        token(
            claims,
            secret=attacker,
            header={"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": b64(attacker)}},
        )
    )
    forged.append(
        token(claims, secret=attacker, header={"alg": "HS256", "typ": "JWT", "jku": "http://127.0.0.1:1/k"})
    )
    forged.append(token(claims, secret=b"", header={"alg": "HS256", "typ": "JWT", "kid": "/dev/null"}))
    for jwt in forged:
        assert_refused(server, {"Authorization": f"Bearer {jwt}"})
    assert accounts.contacts(accounts.b_key) == 0


def test_claims_the_server_insists_on(server: LiveServer, accounts: Accounts) -> None:
    # Signed with our secret but incomplete or ill-typed: refused, never a token that lives forever.
    claims = accounts.fresh(accounts.b_claims)
    for broken in (
        {k: v for k, v in claims.items() if k != "exp"},
        {k: v for k, v in claims.items() if k != "kid"},
        {k: v for k, v in claims.items() if k != "sub"},
        {**claims, "sub": "victim"},
        {**claims, "kid": "one"},
        {**claims, "kid": None},
        {**claims, "exp": "tomorrow"},
    ):
        assert_refused(server, {"Authorization": f"Bearer {token(broken)}"})
    assert accounts.contacts(accounts.b_key) == 0


def test_expiry_follows_the_injected_clock_and_cannot_be_edited_away(
    server: LiveServer, accounts: Accounts
) -> None:
    jwt = accounts.a_token
    _, claims, signature = split(jwt)
    server.clock.advance(3600)  # the default lifetime: now expired
    assert_refused(server, {"Authorization": f"Bearer {jwt}"}, EXPIRED)
    assert_refused(server, {"Authorization": f"Bearer: {jwt}"}, EXPIRED)  # BSG's spelling, same rule
    # Pushing exp forward without the secret breaks the signature: not "expired", simply not ours.
    header = jwt.split(".")[0]
    extended = f"{header}.{segment({**claims, 'exp': claims['exp'] + 3600})}.{signature}"
    assert_refused(server, {"Authorization": f"Bearer {extended}"})
    # A token that was already dead when it was made (validly signed) is refused as expired.
    now = int(server.clock.now().timestamp())
    stale = token({**claims, "iat": now - 7200, "exp": now - 3600})
    assert_refused(server, {"Authorization": f"Bearer {stale}"}, EXPIRED)
    # A token issued now works until its own exp, and not a second longer.
    fresh = server.token(accounts.a_key)
    server.clock.advance(3599)
    assert_accepted(server, fresh, accounts.a_id)
    server.clock.advance(1)
    assert_refused(server, {"Authorization": f"Bearer {fresh}"}, EXPIRED)
    assert accounts.contacts(accounts.a_key) == 0


def test_a_revoked_keys_tokens_cannot_refresh_or_write(server: LiveServer, accounts: Accounts) -> None:
    first = accounts.a_token
    with server.client(headers={"Authorization": f"Bearer {first}"}) as c:
        r = c.post("/api/auth/refresh")
        assert r.status_code == 200, r.text
        refreshed = r.json()["bearer"]
    key_id = split(first)[1]["kid"]
    server.call(lambda db: auth.revoke_key(db, server.clock, key_id=key_id))
    # The token from before and the one refreshed from it both die with the key, on every route kind.
    for jwt in (first, refreshed):
        assert_refused(server, {"Authorization": f"Bearer {jwt}"})
        assert_refused(server, {"Authorization": f"Bearer: {jwt}"})
    # Re-signing the revoked key's claims with a fresh expiry does not help either.
    assert_refused(server, {"Authorization": f"Bearer {token(accounts.fresh(split(first)[1]))}"})
    assert_refused(server, {"X-API-KEY": accounts.a_key})
    # The account's data was not touched: a new key shows no contact created by the refused writes.
    new_key = server.call(lambda db: auth.create_key(db, server.clock, account_id=accounts.a_id)).key
    assert accounts.contacts(new_key) == 0
    # Other accounts' tokens are unaffected.
    assert_accepted(server, accounts.b_token, accounts.b_id)


def test_malformed_authorization_headers(server: LiveServer, accounts: Accounts) -> None:
    jwt = accounts.a_token
    basic = base64.b64encode(b"attacker:" + accounts.a_key.encode()).decode()
    shapes = [
        "Bearer",  # (a trailing space is refused by the client library itself)
        "Bearer  x.y",
        "Bearer x.y",
        "Bearer .",
        "Bearer ..",
        "Bearer a.b.c.d",
        "Bearer " + "A" * 8000,
        f"Basic {basic}",
        f"Basic {jwt}",
        f"Token {jwt}",
        f"JWT {jwt}",
        f"BearerX {jwt}",
        f"Bearer Bearer {jwt}",
        f"Bearer {jwt} extra",
        f"Bearer {jwt},",
        f"Bearer {jwt}; Bearer {jwt}",
        f"Bearer\t{jwt}",
        f"Bearer {accounts.a_key}",  # an API key is not a bearer token
        jwt,
    ]
    for value in shapes:
        assert_refused(server, {"Authorization": value})
    for value in (jwt, f"Bearer {jwt}", "live_", accounts.a_key[:-1], accounts.a_key + "x"):
        assert_refused(server, {"X-API-KEY": value})
    # A bad bearer is not rescued by a good X-API-KEY beside it: the caller said who it is, and lied.
    assert_refused(server, {"Authorization": "Bearer x.y", "X-API-KEY": accounts.a_key})
    assert accounts.contacts(accounts.a_key) == 0


def test_refusals_do_not_depend_on_the_route(server: LiveServer, accounts: Accounts) -> None:
    # One forged token (the victim's claims, unsigned) against every authenticated route of the API.
    unsigned = f"{segment({'alg': 'none'})}.{segment(accounts.fresh(accounts.b_claims))}."
    spec = server.client().get("/openapi.json").json()
    open_routes = {("POST", "/api/auth/login"), ("GET", "/healthz"), ("GET", "/readyz")}
    checked = 0
    with server.client(headers={"Authorization": f"Bearer {unsigned}"}) as c:
        for path, operations in spec["paths"].items():
            for method in operations:
                if (method.upper(), path) in open_routes:
                    continue
                concrete = path.replace("{campaign_id}", "1").replace("{id}", "1")
                r = c.request(method.upper(), concrete, json={})
                assert r.status_code == 401, (method, path, r.text)
                assert r.json() == UNAUTHENTICATED, (method, path, r.text)
                checked += 1
    assert checked >= 30
    assert accounts.contacts(accounts.b_key) == 0
