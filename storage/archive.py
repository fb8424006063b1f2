"""The tweet archive: objects in the object store, indexed in PostgreSQL (docs/modules.md)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from core import archive as codec
from core.models import Tweet
from core.timeline import NEWEST
from runtime import metrics
from storage.objects import ObjectStore

OBJECTS_PER_QUERY = 16
CACHED_OBJECTS = 128
# Readers cache the horizon this long; a run that raises it waits as long before moving
# anything, so no reader misses an archived tweet below a stale horizon.
HORIZON_TTL_S = 2.0
GARBAGE_AFTER_S = 600.0


class Archive:
    def __init__(self, pool: asyncpg.Pool, objects: ObjectStore, prefix: str = "tweets/",
                 object_max: int = codec.OBJECT_MAX) -> None:
        self.pool = pool
        self.object_max = object_max
        self.objects = objects
        self.prefix = prefix
        self._cache: OrderedDict[str, list[Tweet]] = OrderedDict()
        self._bounds_cached = (0, 0)
        self._bounds_until = 0.0

    async def write(self, packed: codec.Packed) -> None:
        await self.objects.put(packed.key, packed.data, codec.CONTENT_TYPE)

    async def tail(self, author_id: int) -> tuple[ObjectRow | None, list[Tweet]]:
        """The author's newest object if it has room, and its readable tweets."""
        row = await self.pool.fetchrow(
            "SELECT id, key, max_id, deleted, tweets FROM archive_objects "
            "WHERE author_id = $1 ORDER BY max_id DESC LIMIT 1",
            author_id,
        )
        if row is None or row["tweets"] - len(row["deleted"]) >= self.object_max:
            return None, []
        tail = ObjectRow(row["id"], row["key"], row["max_id"], frozenset(row["deleted"]))
        return tail, [t for t in await self._load(tail.key) if t.id not in tail.deleted]

    async def index(self, packed: codec.Packed, fresh: Iterable[int], tx: asyncpg.Connection,
                    replaces: ObjectRow | None = None) -> int:
        """Record an object in the caller's transaction: `fresh` ids come from the live
        store, the rest from `replaces`; returns how many fresh ids were indexed."""
        object_id = await tx.fetchval(
            "INSERT INTO archive_objects (key, author_id, min_id, max_id, tweets, bytes) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            packed.key, packed.author_id, packed.min_id, packed.max_id, len(packed.ids),
            len(packed.data),
        )
        new = sorted(set(fresh) & set(packed.ids))
        await tx.execute(
            "INSERT INTO archived_tweets (id, object_id) SELECT unnest($1::bigint[]), $2",
            new, object_id,
        )
        moved: set[int] = set()
        if replaces is not None:
            rows = await tx.fetch(
                "UPDATE archived_tweets SET object_id = $1 WHERE object_id = $2 RETURNING id",
                object_id, replaces.id,
            )
            moved = {r[0] for r in rows}
            await tx.execute("DELETE FROM archive_objects WHERE id = $1", replaces.id)
            await tx.execute(
                "INSERT INTO archive_garbage (key) VALUES ($1) ON CONFLICT DO NOTHING",
                replaces.key,
            )
        gone = sorted(set(packed.ids) - set(new) - moved)
        if gone:
            await tx.execute(
                "UPDATE archive_objects SET deleted = $2 WHERE id = $1", object_id, gone
            )
        await tx.execute(
            "UPDATE archive_totals SET tweets = tweets + $1, objects = objects + $2",
            len(new), 0 if replaces is not None else 1,
        )
        return len(new)

    async def collect_garbage(self, older_than_s: float = GARBAGE_AFTER_S) -> int:
        """Delete superseded objects no reader can still be fetching."""
        keys = [r[0] for r in await self.pool.fetch(
            "SELECT key FROM archive_garbage "
            "WHERE superseded_at < now() - make_interval(secs => $1)", older_than_s,
        )]
        if keys:
            await self.objects.delete_many(keys)
            await self.pool.execute(
                "DELETE FROM archive_garbage WHERE key = ANY($1::text[])", keys
            )
        return len(keys)

    async def archived_among(self, ids: Sequence[int]) -> set[int]:
        rows = await self.pool.fetch(
            "SELECT id FROM archived_tweets WHERE id = ANY($1::bigint[])", list(ids)
        )
        return {r[0] for r in rows}

    async def delete(self, tweet_id: int, tx: asyncpg.Connection | None = None) -> Tweet | None:
        """Make an archived tweet unreadable (its object stays as written); the tweet, or
        None if it was not archived. One statement when it was not."""
        key = await (tx or self.pool).fetchval(
            "WITH gone AS (DELETE FROM archived_tweets WHERE id = $1 RETURNING object_id) "
            "UPDATE archive_objects o SET deleted = array_append(o.deleted, $1) "
            "FROM gone WHERE o.id = gone.object_id RETURNING o.key",
            tweet_id,
        )
        if key is None:
            return None
        return next((t for t in await self._load(key) if t.id == tweet_id), None)

    async def raise_horizon(self, cutoff: int) -> bool:
        """Announce a run's cut-off before moving anything; True if it rose."""
        return bool(await self.pool.fetchval(
            "UPDATE archive_totals SET horizon = $1 WHERE horizon < $1 RETURNING true", cutoff
        ))

    async def horizon(self) -> int:
        """The highest cut-off any run started with, as known within HORIZON_TTL_S."""
        return (await self._bounds())[0]

    async def complete_below(self) -> int:
        """The highest cut-off a run finished with: the live store holds nothing below
        it. As known within HORIZON_TTL_S, so possibly lower, never higher."""
        return (await self._bounds())[1]

    def forget_bounds(self) -> None:
        """Read the horizon and completion again on next use (after changing them)."""
        self._bounds_until = 0.0

    async def _bounds(self) -> tuple[int, int]:
        now = time.monotonic()
        if now >= self._bounds_until:
            row = await self.pool.fetchrow("SELECT horizon, complete_below FROM archive_totals")
            self._bounds_cached = (row[0], row[1]) if row else (0, 0)
            self._bounds_until = now + HORIZON_TTL_S
        return self._bounds_cached

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]:
        wanted = list(ids)
        if not wanted:
            return {}
        rows = await self.pool.fetch(
            "SELECT a.id, o.key FROM archived_tweets a JOIN archive_objects o "
            "ON o.id = a.object_id WHERE a.id = ANY($1::bigint[])",
            wanted,
        )
        by_key: dict[str, set[int]] = {}
        for tweet_id, key in rows:
            by_key.setdefault(key, set()).add(tweet_id)
        out: dict[int, Tweet] = {}
        for key, want in by_key.items():
            out.update((t.id, t) for t in await self._load(key) if t.id in want)
        return out

    async def by_authors(
        self, author_ids: Sequence[int], before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        """The newest-first archived tweets of these authors with since < id < before."""
        if not author_ids or limit <= 0:
            return []
        out: list[Tweet] = []
        below = NEWEST
        while True:
            objects = await self._objects(author_ids, before, since, below)
            for obj in objects:
                if len(out) >= limit and out[limit - 1].id > obj.max_id:
                    return out[:limit]  # no unread object holds anything newer
                out.extend(
                    t for t in await self._load(obj.key)
                    if since < t.id < before and t.id not in obj.deleted
                )
                out.sort(key=lambda t: -t.id)
            if len(objects) < OBJECTS_PER_QUERY:
                return out[:limit]
            below = objects[-1].max_id

    async def _objects(
        self, author_ids: Sequence[int], before: int, since: int, below: int
    ) -> list[ObjectRow]:
        rows = await self.pool.fetch(
            "SELECT id, key, max_id, deleted FROM archive_objects "
            "WHERE author_id = ANY($1::bigint[]) AND min_id < $2 AND max_id > $3 "
            "AND max_id < $4 ORDER BY max_id DESC LIMIT $5",
            list(author_ids), before, since, below, OBJECTS_PER_QUERY,
        )
        return [ObjectRow(r[0], r[1], r[2], frozenset(r[3])) for r in rows]

    def drop_cached(self) -> None:
        self._cache.clear()

    async def read_object(self, key: str) -> list[Tweet]:
        """Every tweet an object holds, deleted ones included."""
        return await self._load(key)

    async def _load(self, key: str) -> list[Tweet]:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            metrics.ARCHIVE_READS.labels("cached").inc()
            return cached
        started = time.perf_counter()
        tweets = codec.unpack(await self.objects.get(key))
        metrics.ARCHIVE_READ_SECONDS.observe(time.perf_counter() - started)
        metrics.ARCHIVE_READS.labels("store").inc()
        self._cache[key] = tweets
        if len(self._cache) > CACHED_OBJECTS:
            self._cache.popitem(last=False)
        return tweets

    async def totals(self) -> tuple[int, int]:
        row = await self.pool.fetchrow("SELECT tweets, objects FROM archive_totals")
        return (row[0], row[1]) if row else (0, 0)


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """An object's index row (archive_objects)."""

    id: int
    key: str
    max_id: int
    deleted: frozenset[int]
