"""Live notices in Redis: their payloads and presence lifetimes (docs/modules.md)."""

from __future__ import annotations

from core.models import LiveKind

PRESENCE_TTL_S = 60
HEARTBEAT_S = 20

# A kind's code in notice payloads (the timeline scripts publish these too).
CODES = {LiveKind.TWEET_ADDED: "a", LiveKind.TWEET_DELETED: "d"}
_KINDS = {code: kind for kind, code in CODES.items()}


def added(tweet_id: int) -> str:
    return f"{CODES[LiveKind.TWEET_ADDED]}:{tweet_id}"


def deleted(tweet_id: int) -> str:
    return f"{CODES[LiveKind.TWEET_DELETED]}:{tweet_id}"


def parse(payload: bytes | str) -> tuple[LiveKind, int] | None:
    """An author channel's payload: (kind, tweet id), or None for anything else."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    code, _, digits = text.partition(":")
    kind = _KINDS.get(code)
    if kind is None or not digits.isdigit():
        return None
    return kind, int(digits)


def parse_routed(payload: bytes | str) -> tuple[LiveKind, int, list[int]] | None:
    """A hub channel's payload: (kind, tweet id, [viewer ids]), or None."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    code, _, rest = text.partition(":")
    digits, _, viewers = rest.partition(":")
    kind = _KINDS.get(code)
    if kind is None or not digits.isdigit():
        return None
    try:
        return kind, int(digits), [int(v) for v in viewers.split(",") if v]
    except ValueError:
        return None
