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

from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from core.models import Tweet, User
from runtime import metrics
from storage import keys
from storage.invalidation import Invalidations

MISSING: Any = object()
_TOMBSTONE_BYTES = 64


class Memo:
    """A map bounded by the estimated bytes of its values, least recently used evicted.
    (An OrderedDict: a plain dict used as an LRU by popping and re-inserting keeps its
    deleted slots at the front, and finding the oldest entry walks over all of them.)"""

    __slots__ = ("_d", "_hits", "_misses", "_size", "bytes", "max_bytes", "name")

    def __init__(self, name: str, max_bytes: int, size: Callable[[Any], int]) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.bytes = 0
        self._size = size
        self._d: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._hits = metrics.CACHE_HITS.labels(name)
        self._misses = metrics.CACHE_MISSES.labels(name)

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable) -> Any:
        """The value, or MISSING."""
        entry = self._d.get(key)
        if entry is None:
            self._misses.inc()
            return MISSING
        self._d.move_to_end(key)  # most recently used last
        self._hits.inc()
        return entry[0]

    def get_many(self, keys_: Iterable[Hashable]) -> tuple[dict, list]:
        """(found key -> value, keys missing); counted once per call."""
        d = self._d
        get, touch = d.get, d.move_to_end
        found: dict = {}
        missing: list = []
        for key in keys_:
            entry = get(key)
            if entry is None:
                missing.append(key)
            else:
                touch(key)
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
            self.bytes -= self._d.popitem(last=False)[1][1]

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


def _completion_bytes(entry: tuple) -> int:
    # (plan, edge, answer): the answer's dicts and strings, twice the text (the edge's and
    # the answer's), and the entry
    node = getattr(entry[1], "node", None)
    return 900 + 2 * len(getattr(node, "text", ""))


def user_bytes(u: User) -> int:
    return 400 + _str_bytes(u.handle) + _str_bytes(u.display_name) + _str_bytes(u.bio)


class SortedIds:
    """A set of ids as one sorted array: 8 bytes an id where a set of ints takes ~70."""

    __slots__ = ("_a",)

    def __init__(self, ids: Iterable[int]) -> None:
        self._a = array("q", sorted(ids))

    def __contains__(self, i: object) -> bool:
        a = self._a
        k = bisect_left(a, i)  # type: ignore[call-overload]
        return k < len(a) and a[k] == i

    def __iter__(self) -> Iterator[int]:
        return iter(self._a)

    def __len__(self) -> int:
        return len(self._a)


class Followees:
    """One viewer's followees as loaded (and which were celebrities then), compactly, and
    the split last computed from them with the crossings seen since."""

    __slots__ = ("celebs", "ids", "split", "version")

    def __init__(self, ids: SortedIds, celebs: tuple[int, ...]) -> None:
        self.ids = ids
        self.celebs = celebs
        self.split: Any = None  # services.feed.Followed, for `version` of the crossings
        self.version = -1

    def bytes(self) -> int:
        return 300 + 8 * len(self.ids) + 40 * len(self.celebs)


class Recents:
    """An author's whole recents list: ids newest first, and whether it was capped."""

    __slots__ = ("ids", "truncated")

    def __init__(self, ids: list[int], truncated: bool) -> None:
        self.ids = ids
        self.truncated = truncated


class ReadCaches:
    # Shares of CHIRP_CACHE_MB; tweets are most of what a page hydrates.
    SHARES = {"tweets": 0.45, "users": 0.2, "followees": 0.15, "recents": 0.1, "pages": 0.1}

    def __init__(self, redis: Redis, redis_url: str, megabytes: int) -> None:
        total = megabytes * 2**20
        share = {k: int(total * v) for k, v in self.SHARES.items()}
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.tweets = Memo("tweets", share["tweets"], tweet_bytes)
        self.users = Memo("users", share["users"] * 9 // 10, user_bytes)
        self.handles = Memo("handles", share["users"] // 10, lambda h: 120)
        self.followees = Memo("followees", share["followees"], Followees.bytes)
        self.recents = Memo("recents", share["recents"],
                            lambda r: 120 + 40 * len(r.ids))
        # A page's GraphQL edge objects and their completions: functions of immutable
        # records, never stale (schema/types.py, schema/compiled.py).
        self.edges = Memo("edges", share["pages"] * 3 // 10, lambda e: 400 + len(e[0].text))
        self.completions = Memo("completions", share["pages"] * 7 // 10, _completion_bytes)
        # Authors who crossed the celebrity threshold since their followers' entries were
        # loaded: id -> is a celebrity now. `crossings` numbers the changes.
        self.celebrity: dict[int, bool] = {}
        self.crossings = 0
        # Bumped by every invalidation applied and every flush (see the module docstring).
        self.generation = 0
        self.invalidations = Invalidations(redis, redis_url, self.apply, self.flush)

    def memos(self) -> list[Memo]:
        return [self.tweets, self.users, self.handles, self.followees, self.recents,
                self.edges, self.completions]

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

    __slots__ = ("caches", "cluster", "state")

    def __init__(self, caches: ReadCaches) -> None:
        self.caches = caches
        self.cluster = caches.cluster
        self.state: bool | None = None

    async def begin(self) -> ReadCaches | None:
        """The caches a page may start from: before the check they are used optimistically
        and the check, in the page's own round trip, decides whether that stands. On a
        cluster the counter lives on one shard, so it is checked on its own first: a
        failing shard then only bypasses the caches instead of degrading every read."""
        if self.state is None and self.cluster:
            return await self.usable()
        return self.caches if self.state is not False else None

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

