"""The archive worker: old tweets from the tweet store into objects (docs/modules.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import asdict, dataclass

import asyncpg
import orjson

from core import archive as codec
from core.ids import min_id_for_ms, wall_clock_ms
from core.models import Tweet
from runtime.container import archive_parts
from runtime.settings import load
from storage.archive import HORIZON_TTL_S, Archive, ObjectRow
from storage.tweets import TweetStore

log = logging.getLogger("chirp.archive")

LOCK = 0x41524348  # "ARCH": one archive run at a time across processes
CONCURRENCY = 4  # authors moved at once (an author's objects go one after another)
READ_PAGE = 5000  # an author's old tweets are read (and grouped) this many at a time
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass
class Summary:
    archived: int = 0
    objects: int = 0
    authors: int = 0
    bytes: int = 0
    finished_earlier: int = 0  # indexed by a killed run, deleted from the live store now
    cutoff_id: int = 0
    seconds: float = 0.0  # moving tweets (after the wait for readers' horizons)
    tweets_per_s: float = 0.0
    skipped: str | None = None


class _Fault:
    """CHIRP_ARCHIVE_FAULT_AFTER=step[:n] (tests): exit after the n-th completed `step`."""

    def __init__(self, spec: str | None) -> None:
        step, _, n = (spec or "").partition(":")
        self.step = step
        self.left = int(n or 1)

    def after(self, step: str) -> None:
        if step == self.step:
            self.left -= 1
            if self.left == 0:
                sys.stdout.flush()
                os._exit(70)


def parse_age(raw: str) -> float:
    m = re.fullmatch(r"(\d+)([dhms])", raw.strip())
    if not m:
        raise ValueError(f"{raw!r} is not an age like 365d, 12h, 30m or 2s")
    return int(m.group(1)) * _UNITS[m.group(2)]


def cutoff_for(age_s: float, now_ms: int | None = None) -> int:
    """The smallest id a tweet `age_s` old or younger can have."""
    return min_id_for_ms((now_ms or wall_clock_ms()) - int(age_s * 1000))


async def run(pool: asyncpg.Pool, live: TweetStore, archive: Archive, cutoff_id: int,
              *, wait: bool = True, fault: str | None = None) -> Summary:
    """Archive every tweet below `cutoff_id`; with wait=False, skip if a run is under way."""
    summary = Summary(cutoff_id=cutoff_id)
    async with pool.acquire() as lock_conn:
        if wait:
            await lock_conn.execute("SELECT pg_advisory_lock($1)", LOCK)
        elif not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
            summary.skipped = "another archive run holds the lock"
            return summary
        try:
            if await archive.raise_horizon(cutoff_id):
                await asyncio.sleep(HORIZON_TTL_S)  # readers' cached horizons catch up
            started = time.perf_counter()
            await archive.collect_garbage()
            mover = _Mover(pool, live, archive, summary, _Fault(fault))
            authors = iter(await live.authors_before(cutoff_id))

            async def mover_task() -> None:
                for author in authors:
                    await mover.author(author, cutoff_id)

            async with asyncio.TaskGroup() as group:
                for _ in range(CONCURRENCY):
                    group.create_task(mover_task())
            await pool.execute(
                "UPDATE archive_totals SET last_run_at = now(), "
                "complete_below = greatest(complete_below, $1)", cutoff_id,
            )
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.tweets_per_s = round(summary.archived / summary.seconds, 1) if summary.seconds else 0
    return summary


class _Mover:
    def __init__(self, pool: asyncpg.Pool, live: TweetStore, archive: Archive,
                 summary: Summary, fault: _Fault) -> None:
        self.pool = pool
        self.live = live
        self.archive = archive
        self.summary = summary
        self.fault = fault

    async def author(self, author_id: int, cutoff_id: int) -> None:
        before = cutoff_id
        counted = False
        while True:
            page = await self.live.by_author(author_id, before=before, limit=READ_PAGE)
            if not page:
                return
            done = await self.archive.archived_among([t.id for t in page])
            if done:
                await self._delete([t.id for t in page if t.id in done])
                self.summary.finished_earlier += len(done)
            fresh = [t for t in page if t.id not in done]
            if fresh and not counted:
                self.summary.authors += 1
                counted = True
            if fresh:
                await self._move_all(author_id, fresh)
            if len(page) < READ_PAGE:
                return
            before = page[-1].id

    async def _move_all(self, author_id: int, fresh: list[Tweet]) -> None:
        tail, carried = await self.archive.tail(author_id)
        if tail is not None and min(t.id for t in fresh) < tail.max_id:
            tail, carried = None, []
        old = {t.id for t in carried}
        groups = codec.groups(carried + fresh, self.archive.object_max)
        for group in reversed(groups):  # the oldest, which takes in the tail, first
            packed = codec.pack(self.archive.prefix, group)
            replaces = tail if carried and carried[0].id in packed.ids else None
            await self._move(packed, [t.id for t in group if t.id not in old], replaces)

    async def _move(self, packed: codec.Packed, fresh: list[int],
                    replaces: ObjectRow | None) -> None:
        await self.archive.write(packed)
        self.fault.after("written")
        async with self.pool.acquire() as tx, tx.transaction():
            if self.live.transactional:
                # Only rows still there are indexed; row locks order this against a delete.
                present = await self.live.delete_many(fresh, tx)
            else:
                claimed = await tx.fetch(
                    "SELECT tweet_id FROM tweet_deletions WHERE tweet_id = ANY($1::bigint[])",
                    fresh,
                )
                present = set(fresh) - {r[0] for r in claimed}
            indexed = await self.archive.index(packed, present, tx, replaces)
        self.fault.after("indexed")
        if not self.live.transactional:
            await self._forget_deleted(fresh)
            await self._delete(fresh)
        self.fault.after("deleted")
        self.summary.archived += indexed
        self.summary.objects += 0 if replaces is not None else 1
        self.summary.bytes += len(packed.data)

    async def _forget_deleted(self, ids: list[int]) -> None:
        """Deletes that raced our index commit: remove those tweets from the archive too."""
        rows = await self.pool.fetch(
            "SELECT d.tweet_id FROM tweet_deletions d JOIN archived_tweets a "
            "ON a.id = d.tweet_id WHERE d.tweet_id = ANY($1::bigint[])",
            ids,
        )
        for (tweet_id,) in rows:
            await self.archive.delete(tweet_id)

    async def _delete(self, ids: list[int]) -> None:
        await self.live.delete_many(ids)


async def restore(pool: asyncpg.Pool, live: TweetStore, archive: Archive,
                  author_id: int | None) -> int:
    """Archived tweets back into the live store, one object per transaction. PostgreSQL
    only: Cassandra's tombstones would hide re-inserted rows."""
    if not live.transactional:
        raise ValueError("restoring into Cassandra is not supported (docs/archive.md)")
    # Readers skip the live store below complete_below: lower it, and wait until they know.
    if await pool.fetchval(
        "UPDATE archive_totals SET complete_below = 0 WHERE complete_below > 0 RETURNING true"
    ):
        await asyncio.sleep(HORIZON_TTL_S)
    archive.forget_bounds()
    objects = await pool.fetch(
        "SELECT id, key, deleted FROM archive_objects "
        "WHERE $1::bigint IS NULL OR author_id = $1 ORDER BY id", author_id,
    )
    restored = 0
    for obj in objects:
        deleted = set(obj["deleted"])
        tweets = [t for t in await archive.read_object(obj["key"]) if t.id not in deleted]
        async with pool.acquire() as tx, tx.transaction():
            rows = await tx.fetch(
                "DELETE FROM archived_tweets WHERE object_id = $1 RETURNING id", obj["id"]
            )
            still = {r[0] for r in rows}
            for t in tweets:
                if t.id in still:
                    await live.put(t, tx)
            await tx.execute("DELETE FROM archive_objects WHERE id = $1", obj["id"])
            await tx.execute(
                "INSERT INTO archive_garbage (key) VALUES ($1) ON CONFLICT DO NOTHING",
                obj["key"],
            )
            await tx.execute(
                "UPDATE archive_totals SET tweets = tweets - $1, objects = objects - 1",
                len(still),
            )
        restored += len(still)
    return restored


async def main_async(age_s: float, restore_author: str | None = None) -> dict:
    settings = load()
    pool, live, archive = await archive_parts(settings)
    try:
        if restore_author is not None:
            author = None if restore_author == "all" else int(restore_author)
            return {"restored": await restore(pool, live, archive, author)}
        return asdict(await run(pool, live, archive, cutoff_for(age_s),
                                fault=settings.archive_fault_after))
    finally:
        with contextlib.suppress(Exception):
            await archive.objects.close()
        await live.close()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--older-than", help="age such as 365d, 12h, 30m, 2s "
                        "(default: CHIRP_ARCHIVE_AFTER_DAYS days)")
    parser.add_argument("--restore", metavar="AUTHOR_ID|all",
                        help="move archived tweets back into the live store instead")
    args = parser.parse_args()
    if args.restore is not None and args.restore != "all" and not args.restore.isdigit():
        parser.error("--restore takes an author id or 'all'")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        age = parse_age(args.older_than) if args.older_than else \
            load().archive_after_days * 86400
    except ValueError as e:
        parser.error(str(e))
    summary = asyncio.run(main_async(age, args.restore))
    print(orjson.dumps(summary).decode(), flush=True)


if __name__ == "__main__":
    main()
