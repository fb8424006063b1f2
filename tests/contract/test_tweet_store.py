"""The tweet-store contract. Every adapter runs this same suite: add it to ADAPTERS."""

import random
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from core.ids import id_timestamp_ms, min_id_for_ms
from core.models import Tweet
from storage.tweets import IdCollision, PostgresTweetStore
from tests.fakes import MemoryTweetStore

WEEK_MS = 7 * 24 * 3600 * 1000

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADAPTERS = ["postgres", "cassandra", "memory"]  # memory: the fake in tests/fakes.py


@pytest_asyncio.fixture(loop_scope="session", params=ADAPTERS)
async def store(request, services):
    if request.param == "postgres":
        return PostgresTweetStore(services.pool)
    if request.param == "cassandra":
        return request.getfixturevalue("cassandra_store")
    if request.param == "memory":
        return MemoryTweetStore()
    raise AssertionError(request.param)


async def _author(services) -> int:
    uid = services.ids.next_id()
    await services.pool.execute(
        "INSERT INTO users (id, handle, display_name, password_hash) VALUES ($1, $2, $2, 'x')",
        uid, f"s{uid % 10**12}",
    )
    return uid


def _tweet(services, author: int, text: str = "t") -> Tweet:
    tid = services.ids.next_id()
    return Tweet(tid, author, text, datetime.now(UTC).replace(microsecond=0))


async def test_put_get_delete(store, services):
    author = await _author(services)
    t = _tweet(services, author, "hello ✓")
    await store.put(t)
    await store.put(t)
    assert (await store.get_many([t.id, 12345]))[t.id] == t
    assert await store.delete(t.id) == t
    assert await store.delete(t.id) is None
    assert await store.get_many([t.id]) == {}


async def test_by_author_pages_newest_first(store, services):
    author = await _author(services)
    ts = [_tweet(services, author, str(i)) for i in range(25)]
    for t in ts:
        await store.put(t)
    ids = [t.id for t in ts][::-1]
    assert [t.id for t in await store.by_author(author, limit=10)] == ids[:10]
    assert [t.id for t in await store.by_author(author, before=ids[9], limit=10)] == ids[10:20]
    assert [t.id for t in await store.by_author(author, since=ids[3])] == ids[:3]
    got = await store.by_author(author, before=ids[2], since=ids[6], limit=100)
    assert [t.id for t in got] == ids[3:6]


async def test_by_authors_merges(store, services):
    authors = [await _author(services) for _ in range(4)]
    rng = random.Random(7)
    ts = []
    for _ in range(40):
        t = _tweet(services, rng.choice(authors))
        await store.put(t)
        ts.append(t)
    everything = sorted((t.id for t in ts), reverse=True)
    assert [t.id for t in await store.by_authors(authors, limit=100)] == everything
    page = await store.by_authors(authors, before=everything[4], limit=7)
    assert [t.id for t in page] == everything[5:12]
    two = set(authors[:2])
    expected = [t.id for t in sorted(ts, key=lambda t: -t.id) if t.author_id in two]
    assert [t.id for t in await store.by_authors(authors[:2], limit=100)] == expected
    assert await store.by_authors([], limit=5) == []


async def test_a_colliding_id_is_refused(store, services):
    author = await _author(services)
    t = _tweet(services, author, "first")
    await store.put(t)
    with pytest.raises(IdCollision):
        await store.put(Tweet(t.id, author, "someone else's", t.created_at))
    assert (await store.get_many([t.id]))[t.id].text == "first"


async def test_by_author_crosses_time_buckets(store, services):
    """Tweets weeks apart (Cassandra's week partitions) page as one newest-first list."""
    author = await _author(services)
    now_ms = id_timestamp_ms(services.ids.next_id())
    ts = []
    for weeks_ago in (30, 12, 12, 3, 0):
        for n in range(2):
            ms = now_ms - weeks_ago * WEEK_MS - n * 1000
            tid = min_id_for_ms(ms) + services.ids.next_id() % 4096
            ts.append(Tweet(tid, author, f"{weeks_ago}w{n}",
                            datetime.fromtimestamp(ms // 1000, UTC)))
    for t in ts:
        await store.put(t)
    ids = sorted((t.id for t in ts), reverse=True)
    assert [t.id for t in await store.by_author(author, limit=100)] == ids
    assert [t.id for t in await store.by_author(author, before=ids[1], limit=5)] == ids[2:7]
    assert [t.id for t in await store.by_author(author, since=ids[5], limit=100)] == ids[:5]
    assert [t.id for t in await store.by_authors([author], before=ids[7], limit=9)] == ids[8:]
    assert await store.delete(ids[4]) is not None
    assert [t.id for t in await store.by_author(author, limit=100)] == ids[:4] + ids[5:]


async def test_a_deleted_tweet_stays_deleted_when_put_again(store, services):
    """A `put` repeated after the delete (a redelivered event) does not bring it back."""
    author = await _author(services)
    t = _tweet(services, author, "gone")
    await store.put(t)
    assert await store.delete(t.id) == t
    if store.transactional:
        return  # PostgreSQL: the worker never repeats a put (the tweet row is the truth)
    await store.put(t)
    assert await store.get_many([t.id]) == {}
    assert await store.by_author(author) == []


async def test_delete_many_and_authors_before(store, services):
    """What the archive needs: authors with tweets below an id, and a batch delete."""
    old, new = await _author(services), await _author(services)
    now_ms = id_timestamp_ms(services.ids.next_id())
    olds = []
    for weeks_ago in (5, 3):
        ms = now_ms - weeks_ago * WEEK_MS
        tid = min_id_for_ms(ms) + services.ids.next_id() % 4096
        olds.append(Tweet(tid, old, "old", datetime.fromtimestamp(ms // 1000, UTC)))
    fresh = _tweet(services, new, "new")
    for t in [*olds, fresh]:
        await store.put(t)
    cutoff = min_id_for_ms(now_ms - 2 * WEEK_MS)
    authors = await store.authors_before(cutoff)
    assert old in authors and new not in authors
    assert await store.delete_many([olds[0].id, olds[1].id, 12345]) == {t.id for t in olds}
    assert await store.delete_many([olds[0].id]) == set()
    assert await store.by_author(old, limit=10) == []
    assert await store.get_many([fresh.id]) == {fresh.id: fresh}
