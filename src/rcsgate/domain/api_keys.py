"""API key format: ``live_`` or ``test_`` followed by URL-safe random characters; stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal

Mode = Literal["live", "test"]
MODES: tuple[Mode, ...] = ("live", "test")

_KEY_RE = re.compile(r"^(live|test)_[A-Za-z0-9_-]{24,128}$")


def new_api_key(mode: Mode) -> str:
    # 24 random bytes → 32 URL-safe characters: 192 bits, beyond guessing.
    return f"{mode}_{secrets.token_urlsafe(24)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


def key_mode(key: str) -> Mode:
    return "test" if key.startswith("test_") else "live"


def display_prefix(key: str) -> str:
    return key[:9]


def parse_mode(value: str) -> Mode:
    if value == "live":
        return "live"
    if value == "test":
        return "test"
    raise ValueError("mode must be live or test")
