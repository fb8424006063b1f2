"""Input rules for handles, passwords and tweet text."""

from __future__ import annotations

import re
import unicodedata

from core.errors import BadInput

HANDLE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")
MAX_TWEET_CHARS = 280
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # argon2 hashes anything, but a megabyte password is an attack
MAX_DISPLAY_NAME_CHARS = 50


def handle(raw: str) -> str:
    if not isinstance(raw, str) or not HANDLE_RE.fullmatch(raw):
        raise BadInput("handle must be 1-15 letters, digits or underscores", field="handle")
    return raw


def password(raw: str) -> str:
    if not isinstance(raw, str) or len(raw) < MIN_PASSWORD_CHARS:
        raise BadInput(
            f"password must be at least {MIN_PASSWORD_CHARS} characters", field="password"
        )
    if len(raw) > MAX_PASSWORD_CHARS:
        raise BadInput(f"password longer than {MAX_PASSWORD_CHARS} characters", field="password")
    return raw


def display_name(raw: str | None, fallback: str) -> str:
    if raw is None:
        return fallback
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        return fallback
    if len(name) > MAX_DISPLAY_NAME_CHARS or _has_control(name):
        raise BadInput(
            f"display name must be at most {MAX_DISPLAY_NAME_CHARS} printable characters",
            field="displayName",
        )
    return name


def tweet_text(raw: str) -> str:
    """NFC-normalised text; length counted in code points after normalisation."""
    text = unicodedata.normalize("NFC", raw) if isinstance(raw, str) else ""
    if not text.strip():
        raise BadInput("tweet text must not be empty", field="text")
    if len(text) > MAX_TWEET_CHARS:
        raise BadInput(
            f"tweet text is {len(text)} characters; the limit is {MAX_TWEET_CHARS}",
            field="text",
        )
    if "\x00" in text:
        raise BadInput("tweet text must not contain NUL characters", field="text")
    return text


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 1 <= len(raw) <= 128 or not raw.isprintable():
        raise BadInput("idempotency key must be 1-128 printable characters", field="idempotencyKey")
    return raw


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)
