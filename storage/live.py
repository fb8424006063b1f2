"""Names of the Redis keys and pub/sub channels behind live subscriptions.

A live session keeps a presence key alive (SET EX, renewed by heartbeat), and publishers
only publish where one exists, so offline users cost no publish (Mastodon's
`subscribed:timeline:<id>`). The Lua insert/remove scripts in timeline_cache.py build the
home names themselves: keep them in step with these.
"""

from __future__ import annotations

PRESENCE_TTL_S = 60
HEARTBEAT_S = 20


def presence_key(user: int) -> str:
    return f"chirp:live:{{{user}}}"


def home_channel(user: int) -> str:
    return f"chirp:live:home:{{{user}}}"


def author_presence_key(author: int) -> str:
    return f"chirp:live:author:{{{author}}}:on"


def author_channel(author: int) -> str:
    return f"chirp:live:author:{{{author}}}"


def added(tweet_id: int) -> str:
    return f"a:{tweet_id}"


def deleted(tweet_id: int) -> str:
    return f"d:{tweet_id}"


def parse(payload: bytes | str) -> tuple[str, int] | None:
    """('a' | 'd', tweet id) or None for anything else."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    kind, _, digits = text.partition(":")
    if kind not in ("a", "d") or not digits.isdigit():
        return None
    return kind, int(digits)
