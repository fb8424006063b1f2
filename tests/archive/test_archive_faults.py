"""The archive command killed after each step, then run again: nothing lost or doubled."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest

from core.ids import min_id_for_ms, wall_clock_ms
from core.models import Tweet
from tests.archive.conftest import LIVE_STORES, archive_api, backdating, store_env
from workers import archive

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY_MS = 86400 * 1000
STEPS = ["written", "indexed", "deleted"]
# Objects indexed for the author when the run dies at the 2nd of its three objects (the
# first replaced the tail).
INDEXED_WHEN_KILLED = {"written": 2, "indexed": 3, "deleted": 3}


def _archive(stack, env: dict[str, str], fault: str | None = None) -> tuple[int, dict | None]:
    return _archive_cli(stack, env, "--older-than", "0s", fault=fault)


def _archive_cli(stack, env: dict[str, str], *args: str,
                 fault: str | None = None) -> tuple[int, dict | None]:
    """`python -m workers.archive ARGS` on this stack: (exit code, its JSON summary)."""
    full = dict(os.environ, CHIRP_ENV="test", CHIRP_POSTGRES_URL=stack.postgres_url,
                CHIRP_REDIS_URL=stack.redis_url, CHIRP_DATA_DIR=str(stack.root / "data"),
                **env)
    full.pop("CHIRP_ARCHIVE_FAULT_AFTER", None)
    if fault:
        full["CHIRP_ARCHIVE_FAULT_AFTER"] = fault
    done = subprocess.run([sys.executable, "-m", "workers.archive", *args],
                          env=full, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    summary = orjson.loads(lines[-1]) if done.returncode == 0 else None
    assert done.returncode in (0, 70), done.stderr
    return done.returncode, summary


async def _old_tweets(svc, author: int, days_ago: int, n: int) -> list[Tweet]:
    await backdating(svc)
    now = wall_clock_ms()
    out = []
    for k in range(n):
        ms = now - days_ago * DAY_MS - k * 1000
        tid = min_id_for_ms(ms) + svc.ids.next_id() % 4096
        t = Tweet(tid, author, f"{days_ago}d {k}", datetime.fromtimestamp(ms / 1000, UTC))
        await svc.live_tweets.put(t)
        out.append(t)
    return out


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("live", LIVE_STORES)
async def test_a_run_killed_after_any_step_loses_and_duplicates_nothing(
        request, archive_stack, live, step):
    """Objects of 4 tweets: a first run leaves the author [4 oldest] and a tail of 2; ten
    newer tweets then top the tail up into three objects, and that run is killed at the
    second of them."""
    env = dict(store_env(request, live, "file"), CHIRP_ARCHIVE_OBJECT_TWEETS="4")
    async with archive_api(archive_stack, env) as (_api, svc):
        # Archive what earlier tests left, so the killed run moves only this test's tweets.
        await archive.run(svc.pool, svc.live_tweets, svc.archive, svc.ids.next_id())
        author = svc.ids.next_id()
        await svc.pool.execute(
            "INSERT INTO users (id, handle, display_name, password_hash, tweets_count) "
            "VALUES ($1, $2, $2, 'x', 16)", author, f"k{author % 10**12}")
        first = await _old_tweets(svc, author, 500, 6)
        await archive.run(svc.pool, svc.live_tweets, svc.archive, svc.ids.next_id())
        second = await _old_tweets(svc, author, 420, 10)
        tweets = sorted(first + second, key=lambda t: -t.id)
        ids = [t.id for t in tweets]

        async def objects() -> list:
            return await svc.pool.fetch(
                "SELECT key, tweets, deleted FROM archive_objects WHERE author_id = $1",
                author)

        tail_key = min((await objects()), key=lambda o: o["tweets"])["key"]
        rc, _ = _archive(archive_stack, env, f"{step}:2")
        assert rc == 70
        assert len(await objects()) == INDEXED_WHEN_KILLED[step]
        assert await svc.tweets.by_author(author, limit=100) == tweets
        assert (await svc.tweets.get_many(ids)) == {t.id: t for t in tweets}

        rc, summary = _archive(archive_stack, env)
        assert rc == 0 and summary["skipped"] is None
        assert await svc.live_tweets.by_author(author, limit=100) == []
        assert await svc.tweets.by_author(author, limit=100) == tweets
        assert await svc.tweets.by_author(author, before=ids[4], limit=5) == tweets[5:10]
        assert await svc.archive.archived_among(ids) == set(ids)
        final = await objects()
        assert sorted(o["tweets"] for o in final) == [4, 4, 4, 4]
        assert all(o["deleted"] == [] for o in final)
        assert tail_key not in {o["key"] for o in final}
        assert await svc.pool.fetchval(
            "SELECT true FROM archive_garbage WHERE key = $1", tail_key)

        rc, summary = _archive(archive_stack, env)
        assert rc == 0 and (summary["archived"], summary["objects"]) == (0, 0)
        assert await svc.archive.collect_garbage(0) >= 1
        assert await svc.tweets.by_author(author, limit=100) == tweets
