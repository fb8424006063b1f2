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


# Bidirectional formatting (overrides, embeddings, isolates): they reorder how the rest of
# a text displays, the "Trojan Source" trick; a tweet has no use for them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that display as nothing: a text made only of these (and spaces) is empty.
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad\u034f\u115f\u1160"
                      "\u3164\uffa0")


def is_handle(raw: object) -> bool:
    return isinstance(raw, str) and HANDLE_RE.fullmatch(raw) is not None


def handle(raw: str) -> str:
    if not is_handle(raw):
        raise BadInput("handle must be 1-15 letters, digits or underscores", field="handle")
    return raw


def password(raw: str) -> str:
    if not isinstance(raw, str) or len(raw) < MIN_PASSWORD_CHARS:
        raise BadInput(
            f"password must be at least {MIN_PASSWORD_CHARS} characters", field="password"
        )
    if len(raw) > MAX_PASSWORD_CHARS:
        raise BadInput(f"password longer than {MAX_PASSWORD_CHARS} characters", field="password")
    if not encodable(raw) or "\x00" in raw:
        raise BadInput("password must be valid Unicode text without NUL", field="password")
    return raw


def login_handle(raw: object) -> str:
    """Any handle a log-in may name; a malformed one fails as a wrong password would."""
    if not is_handle(raw):
        raise BadInput("handle must be 1-15 letters, digits or underscores", field="handle")
    return raw  # type: ignore[return-value]


def login_password(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_PASSWORD_CHARS or not encodable(raw):
        raise BadInput(f"password must be valid Unicode text of at most "
                       f"{MAX_PASSWORD_CHARS} characters", field="password")
    return raw


def encodable(text: str) -> bool:
    """No lone surrogates: the text can be stored as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def display_name(raw: str | None, fallback: str) -> str:
    if raw is None:
        return fallback
    if not isinstance(raw, str) or not encodable(raw):
        raise BadInput("display name must be valid Unicode text", field="displayName")
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
    """NFC-normalised text, its length in code points (the refusals: docs/api.md)."""
    if not isinstance(raw, str) or not encodable(raw):
        raise BadInput("tweet text must be valid Unicode text", field="text")
    if len(raw) > 4 * MAX_TWEET_CHARS:  # before normalising: NFC is linear, but bounded
        raise BadInput(f"tweet text is longer than {MAX_TWEET_CHARS} characters",
                       field="text")
    text = unicodedata.normalize("NFC", raw)
    if all(ch.isspace() or ch in INVISIBLE for ch in text):
        raise BadInput("tweet text must not be empty", field="text")
    if len(text) > MAX_TWEET_CHARS:
        raise BadInput(
            f"tweet text is {len(text)} characters; the limit is {MAX_TWEET_CHARS}",
            field="text",
        )
    for ch in text:
        if ch in BIDI_CONTROLS:
            raise BadInput("tweet text must not contain bidirectional overrides",
                           field="text")
        if ch != "\n" and unicodedata.category(ch) == "Cc":
            raise BadInput("tweet text must not contain control characters other than "
                           "newline", field="text")
    return text


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 1 <= len(raw) <= 128 or not raw.isprintable() \
            or not encodable(raw):
        raise BadInput("idempotency key must be 1-128 printable characters", field="idempotencyKey")
    return raw


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)
