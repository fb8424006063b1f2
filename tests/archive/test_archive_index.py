"""The archive's reads on their own, and one run at a time."""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from core import archive as codec
from core.ids import min_id_for_ms, wall_clock_ms
from core.models import Tweet
from tests.archive.conftest import archive_api, backdating, store_env
from workers import archive

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY_MS = 86400 * 1000


async def test_objects_of_several_authors_page_as_one_list(request, archive_stack):
    async with archive_api(archive_stack, store_env(request, "postgres", "file")) as (_, svc):
        rng = random.Random(3)
        authors = [svc.ids.next_id() for _ in range(3)]
        now = wall_clock_ms()
        tweets = []
        for n in range(300):
            ms = now - rng.randint(400, 520) * DAY_MS
            tid = min_id_for_ms(ms) + n
            tweets.append(Tweet(tid, rng.choice(authors), f"t{n}",
                                datetime.fromtimestamp(ms / 1000, UTC)))
        for a in authors:
            for group in codec.groups([t for t in tweets if t.author_id == a]):
                packed = codec.pack("tweets/", group)
                await svc.archive.write(packed)
                async with svc.pool.acquire() as tx, tx.transaction():
                    await svc.archive.index(packed, packed.ids, tx)
        newest = sorted(tweets, key=lambda t: -t.id)
        assert await svc.archive.by_authors(authors, limit=1000) == newest
        assert await svc.archive.by_authors(authors, before=newest[99].id, limit=25) == \
            newest[100:125]
        assert await svc.archive.by_authors(
            authors, before=newest[10].id, since=newest[20].id, limit=50) == newest[11:20]
        two = set(authors[:2])
        assert await svc.archive.by_authors(authors[:2], limit=40) == [
            t for t in newest if t.author_id in two][:40]
        assert await svc.archive.get_many([newest[7].id, newest[250].id, 1]) == {
            newest[7].id: newest[7], newest[250].id: newest[250]}
        assert await svc.archive.delete(newest[8].id) == newest[8]
        assert await svc.archive.delete(newest[8].id) is None
        assert await svc.archive.by_authors(authors, limit=10) == newest[:8] + newest[9:11]


async def test_one_run_at_a_time(request, archive_stack):
    async with archive_api(archive_stack, store_env(request, "postgres", "file")) as (_, svc):
        async with svc.pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", archive.LOCK)
            try:
                skipped = await archive.run(svc.pool, svc.live_tweets, svc.archive, 1,
                                            wait=False)
                assert skipped.skipped and skipped.archived == 0
                waiting = asyncio.ensure_future(
                    archive.run(svc.pool, svc.live_tweets, svc.archive, 1))
                await asyncio.sleep(0.3)
                assert not waiting.done()
            finally:
                await holder.execute("SELECT pg_advisory_unlock($1)", archive.LOCK)
        assert (await asyncio.wait_for(waiting, 10)).skipped is None


async def test_the_fanout_worker_archives_once_a_day(request, archive_stack):
    from workers.fanout import archive_daily

    env = store_env(request, "postgres", "file")
    async with archive_api(archive_stack, env, archive_after_days=1) as (_, svc):
        author = svc.ids.next_id()
        await svc.pool.execute(
            "INSERT INTO users (id, handle, display_name, password_hash) "
            "VALUES ($1, $2, $2, 'x')", author, f"d{author % 10**12}")

        async def old_tweet(n: int) -> Tweet:
            await backdating(svc)
            ms = wall_clock_ms() - 2 * DAY_MS - n
            t = Tweet(min_id_for_ms(ms) + n, author, f"old{n}",
                      datetime.fromtimestamp(ms / 1000, UTC))
            await svc.live_tweets.put(t)
            return t

        async def worker_for(seconds: float) -> None:
            stop = asyncio.Event()
            task = asyncio.ensure_future(archive_daily(svc, stop))
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.wait_for(task, 10)

        await svc.pool.execute("UPDATE archive_totals SET last_run_at = NULL")
        first = await old_tweet(1)
        await worker_for(4)  # the run waits 2 s for readers' horizons
        assert await svc.archive.archived_among([first.id]) == {first.id}
        second = await old_tweet(2)
        await worker_for(1)  # ran less than a day ago: not due
        assert await svc.archive.archived_among([second.id]) == set()
        assert await svc.tweets.by_author(author, limit=5) == [second, first]


async def test_restore_moves_an_authors_tweets_back(request, archive_stack):
    from tests.archive.test_archive_faults import _archive_cli

    env = store_env(request, "postgres", "file")
    async with archive_api(archive_stack, env, archive_object_tweets=3) as (_, svc):
        author = svc.ids.next_id()
        await svc.pool.execute(
            "INSERT INTO users (id, handle, display_name, password_hash, tweets_count) "
            "VALUES ($1, $2, $2, 'x', 7)", author, f"r{author % 10**12}")
        await backdating(svc)
        now = wall_clock_ms()
        tweets = []
        for n in range(8):
            ms = now - 400 * DAY_MS - n * 1000
            t = Tweet(min_id_for_ms(ms) + n, author, f"r{n}",
                      datetime.fromtimestamp(ms / 1000, UTC))
            await svc.live_tweets.put(t)
            tweets.append(t)
        await archive.run(svc.pool, svc.live_tweets, svc.archive, svc.ids.next_id())
        assert await svc.tweets.delete(tweets[2].id) == tweets[2]
        kept = [t for t in tweets if t is not tweets[2]]
        rc, out = _archive_cli(archive_stack, env, "--restore", str(author))
        assert rc == 0 and out == {"restored": 7}
        assert await svc.live_tweets.by_author(author, limit=20) == kept
        assert await svc.tweets.by_author(author, limit=20) == kept
        assert await svc.archive.archived_among([t.id for t in tweets]) == set()
        assert await svc.pool.fetchval(
            "SELECT count(*) FROM archive_objects WHERE author_id = $1", author) == 0
