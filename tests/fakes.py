"""In-memory fakes of FeedManager's ports, for fast rule tests (docs/testing.md)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from core.models import Tweet, User
from core.timeline import NEWEST, merge_desc
from storage import keys
from storage.timeline_cache import CachedSlice, ReadState
from storage.tweets import IdCollision


@dataclass
class _List:
    ids: list[int]
    truncated: bool = False


@dataclass
class MemoryServer:
    """What a Redis server holds for the caches: lists, locks, plain keys, publications."""

    lists: dict[str, _List] = field(default_factory=dict)
    locks: dict[str, float] = field(default_factory=dict)  # key -> expiry (monotonic s)
    plain: dict[str, Any] = field(default_factory=dict)
    published: list[tuple[str, str]] = field(default_factory=list)
    caches: list[MemoryTimelineCache] = field(default_factory=list)
    down: bool = False  # every call raises a Redis connection error

    def check(self) -> None:
        if self.down:
            raise RedisConnectionError("memory server is down")

    def locked(self, key: str) -> bool:
        expiry = self.locks.get(key)
        if expiry is not None and expiry <= time.monotonic():
            del self.locks[key]
            return False
        return expiry is not None


class MemoryPipe:
    """A pipeline: queued calls run in order when the caller's `run` returns."""

    def __init__(self, server: MemoryServer, caches: list[MemoryTimelineCache]) -> None:
        self.server, self.caches = server, caches
        self.calls: list[Callable[[], Any]] = []

    def queue(self, call: Callable[[], Any]) -> None:
        self.calls.append(call)

    def evalsha(self, _sha: str, numkeys: int, *rest: Any) -> None:
        """storage.timeline_cache.queue_reads' script call, served from the lists."""
        names, (before, since, count, _ttl) = rest[:numkeys], rest[numkeys:]
        before, since = int.from_bytes(before, "big"), int.from_bytes(since, "big")
        pairs = list(zip(names[::2], names[1::2], strict=True))
        self.queue(lambda: [self._cache_of(k)._read_key(k, lock, before, since, int(count))
                            for k, lock in pairs])

    def _cache_of(self, key: str) -> MemoryTimelineCache:
        for cache in self.caches:
            if any(cache.key(int(n)) == key for n in re.findall(r"\d+", key)):
                return cache
        raise KeyError(key)

    def set(self, key: str, value: Any, nx: bool = False, ex: int | None = None) -> None:
        def run() -> bool | None:
            if nx and key in self.server.plain:
                return None
            self.server.plain[key] = value
            return True

        self.queue(run)

    def incrby(self, key: str, amount: int) -> None:
        def run() -> int:
            self.server.plain[key] = self.server.plain.get(key, 0) + amount
            return self.server.plain[key]

        self.queue(run)

    def eval(self, _script: str, numkeys: int, *rest: Any) -> None:
        """storage.invalidation.queue_publish: number the items and publish them."""
        (counter,), (channel, items, start) = rest[:numkeys], rest[numkeys:]

        def run() -> int:
            seq = self.server.plain.get(counter, int(start)) + 1
            self.server.plain[counter] = seq
            self.server.published.append((channel, f"{seq} {items}"))
            return seq

        self.queue(run)

    def delete(self, *names: str) -> None:
        self.queue(lambda: sum(self.server.lists.pop(n, None) is not None
                               or self.server.locks.pop(n, None) is not None for n in names))


