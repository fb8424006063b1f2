"""The API process's read caches: what a cached home read hydrates, kept in memory.

Four caches, each bounded in bytes (a share of CHIRP_CACHE_MB), least recently used out
first, each with its rule (docs/caches.md has the table):

- tweets by id: immutable, so only a delete invalidates ("t<id>", which leaves a tombstone:
  an id never comes back);
- users by id, and handle -> id (handles never change): a user's profile or counts
  changed ("u<id>");
- followees by viewer: the ids a viewer follows and their follower counts when loaded
  ("f<id>" on the viewer's follow or unfollow); which of them are celebrities is decided
  with the crossings of the threshold seen since ("c<id>:<0|1>");
- celebrity recents by author: the author's whole cached recents list ("r<id>" when the
  author posts or a tweet of theirs is deleted).

Invalidations arrive numbered over pub/sub (storage/invalidation.py) and a request uses the
caches only once its `Fence` has checked that this process has applied every invalidation
published before the request read the counter. A value loaded from a store is kept only if
no invalidation was applied while it was being loaded (`generation`): otherwise it may be
older than the invalidation that was meant to remove it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.models import Tweet, User
from runtime import metrics
from storage import keys
from storage.invalidation import Invalidations

MISSING: Any = object()
_TOMBSTONE_BYTES = 64


class Memo:
    """A dict bounded by the estimated bytes of its values, least recently used evicted."""

    __slots__ = ("_d", "_hits", "_misses", "_size", "bytes", "max_bytes", "name")

    def __init__(self, name: str, max_bytes: int, size: Callable[[Any], int]) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.bytes = 0
        self._size = size
        self._d: dict[Hashable, tuple[Any, int]] = {}
        self._hits = metrics.CACHE_HITS.labels(name)
        self._misses = metrics.CACHE_MISSES.labels(name)

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable) -> Any:
        """The value, or MISSING."""
        d = self._d
        entry = d.pop(key, None)
        if entry is None:
            self._misses.inc()
            return MISSING
        d[key] = entry  # most recently used last
        self._hits.inc()
        return entry[0]

    def get_many(self, keys_: Iterable[Hashable]) -> tuple[dict, list]:
        """(found key -> value, keys missing); counted once per call."""
        d = self._d
        found: dict = {}
        missing: list = []
        for key in keys_:
            entry = d.pop(key, None)
            if entry is None:
                missing.append(key)
            else:
                d[key] = entry
                found[key] = entry[0]
        if found:
            self._hits.inc(len(found))
        if missing:
            self._misses.inc(len(missing))
        return found, missing

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        n = self._size(value) if size is None else size
        if n > self.max_bytes:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._d[key] = (value, n)
        self.bytes += n
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._d))
            self.bytes -= self._d.pop(oldest)[1]

    def pop(self, key: Hashable) -> None:
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old[1]

    def clear(self) -> None:
        self._d.clear()
        self.bytes = 0


def _str_bytes(s: str) -> int:
    return 49 + len(s)


def tweet_bytes(t: Tweet | None) -> int:
    # The record, its two ints, its datetime and its text, and the dict entry.
    return _TOMBSTONE_BYTES if t is None else 250 + _str_bytes(t.text)


def user_bytes(u: User) -> int:
    return 400 + _str_bytes(u.handle) + _str_bytes(u.display_name) + _str_bytes(u.bio)


class Followees:
    """One viewer's followees as loaded, and the split last computed from them."""

    __slots__ = ("counts", "ids", "split", "version")

    def __init__(self, ids: list[int], counts: list[int]) -> None:
        self.ids = ids
        self.counts = counts
        self.split: Any = None  # services.feed.Followed, for `version` of the crossings
        self.version = -1

    def bytes(self) -> int:
        # Two lists of ints, and the split's set and lists: ~120 bytes a followee.
        return 200 + 120 * len(self.ids)


class Recents:
    """An author's whole recents list: ids newest first, and whether it was capped."""

    __slots__ = ("ids", "truncated")

    def __init__(self, ids: list[int], truncated: bool) -> None:
        self.ids = ids
        self.truncated = truncated


