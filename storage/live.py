"""Names, payloads and presence of live subscriptions in Redis.

Home timelines are routed per API process, not per viewer. Each process's hub has an id
and listens on one channel (`keys.hub_channel`). A viewer's presence key
(`keys.presence`) is a hash: hub id -> expiry (ms, Redis server clock), one field per
process holding a session of that viewer, renewed by the session's heartbeat (the key
itself expires too, so an abandoned one disappears; storage/lua/present.lua). The fan-out
scripts read the presence of every timeline they change and publish once per hub per
script call: `a:<tweet id>:<viewer>,<viewer>,...`. A page of 1,000 followers, however
many of them are live, costs one PUBLISH per process that holds any of them, instead of one
per live follower (Mastodon's `subscribed:timeline:<id>` idea, batched). The hub then hands
the event to its local sessions of those viewers.

On a Redis Cluster a script may publish only within its keys' slot, so the notice goes to
the viewer's own shard channel instead (`keys.home_channel`, SPUBLISH, same payload with
one viewer), which each hub holding a session of that viewer subscribes to (SSUBSCRIBE):
a message reaches only the node owning the slot and the hubs listening there.

Authors' channels (celebrities are pulled, not pushed; `userTweets`) stay per author: one
message per author event reaches each process subscribed to it once, however many local
sessions listen there.
"""

from __future__ import annotations

import asyncpg

PRESENCE_TTL_S = 60
HEARTBEAT_S = 20

def added(tweet_id: int) -> str:
    return f"a:{tweet_id}"


def deleted(tweet_id: int) -> str:
    return f"d:{tweet_id}"


def parse(payload: bytes | str) -> tuple[str, int] | None:
    """An author channel's payload: ('a' | 'd', tweet id), or None for anything else."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    kind, _, digits = text.partition(":")
    if kind not in ("a", "d") or not digits.isdigit():
        return None
    return kind, int(digits)


def parse_routed(payload: bytes | str) -> tuple[str, int, list[int]] | None:
    """A hub channel's payload: ('a' | 'd', tweet id, [viewer ids]), or None."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    kind, _, rest = text.partition(":")
    digits, _, viewers = rest.partition(":")
    if kind not in ("a", "d") or not digits.isdigit():
        return None
    try:
        return kind, int(digits), [int(v) for v in viewers.split(",") if v]
    except ValueError:
        return None


async def celebrity_followees(
    pool: asyncpg.Pool, viewers: list[int], threshold: int
) -> dict[int, set[int]]:
    """The celebrities (followers >= threshold, as in core.fanout) each viewer follows, in
    one query for a batch of live sessions. (Per viewer this is FeedManager.followed's
    `celebs`; batched here because live presence asks it for thousands of viewers.)"""
    rows = await pool.fetch(
        "SELECT f.follower_id, f.followee_id FROM follows f "
        "JOIN users u ON u.id = f.followee_id "
        "WHERE f.follower_id = ANY($1::bigint[]) AND u.followers_count >= $2",
        viewers, threshold,
    )
    out: dict[int, set[int]] = {}
    for r in rows:
        out.setdefault(r["follower_id"], set()).add(r["followee_id"])
    return out


async def followers_among(pool: asyncpg.Pool, author: int, viewers: list[int]) -> set[int]:
    """Which of `viewers` follow `author` (for a celebrity's tweet reaching many live
    sessions of one process: one query instead of one per session)."""
    rows = await pool.fetch(
        "SELECT follower_id FROM follows WHERE followee_id = $1 "
        "AND follower_id = ANY($2::bigint[])",
        author, viewers,
    )
    return {r["follower_id"] for r in rows}
