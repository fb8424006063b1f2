"""Live notices in Redis: their payloads, and the presence script.

A viewer's presence hash (`keys.presence`) maps each API process (hub) holding a session of
that viewer to an expiry on the Redis server's clock. The fan-out scripts publish one
notice per hub per call, `<code>:<tweet id>:<viewer>,...`, on the hub's channel; authors'
channels carry `<code>:<tweet id>`. Routing and its cost: docs/live.md.
"""

from __future__ import annotations

from core.models import LiveKind

PRESENCE_TTL_S = 60
HEARTBEAT_S = 20

# KEYS[1] presence hash; ARGV[1] hub id, ARGV[2] ttl ms. Marks the hub present for the
# viewer until now + ttl on the server's clock (publishers compare with the same clock),
# keeps the key at least that long, and drops fields of hubs that stopped renewing.
PRESENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if tonumber(fields[i + 1]) <= now then redis.call('HDEL', KEYS[1], fields[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], now + ttl)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""


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