class ReadCaches:
    # Shares of CHIRP_CACHE_MB; tweets are most of what a page hydrates.
    SHARES = {"tweets": 0.5, "users": 0.2, "followees": 0.2, "recents": 0.1}

    def __init__(self, redis: Redis, redis_url: str, megabytes: int) -> None:
        total = megabytes * 2**20
        share = {k: int(total * v) for k, v in self.SHARES.items()}
        self.redis = redis
        self.tweets = Memo("tweets", share["tweets"], tweet_bytes)
        self.users = Memo("users", share["users"] * 9 // 10, user_bytes)
        self.handles = Memo("handles", share["users"] // 10, lambda h: 120)
        self.followees = Memo("followees", share["followees"], Followees.bytes)
        self.recents = Memo("recents", share["recents"],
                            lambda r: 120 + 40 * len(r.ids))
        # Authors who crossed the celebrity threshold since their followers' entries were
        # loaded: id -> is a celebrity now. `crossings` numbers the changes.
        self.celebrity: dict[int, bool] = {}
        self.crossings = 0
        # Bumped by every invalidation applied and every flush (see the module docstring).
        self.generation = 0
        self.invalidations = Invalidations(redis_url, self.apply, self.flush)

    def memos(self) -> list[Memo]:
        return [self.tweets, self.users, self.handles, self.followees, self.recents]

    def apply(self, item: str) -> None:
        kind, rest = item[:1], item[1:]
        self.generation += 1
        if kind == "t":
            self.tweets.put(int(rest), None, _TOMBSTONE_BYTES)
        elif kind == "u":
            self.users.pop(int(rest))
        elif kind == "f":
            self.followees.pop(int(rest))
        elif kind == "r":
            self.recents.pop(int(rest))
        elif kind == "c":
            author, _, flag = rest.partition(":")
            self.celebrity[int(author)] = flag == "1"
            self.crossings += 1
            if len(self.celebrity) > 100_000:  # rare; bounded all the same
                self.celebrity.clear()
                self.followees.clear()

    def apply_all(self, items: Iterable[str]) -> None:
        for item in items:
            self.apply(item)

    def flush(self) -> None:
        for memo in self.memos():
            memo.clear()
        self.celebrity.clear()
        self.crossings += 1
        self.generation += 1

    def keep(self, memo: Memo, generation: int, values: dict) -> None:
        """Cache values loaded since `generation`, unless an invalidation came meanwhile."""
        if generation == self.generation:
            for key, value in values.items():
                memo.put(key, value)

    def report(self) -> None:
        for memo in self.memos():
            metrics.CACHE_BYTES.labels(memo.name).set(memo.bytes)

    def fence(self) -> Fence:
        self.invalidations.start()
        return Fence(self)

    async def close(self) -> None:
        await self.invalidations.stop()


class Fence:
    """One request's check that the caches hold everything published before it began:
    None until checked (in the request's first Redis round trip, or a GET of its own),
    then True (use the caches) or False (read the stores)."""

    __slots__ = ("caches", "state")

    def __init__(self, caches: ReadCaches) -> None:
        self.caches = caches
        self.state: bool | None = None

    def queue(self, pipe) -> None:
        pipe.get(keys.CACHE_SEQ)

    async def settle(self, reply: bytes | None) -> bool:
        """Check the counter a round trip read; True if nothing had to be waited for."""
        invalidations = self.caches.invalidations
        published = int(reply or 0)
        if invalidations.fresh(published):
            self.state = True
            return True
        self.state = await invalidations.settle(published)
        if not self.state:
            metrics.CACHE_BYPASSED.inc()
        return False

    async def usable(self) -> ReadCaches | None:
        """The caches if this request may use them, checking first if not yet checked."""
        if self.state is None:
            if not self.caches.invalidations.live:
                self.state = False
                metrics.CACHE_BYPASSED.inc()
            else:
                try:
                    await self.settle(await self.caches.redis.get(keys.CACHE_SEQ))
                except RedisError:
                    self.state = False
                    metrics.CACHE_BYPASSED.inc()
        return self.caches if self.state else None

