"""The local RBM's side of Google's service-account authentication: key files that google-auth
accepts, the OAuth2 JWT-bearer token endpoint, and bearer-token checks on the API.

* ``make_service_account_key`` writes what the Cloud console's "Create key" downloads, with its
  ``token_uri`` pointing at the local RBM, so the real connector and google-auth run unchanged.
  It has no ``universe_domain`` other than googleapis.com: any other value makes google-auth sign
  its own JWT instead of asking the token endpoint, and the local RBM would never see a grant.
* ``TokenAuthority.grant`` checks the assertion as Google's endpoint does: RS256 signed by a key
  trusted for its ``iss`` (the client email), ``aud`` the Google token URL (google-auth hard-codes
  it even for a custom ``token_uri``), unexpired on the injected clock, at most an hour long, and
  a ``scope`` that includes RBM's. Refusals are OAuth errors (400 ``invalid_grant``,
  ``invalid_scope``, ``unsupported_grant_type``, ``invalid_request``) with Google's wording, so
  google-auth raises its usual ``RefreshError``.
* Access tokens live ``lifetime`` seconds on the injected clock; ``expire_all`` ends every token at
  once so a client's refresh-after-401 path can be exercised.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rcsgate.clock import Clock
from rcsgate.connectors.rbm.protocol import JWT_BEARER_GRANT, SCOPE, TOKEN_AUDIENCE

DEFAULT_CLIENT_EMAIL: Final = "rbm-agent@rbm-local.iam.gserviceaccount.com"
TOKEN_LIFETIME: Final = 3600
# Google refuses assertions longer than an hour, and tolerates a little clock skew on iat.
_MAX_ASSERTION_SECONDS: Final = 3600
_SKEW_SECONDS: Final = 300

PublicKeyLike = rsa.RSAPublicKey | str | bytes

_BAD_SIGNATURE: Final = "Invalid JWT Signature."
_BAD_TIMEFRAME: Final = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
MISSING_CREDENTIALS: Final = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIALS: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def make_service_account_key(
    token_uri: str, *, client_email: str = DEFAULT_CLIENT_EMAIL, project_id: str | None = None
) -> dict[str, str]:
    """A fresh RSA-2048 Google service-account key (the JSON the console downloads), whose grants go
    to ``token_uri``. Register it with ``LocalRbm.trust(key)``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    project = project_id or client_email.partition("@")[2].split(".")[0] or "rbm-local"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21 - 10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email),
        "universe_domain": "googleapis.com",
    }


def load_public_key(value: PublicKeyLike) -> rsa.RSAPublicKey:
    """An RSA public key from a key object, a PEM public key, or a PEM private key (its public half)."""
    if isinstance(value, rsa.RSAPublicKey):
        return value
    data = value.encode() if isinstance(value, str) else value
    key: Any
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("service-account keys are RSA keys")
    return key


def key_of(key_info: Mapping[str, Any]) -> tuple[str, rsa.RSAPublicKey]:
    """(client email, public key) of a service-account key JSON."""
    email, private = key_info.get("client_email"), key_info.get("private_key")
    if not isinstance(email, str) or not email or not isinstance(private, str):
        raise ValueError("a service-account key needs client_email and private_key")
    return email, load_public_key(private)


class TokenRefused(Exception):
    """An OAuth error answer of the token endpoint (always HTTP 400)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(slots=True)
class AccessToken:
    client_email: str
    expires_at: datetime


class TokenAuthority:
    def __init__(self, clock: Clock, *, lifetime: int = TOKEN_LIFETIME) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.trusted: dict[str, list[rsa.RSAPublicKey]] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.issued = 0
        self.refused = 0

    def trust(self, client_email: str, key: PublicKeyLike) -> None:
        # A list, as a service account may have several live keys (rotation).
        keys = self.trusted.setdefault(client_email, [])
        public = load_public_key(key)
        if public.public_numbers() not in [k.public_numbers() for k in keys]:
            keys.append(public)

    def grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The token answer for a grant request, or TokenRefused."""
        try:
            answer = self._grant(form)
        except TokenRefused:
            self.refused += 1
            raise
        self.issued += 1
        return answer

    def _grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type != JWT_BEARER_GRANT:
            raise TokenRefused("unsupported_grant_type", f"Invalid grant_type: {grant_type or ''}")
        assertion = form.get("assertion")
        if not assertion:
            raise TokenRefused("invalid_request", "Missing required parameter: assertion")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRefused("invalid_grant", "Invalid JWT: malformed assertion") from None
        issuer = unverified.get("iss")
        keys = self.trusted.get(issuer) if isinstance(issuer, str) else None
        if not keys:
            raise TokenRefused("invalid_grant", "Invalid grant: account not found")
        claims = self._verified(assertion, keys)
        now = self.clock.now().timestamp()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise TokenRefused("invalid_grant", _BAD_TIMEFRAME)
        if exp <= now or iat > now + _SKEW_SECONDS or exp - iat > _MAX_ASSERTION_SECONDS:
            raise TokenRefused("invalid_grant", _BAD_TIMEFRAME)
        scope = claims.get("scope")
        if not isinstance(scope, str) or SCOPE not in scope.split():
            raise TokenRefused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        self._forget_expired()
        token = "ya29.local." + secrets.token_urlsafe(48)
        expires = self.clock.now() + timedelta(seconds=self.lifetime)
        self.tokens[token] = AccessToken(str(issuer), expires)
        return {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}

    def _verified(self, assertion: str, keys: list[rsa.RSAPublicKey]) -> dict[str, Any]:
        for key in keys:
            try:
                # Time claims are checked against the injected clock afterwards, not time.time().
                return jwt.decode(
                    assertion,
                    key,
                    algorithms=["RS256"],
                    audience=TOKEN_AUDIENCE,
                    options={
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                        "require": ["iss", "aud", "exp", "iat"],
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                raise TokenRefused("invalid_grant", "Invalid JWT: Failed audience check.") from None
            except jwt.MissingRequiredClaimError as exc:
                raise TokenRefused("invalid_grant", f"Invalid JWT: missing claim {exc.claim}") from None
            except jwt.InvalidAlgorithmError:
                break
            except jwt.PyJWTError as exc:
                raise TokenRefused("invalid_grant", f"Invalid JWT: {exc}") from None
        raise TokenRefused("invalid_grant", _BAD_SIGNATURE)

    def check(self, authorization: str | None) -> AccessToken | str:
        """The token behind an Authorization header, or the UNAUTHENTICATED message to answer."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return MISSING_CREDENTIALS
        found = self.tokens.get(token.strip())
        if found is None or found.expires_at <= self.clock.now():
            return INVALID_CREDENTIALS
        return found

    def expire_all(self) -> int:
        """End every issued token now; how many were live."""
        now = self.clock.now()
        live = sum(t.expires_at > now for t in self.tokens.values())
        self.tokens.clear()
        return live

    def _forget_expired(self) -> None:
        now = self.clock.now()
        for token in [t for t, info in self.tokens.items() if info.expires_at <= now]:
            del self.tokens[token]
