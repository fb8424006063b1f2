"""The archive command killed after each step of moving an object (written, indexed,
deleted from the live store), then run again: every tweet stays readable exactly once,
none is archived twice, and a third run finds nothing to do."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest

from core import archive as codec
from core.ids import min_id_for_ms, wall_clock_ms
from core.models import Tweet
from tests.archive.conftest import LIVE_STORES, archive_api, store_env
from workers import archive

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY_MS = 86400 * 1000
STEPS = ["written", "indexed", "deleted"]
INDEXED_WHEN_KILLED = {"written": 1, "indexed": 2, "deleted": 2}  # killed at the 2nd object


def _archive(stack, env: dict[str, str], fault: str | None = None) -> tuple[int, dict | None]:
    full = dict(os.environ, CHIRP_ENV="test", CHIRP_POSTGRES_URL=stack.postgres_url,
                CHIRP_REDIS_URL=stack.redis_url, CHIRP_DATA_DIR=str(stack.root / "data"),
                **env)
    full.pop("CHIRP_ARCHIVE_FAULT_AFTER", None)
    if fault:
        full["CHIRP_ARCHIVE_FAULT_AFTER"] = fault
    done = subprocess.run([sys.executable, "-m", "workers.archive", "--older-than", "0s"],
                          env=full, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    summary = orjson.loads(lines[-1]) if done.returncode == 0 else None
    assert done.returncode in (0, 70), done.stderr
    return done.returncode, summary


async def _old_tweets(svc, author: int) -> list[Tweet]:
    """Tweets spread over three months long ago: three objects or more."""
    now = wall_clock_ms()
    out = []
    for n in range(12):
        ms = now - (400 + 31 * (n % 3)) * DAY_MS - n * 1000
        tid = min_id_for_ms(ms) + svc.ids.next_id() % 4096
        t = Tweet(tid, author, f"old {n}", datetime.fromtimestamp(ms / 1000, UTC))
        await svc.tweets.live.put(t)
        out.append(t)
    return sorted(out, key=lambda t: -t.id)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("live", LIVE_STORES)
async def test_a_run_killed_after_any_step_loses_and_duplicates_nothing(
        request, archive_stack, live, step):
    env = store_env(request, live, "file")
    async with archive_api(archive_stack, env) as (_api, svc):
        # Archive what earlier tests left, so the killed run moves only this test's tweets.
        await archive.run(svc.pool, svc.tweets.live, svc.archive, svc.ids.next_id())
        author = svc.ids.next_id()
        await svc.pool.execute(
            "INSERT INTO users (id, handle, display_name, password_hash, tweets_count) "
            "VALUES ($1, $2, $2, 'x', 12)", author, f"k{author % 10**12}")
        tweets = await _old_tweets(svc, author)
        ids = [t.id for t in tweets]
        groups = len(codec.groups(tweets))
        assert groups == 3

        rc, _ = _archive(archive_stack, env, f"{step}:2")
        assert rc == 70
        indexed = await svc.pool.fetchval(
            "SELECT count(*) FROM archive_objects WHERE author_id = $1", author)
        assert indexed == INDEXED_WHEN_KILLED[step]
        assert await svc.tweets.by_author(author, limit=100) == tweets
        assert (await svc.tweets.get_many(ids)) == {t.id: t for t in tweets}

        rc, summary = _archive(archive_stack, env)
        assert rc == 0 and summary["skipped"] is None
        assert await svc.tweets.live.by_author(author, limit=100) == []
        assert await svc.tweets.by_author(author, limit=100) == tweets
        assert await svc.tweets.by_author(author, before=ids[4], limit=5) == tweets[5:10]
        assert await svc.archive.archived_among(ids) == set(ids)
        objects = await svc.pool.fetch(
            "SELECT tweets, deleted FROM archive_objects WHERE author_id = $1", author)
        assert len(objects) == groups
        assert sum(o["tweets"] for o in objects) == len(ids)
        assert all(o["deleted"] == [] for o in objects)

        rc, summary = _archive(archive_stack, env)
        assert rc == 0 and (summary["archived"], summary["objects"]) == (0, 0)