class MemoryTimelineCache:
    """TimelineCache's interface over a MemoryServer, whose caches share lists as on Redis."""

    LOCK_MS = 10_000
    cluster = False  # one server: storage.timeline_cache.Reads makes one read call

    def __init__(self, server: MemoryServer, prefix: str, cap: int, ttl_seconds: int = 60,
                 live: bool = False, free_slots: bool = False) -> None:
        self.server, self.prefix, self.cap, self.ttl_seconds = server, prefix, cap, ttl_seconds
        self.live, self.free_slots = live, free_slots
        server.caches.append(self)

    def key(self, owner: int) -> str:
        return keys.timeline(self.prefix, owner)

    def lock_key(self, owner: int) -> str:
        return keys.rebuild_lock(self.prefix, owner)

    def call(self, pipe: MemoryPipe, name: str, names: list[str], args: list) -> None:
        assert name == "read", name
        pipe.evalsha("", len(names), *names, *args)

    async def run(self, build: Callable[[Any], None], transaction: bool = False) -> list:
        self.server.check()
        pipe = MemoryPipe(self.server, self.server.caches)
        build(pipe)
        return [call() for call in pipe.calls]

    async def load_scripts(self) -> None:
        self.server.check()

    async def _one(self, call: Callable[[], Any]) -> Any:
        (reply,) = await self.run(lambda pipe: pipe.queue(call))
        return reply

    async def read(self, owner: int, before: int = NEWEST, since: int = 0, count: int = 20,
                   renew: bool = True) -> CachedSlice:
        return await self._one(
            lambda: self._read_key(self.key(owner), self.lock_key(owner), before, since, count))

    def parse(self, reply: CachedSlice) -> CachedSlice:
        return reply

    def _read_key(self, key: str, lock: str, before: int, since: int,
                  count: int) -> CachedSlice:
        if self.server.locked(lock):
            return CachedSlice(ReadState.BUILDING, [], False)
        found = self.server.lists.get(key)
        if found is None:
            return CachedSlice(ReadState.MISSING, [], False)
        below = [i for i in found.ids if i < before]
        taken = below[:count]
        ids = [i for i in taken if i > since]
        reached_end = len(ids) == len(below)
        return CachedSlice(ReadState.OK, ids, found.truncated and reached_end
                           and len(ids) < count)

    # -- writes (each touches only lists that exist)

    def _insert(self, key: str, tweet_id: int) -> int:
        found = self.server.lists.get(key)
        if found is None or tweet_id in found.ids:
            return 0
        if found.truncated and found.ids and tweet_id < found.ids[-1]:
            return 0  # below the last entry of a truncated list: unknown territory
        if found.truncated and not found.ids:
            return 0
        merged = merge_desc([found.ids, [tweet_id]])
        if len(merged) > self.cap:
            merged, found.truncated = merged[:self.cap], True
        found.ids = merged
        return 1

    def queue_insert(self, pipe: MemoryPipe, owner: int, tweet_id: int) -> None:
        pipe.queue(lambda: self._insert(self.key(owner), tweet_id))

    async def insert(self, owner: int, tweet_id: int) -> bool:
        return bool(await self._one(lambda: self._insert(self.key(owner), tweet_id)))

    async def insert_many(self, owners: list[int], tweet_id: int,
                          count_into: str | None = None) -> int:
        if not owners:
            return 0

        def build(pipe: MemoryPipe) -> None:
            pipe.queue(lambda: sum(self._insert(self.key(o), tweet_id) for o in owners))
            if count_into:
                pipe.incrby(count_into, len(owners))

        return (await self.run(build))[0]

    def _remove(self, key: str, doomed: set[int]) -> int:
        found = self.server.lists.get(key)
        if found is None:
            return 0
        kept = [i for i in found.ids if i not in doomed]
        removed = len(found.ids) - len(kept)
        if removed and found.truncated and not kept:
            del self.server.lists[key]  # no longer knows where it ends: rebuilt on read
        elif removed:
            found.ids = kept
        return removed

    async def remove_many(self, owners: list[int], tweet_ids: list[int],
                          deleted: bool = False) -> int:
        if not owners or not tweet_ids:
            return 0
        doomed = set(tweet_ids)
        return await self._one(lambda: sum(self._remove(self.key(o), doomed) for o in owners))

    def _merge(self, key: str, ids: list[int], truncated: bool) -> bool:
        found = self.server.lists.get(key)
        if found is None:
            return False
        floors = [s[-1] for s, t in ((found.ids, found.truncated), (ids, truncated)) if t and s]
        floor = max(floors, default=None)
        cut = (found.truncated and not found.ids) or (truncated and not ids)
        merged = merge_desc([found.ids, ids])
        if floor is not None:
            cut = True
            merged = [i for i in merged if i >= floor]
        if len(merged) > self.cap:
            merged, cut = merged[:self.cap], True
        found.ids, found.truncated = merged, cut
        return True

    async def merge(self, owner: int, ids: list[int], truncated: bool) -> bool:
        return await self.merge_many([owner], ids, truncated) == 1

    async def merge_many(self, owners: list[int], ids: list[int], truncated: bool) -> int:
        if not owners:
            return 0
        return await self._one(lambda: sum(self._merge(self.key(o), ids, truncated)
                                           for o in owners))

    def queue_notify(self, pipe: MemoryPipe, presence: str, channel: str, payload: str) -> None:
        def run() -> int:
            if presence not in self.server.plain:
                return 0
            self.server.published.append((channel, payload))
            return 1

        pipe.queue(run)

    async def begin_rebuild(self, owner: int) -> str:
        def run() -> str:
            key, lock = self.key(owner), self.lock_key(owner)
            if self.server.locked(lock):
                return "busy"
            if key in self.server.lists:
                return "exists"
            self.server.locks[lock] = time.monotonic() + self.LOCK_MS / 1000
            self.server.lists[key] = _List([])
            return "started"

        return await self._one(run)

    async def finish_rebuild(self, owner: int, ids: list[int], truncated: bool) -> None:
        def run() -> None:
            self._merge(self.key(owner), ids, truncated)
            self.server.locks.pop(self.lock_key(owner), None)

        await self._one(run)

    async def abandon_rebuild(self, owner: int) -> None:
        await self._one(lambda: (self.server.lists.pop(self.key(owner), None),
                                 self.server.locks.pop(self.lock_key(owner), None)))

    async def drop(self, owner: int) -> None:
        await self._one(lambda: self.server.lists.pop(self.key(owner), None))

    def ids(self, owner: int) -> list[int] | None:
        """Test helper: a list's entries, None if it is not cached."""
        found = self.server.lists.get(self.key(owner))
        return None if found is None else list(found.ids)


