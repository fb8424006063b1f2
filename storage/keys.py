"""Every Redis key and channel the service uses, named in one place.

A `{...}` part is a Redis Cluster hash tag: keys that one script or transaction touches
together carry the same tag, so they land in one slot. Per-user keys are tagged by the
user id; a timeline, its rebuild lock, its owner's presence and live channel therefore
share a slot (a script may only touch, and publish within, its keys' slot). The event
stream and its dead letters share one tag, as do an id lease and its high-water mark.
The same names serve one server and a cluster (docs/production.md). The Lua scripts get
key and channel templates from LUA_TEMPLATES, substituted when they are loaded
(storage.scripts).
"""

from __future__ import annotations

PREFIX = "chirp"

# Timeline families (storage.timeline_cache.TimelineCache)
HOME = "tl"  # a viewer's precomputed home timeline
RECENTS = "ut"  # an author's newest tweet ids

# The Redis Streams event bus (storage.eventbus)
EVENTS = f"{PREFIX}:{{events}}"
EVENTS_DEAD = f"{PREFIX}:{{events}}:dead"

DELIVERIES = f"{PREFIX}:stats:deliveries"  # fan-out deliveries attempted, for /metrics

# Read-path cache invalidations (storage.invalidation): a counter numbering every
# invalidation, and the channel each is published on as "<seq> <items>". Readers GET the
# counter in their one round trip to know they have applied everything published before.
CACHE_SEQ = f"{PREFIX}:cache:seq"
CACHE_CHANNEL = f"{PREFIX}:cache:invalidate"

# Templates for the Lua scripts: a user's decimal id goes between head and tail.
HUB_CHANNEL_HEAD = f"{PREFIX}:live:hub:"
HOME_CHANNEL_HEAD, HOME_CHANNEL_TAIL = f"{PREFIX}:live:{{", "}:home"
PRESENCE_HEAD, PRESENCE_TAIL = f"{PREFIX}:live:{{", "}:hubs"
LUA_TEMPLATES = {
    "HUB_CHANNEL_HEAD": HUB_CHANNEL_HEAD,
    "PRESENCE_HEAD": PRESENCE_HEAD,
    "PRESENCE_TAIL": PRESENCE_TAIL,
    "HOME_CHANNEL_HEAD": HOME_CHANNEL_HEAD,
    "HOME_CHANNEL_TAIL": HOME_CHANNEL_TAIL,
}


def timeline(family: str, owner: int) -> str:
    return f"{family}:{{{owner}}}"


def rebuild_lock(family: str, owner: int) -> str:
    return f"{family}:{{{owner}}}:rebuild"


def presence(user: int) -> str:
    """Hash: hub id -> expiry (ms) for each API process holding a live session of `user`."""
    return f"{PRESENCE_HEAD}{user}{PRESENCE_TAIL}"


def hub_channel(hub_id: str) -> str:
    """One server: an API process's channel, carrying notices for all its viewers."""
    return f"{HUB_CHANNEL_HEAD}{hub_id}"


def home_channel(user: int) -> str:
    """A cluster: a viewer's shard channel (in their timeline's slot), which every API
    process holding a session of theirs subscribes to."""
    return f"{HOME_CHANNEL_HEAD}{user}{HOME_CHANNEL_TAIL}"


def author_presence(author: int) -> str:
    return f"{PREFIX}:live:author:{{{author}}}:on"


def author_channel(author: int) -> str:
    return f"{PREFIX}:live:author:{{{author}}}"


def seen(user: int) -> str:
    """Set for a while after a user's home read: their activity mark is fresh."""
    return f"{PREFIX}:seen:{{{user}}}"


def rate_bucket(bucket: str) -> str:
    return f"{PREFIX}:rl:{bucket}"


def id_lease(worker_id: int) -> str:
    return f"{PREFIX}:idlease:{{{worker_id}}}"


def id_lease_high_water(worker_id: int) -> str:
    return f"{PREFIX}:idlease:{{{worker_id}}}:hwm"


def persisted_query(sha256: str) -> str:
    """Query text registered under its hash (automatic persisted queries)."""
    return f"{PREFIX}:apq:{sha256}"


# Token revocations (storage/revocations.py): logged-out tokens' ids scored by their expiry,
# users' "log out everywhere" times, and the channel announcing either to every process.
REVOKED_TOKENS = f"{PREFIX}:auth:revoked"
TOKENS_AFTER = f"{PREFIX}:auth:after"
REVOCATIONS = f"{PREFIX}:auth:revocations"
