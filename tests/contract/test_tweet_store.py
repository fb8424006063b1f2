"""The tweet-store contract. Every adapter runs this same suite: add it to ADAPTERS."""

import random
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from core.models import Tweet
from storage.tweets import PostgresTweetStore

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADAPTERS = ["postgres"]


@pytest_asyncio.fixture(loop_scope="session", params=ADAPTERS)
async def store(request, services):
    if request.param == "postgres":
        return PostgresTweetStore(services.pool)
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
    await store.put(t)  # idempotent
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