class MemoryTweetStore:
    """A TweetStore in memory; like Cassandra's, not transactional, deletes are final."""

    transactional = False

    def __init__(self) -> None:
        self.tweets: dict[int, Tweet] = {}
        self.deleted: set[int] = set()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise OSError("memory tweet store is down")

    async def put(self, tweet: Tweet, tx: Any = None) -> None:
        self._check()
        if tweet.id in self.deleted:
            return
        found = self.tweets.get(tweet.id)
        if found is not None and (found.author_id, found.text) != (tweet.author_id, tweet.text):
            raise IdCollision(tweet.id)
        self.tweets.setdefault(tweet.id, tweet)

    async def delete(self, tweet_id: int, tx: Any = None) -> Tweet | None:
        self._check()
        self.deleted.add(tweet_id)
        return self.tweets.pop(tweet_id, None)

    async def delete_many(self, ids: Sequence[int], tx: Any = None) -> set[int]:
        self._check()
        self.deleted.update(ids)
        return {i for i in ids if self.tweets.pop(i, None) is not None}

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]:
        self._check()
        return {i: self.tweets[i] for i in ids if i in self.tweets}

    async def authors_before(self, before: int) -> list[int]:
        self._check()
        return sorted({t.author_id for t in self.tweets.values() if t.id < before})

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def by_author(self, author_id: int, before: int = NEWEST, since: int = 0,
                        limit: int = 20) -> list[Tweet]:
        return await self.by_authors([author_id], before, since, limit)

    async def by_authors(self, author_ids: Sequence[int], before: int = NEWEST,
                         since: int = 0, limit: int = 20) -> list[Tweet]:
        self._check()
        authors = set(author_ids)
        found = [t for t in self.tweets.values()
                 if t.author_id in authors and since < t.id < before]
        return sorted(found, key=lambda t: -t.id)[:limit]


class MemoryGraph:
    """The follow graph as FeedManager reads it (storage.graph.SocialGraph)."""

    def __init__(self, users: MemoryUsers) -> None:
        self.users = users
        self.edges: dict[tuple[int, int], int] = {}  # (follower, followee) -> seq
        self._seq = 0

    def follow(self, follower: int, followee: int) -> None:
        self._seq += 1
        self.edges[(follower, followee)] = self._seq
        self.users.bump(follower, following=1)
        self.users.bump(followee, followers=1)

    def unfollow(self, follower: int, followee: int) -> None:
        if self.edges.pop((follower, followee), None) is not None:
            self.users.bump(follower, following=-1)
            self.users.bump(followee, followers=-1)

    async def followees(self, user_id: int) -> tuple[list[int], list[int], list[bool]]:
        ids = [b for a, b in self.edges if a == user_id]
        users = [self.users.users[i] for i in ids]
        return ids, [u.followers_count for u in users], [u.celebrity for u in users]

    async def end_demotion(self, user_id: int, demoted: bool) -> bool:
        u = self.users.users[user_id]
        if not u.demoting:
            return False
        self.users.users[user_id] = replace(u, demoting=False,
                                            celebrity=u.celebrity and not demoted)
        return True

    async def followers_page(self, followee: int, before_seq: int, limit: int,
                             active_within: timedelta | None = None,
                             floor_seq: int = 0) -> list[tuple[int, int]]:
        now = datetime.now(UTC)
        rows = [(seq, a) for (a, b), seq in self.edges.items()
                if b == followee and floor_seq <= seq < before_seq
                and (active_within is None or self.users.active[a] > now - active_within)]
        return sorted(rows, reverse=True)[:limit]

    async def follower_marks(self, followee: int, every: int) -> list[int]:
        seqs = sorted((s for (_a, b), s in self.edges.items() if b == followee), reverse=True)
        return seqs[every - 1::every]


class MemoryUsers:
    """The user records FeedManager reads (storage.users.UserStore)."""

    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.active: dict[int, datetime] = {}

    def add(self, user_id: int, active: bool = True) -> int:
        now = datetime.now(UTC)
        self.users[user_id] = User(user_id, f"u{user_id}", f"u{user_id}", "", now, 0, 0, 0)
        self.active[user_id] = now if active else now - timedelta(days=365)
        return user_id

    def bump(self, user_id: int, followers: int = 0, following: int = 0) -> None:
        u = self.users[user_id]
        self.users[user_id] = replace(u, followers_count=u.followers_count + followers,
                                      following_count=u.following_count + following)

    async def get_many(self, ids: Iterable[int]) -> dict[int, User]:
        return {i: self.users[i] for i in ids if i in self.users}

    async def mark_active(self, user_ids: list[int]) -> None:
        for user_id in user_ids:
            self.active[user_id] = datetime.now(UTC)
