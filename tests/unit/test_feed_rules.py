"""FeedManager's timeline rules on in-memory ports (tests/fakes.py): no server."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.models import AUTHOR_DEMOTED, TWEET_CREATED, TWEET_DELETED, Event, Tweet
from core.timeline import NEWEST
from services.feed import FeedManager
from storage import keys
from tests.fakes import (
    MemoryGraph,
    MemoryServer,
    MemoryTimelineCache,
    MemoryTweetStore,
    MemoryUsers,
)

THRESHOLD = 4  # followers that make a celebrity here
CAP = 10


class World:
    def __init__(self, cap: int = CAP, fanout_chunk: int = 20_000) -> None:
        self.server = MemoryServer()
        self.home = MemoryTimelineCache(self.server, keys.HOME, cap, live=True, free_slots=True)
        self.recents = MemoryTimelineCache(self.server, keys.RECENTS, cap)
        self.tweets = MemoryTweetStore()
        self.users = MemoryUsers()
        self.graph = MemoryGraph(self.users)
        self.feed = FeedManager(self.home, self.recents, self.tweets, self.graph, self.users,
                                threshold=THRESHOLD, active_days=30,
                                fanout_chunk=fanout_chunk)
        self._ids = itertools.count(1000)

    def user(self, active: bool = True) -> int:
        return self.users.add(next(self._ids), active)

    async def reader(self) -> tuple[int, int]:
        """A viewer with a cached home timeline, following one author: (viewer, author)."""
        viewer, author = self.user(), self.user()
        self.graph.follow(viewer, author)
        await self.cached(viewer)
        return viewer, author

    async def cached(self, *viewers: int) -> None:
        """Give viewers a cached (rebuilt) home timeline, as a first read does."""
        for viewer in viewers:
            await self.page(viewer)
            assert self.home.ids(viewer) is not None

    async def post(self, author: int, text: str = "t") -> int:
        tweet = Tweet(next(self._ids), author, text, datetime.now(UTC))
        await self.tweets.put(tweet)
        await self.feed.on_post(tweet)
        await self.feed.apply(Event(TWEET_CREATED, tweet.id, author))
        return tweet.id

    async def load(self, ids: list[int]) -> list[Tweet | None]:
        found = await self.tweets.get_many(ids)
        return [found.get(i) for i in ids]

    async def page(self, viewer: int, first: int = 20, before: int = NEWEST, since: int = 0):
        return await self.feed.home_page(viewer, first, before, since, self.load)

    async def all_pages(self, viewer: int, first: int) -> list[int]:
        out, before = [], NEWEST
        while True:
            page = await self.page(viewer, first, before)
            out += [t.id for t in page.tweets]
            if not page.has_next:
                return out
            before = page.tweets[-1].id


async def test_pages_neither_repeat_nor_skip():
    w = World()
    viewer, a, b = w.user(), w.user(), w.user()
    w.graph.follow(viewer, a)
    w.graph.follow(viewer, b)
    await w.cached(viewer)
    posted = [await w.post(a if i % 2 else b) for i in range(8)]
    first = await w.page(viewer, 3)
    assert [t.id for t in first.tweets] == posted[::-1][:3] and first.has_next
    assert await w.all_pages(viewer, 3) == posted[::-1]
    last = await w.page(viewer, 20, before=posted[1])
    assert [t.id for t in last.tweets] == [posted[0]] and not last.has_next


async def test_fan_out_pushes_to_cached_active_followers_only():
    w = World()
    author, cached, uncached, idle = w.user(), w.user(), w.user(), w.user(active=False)
    for f in (cached, uncached, idle):
        w.graph.follow(f, author)
    await w.cached(cached, idle)
    tid = await w.post(author)
    assert w.home.ids(cached) == [tid]
    assert w.home.ids(uncached) is None  # missing lists are never written: rebuilt on read
    assert w.home.ids(idle) == []  # inactive followers are skipped (their cache expires first)
    assert w.home.ids(author) is None and w.recents.ids(author) is None


async def test_celebrities_are_pulled_and_merged_at_read_time():
    w = World()
    celeb, friend, viewer = w.user(), w.user(), w.user()
    fans = [w.user() for _ in range(THRESHOLD - 1)]
    for f in [viewer, *fans]:
        w.graph.follow(f, celeb)
    w.graph.follow(viewer, friend)
    await w.cached(viewer)
    posted = [await w.post(celeb if i % 2 else friend) for i in range(6)]
    assert w.home.ids(viewer) == [p for p in posted[::-1] if p in posted[0::2]]
    page = await w.page(viewer, 20)
    assert [t.id for t in page.tweets] == posted[::-1]
    assert w.recents.ids(celeb) == posted[1::2][::-1]


async def test_a_redis_outage_degrades_the_read_to_the_store():
    w = World()
    viewer, a = await w.reader()
    posted = [await w.post(a) for _ in range(3)]
    w.server.down = True
    page = await w.page(viewer, 2)
    assert [t.id for t in page.tweets] == posted[::-1][:2]
    assert page.degraded and page.has_next
    w.server.down = False
    page = await w.page(viewer, 2)
    assert not page.degraded


async def test_a_missing_timeline_is_rebuilt_once_from_the_store():
    w = World()
    viewer, a, celeb = w.user(), w.user(), w.user()
    for f in [viewer, *(w.user() for _ in range(THRESHOLD - 1))]:
        w.graph.follow(f, celeb)
    w.graph.follow(viewer, a)
    posted = [await w.post(a if i % 3 else celeb) for i in range(6)]
    assert w.home.ids(viewer) is None
    page = await w.page(viewer, 20)
    assert [t.id for t in page.tweets] == posted[::-1]
    # the rebuilt list holds what fan-out would have pushed: own and non-celebrity tweets
    assert w.home.ids(viewer) == [p for i, p in enumerate(posted) if i % 3][::-1]
    assert await w.home.begin_rebuild(viewer) == "exists"


async def test_paging_past_the_cached_window_continues_from_the_store():
    w = World(cap=5)
    viewer, a = await w.reader()
    posted = [await w.post(a) for _ in range(13)]
    assert len(w.home.ids(viewer)) == 5
    assert await w.all_pages(viewer, 4) == posted[::-1]
    assert len(w.home.ids(viewer)) == 5


async def test_a_deleted_tweet_leaves_every_timeline_and_the_store():
    w = World()
    author, f1, f2 = w.user(), w.user(), w.user()
    for f in (f1, f2):
        w.graph.follow(f, author)
    await w.cached(f1, f2, author)
    keep, doomed = await w.post(author, "keep"), await w.post(author, "doomed")
    assert w.home.ids(f1) == [doomed, keep]
    await w.tweets.delete(doomed)
    await w.feed.apply(Event(TWEET_DELETED, doomed, author))
    for f in (f1, f2, author):
        assert w.home.ids(f) == [keep]
        assert [t.id for t in (await w.page(f)).tweets] == [keep]
    assert w.recents.ids(author) in (None, [keep])


async def test_a_deleted_tweet_still_cached_is_not_shown():
    w = World()
    viewer, a = await w.reader()
    keep, doomed = await w.post(a), await w.post(a)
    await w.tweets.delete(doomed)
    assert doomed in w.home.ids(viewer)
    assert [t.id for t in (await w.page(viewer)).tweets] == [keep]


async def test_follow_merges_and_unfollow_unmerges():
    w = World()
    viewer, a, b = w.user(), w.user(), w.user()
    w.graph.follow(viewer, a)
    await w.cached(viewer)
    from_a = [await w.post(a) for _ in range(2)]
    from_b = [await w.post(b) for _ in range(3)]
    w.graph.follow(viewer, b)
    await w.feed.on_follow(viewer, b, w.feed.pushed(w.users.users[b]))
    assert w.home.ids(viewer) == sorted(from_a + from_b, reverse=True)
    w.graph.unfollow(viewer, b)
    await w.feed.on_unfollow(viewer, b)
    assert w.home.ids(viewer) == from_a[::-1]
    # a fan-out push racing the unfollow may still land; reads filter by who is followed
    await w.home.insert(viewer, from_b[-1])
    assert [t.id for t in (await w.page(viewer)).tweets] == from_a[::-1]


async def test_following_a_celebrity_merges_nothing():
    w = World()
    viewer, celeb = w.user(), w.user()
    for f in (w.user() for _ in range(THRESHOLD)):
        w.graph.follow(f, celeb)
    await w.cached(viewer)
    posted = [await w.post(celeb) for _ in range(2)]
    w.graph.follow(viewer, celeb)
    await w.feed.on_follow(viewer, celeb, w.feed.pushed(w.users.users[celeb]))
    assert w.home.ids(viewer) == []
    assert [t.id for t in (await w.page(viewer)).tweets] == posted[::-1]


async def test_a_demoted_celebrity_is_back_filled_into_followers_timelines():
    w = World()
    celeb, viewer = w.user(), w.user()
    others = [w.user() for _ in range(THRESHOLD - 1)]
    for f in [viewer, *others]:
        w.graph.follow(f, celeb)
    await w.cached(viewer)
    posted = [await w.post(celeb) for _ in range(3)]
    assert w.home.ids(viewer) == []
    w.graph.unfollow(others[0], celeb)  # below the threshold now
    # as the worker's sweep leaves it: flagged (still pulled), and being demoted (pushed)
    w.users.users[celeb] = replace(w.users.users[celeb], celebrity=True, demoting=True)
    posted.append(await w.post(celeb))
    assert w.home.ids(viewer) == posted[-1:]
    assert await w.feed.apply(Event(AUTHOR_DEMOTED, 0, celeb)) == 1
    assert w.home.ids(viewer) == posted[::-1]
    assert not w.feed.celebrity(w.users.users[celeb])
    assert await w.feed.apply(Event(AUTHOR_DEMOTED, 0, celeb)) == 0


async def test_a_big_fan_out_is_split_into_chunk_events():
    w = World()
    author = w.user()
    fans = [w.user() for _ in range(THRESHOLD - 1)]
    for f in fans:
        w.graph.follow(f, author)
    await w.cached(*fans)
    published: list[Event] = []

    async def publish(events: list[Event]) -> None:
        published.extend(events)

    tweet = Tweet(99_999, author, "big", datetime.now(UTC))
    await w.tweets.put(tweet)
    w.feed.fanout_chunk = 1
    assert await w.feed.apply(Event(TWEET_CREATED, tweet.id, author), publish) == 0
    assert len(published) >= len(fans) and all(e.span for e in published)
    assert all(w.home.ids(f) == [] for f in fans)
    assert [await w.feed.apply(event) for event in published].count(1) == len(fans)
    assert all(w.home.ids(f) == [tweet.id] for f in fans)


async def test_since_returns_only_newer_tweets():
    w = World()
    viewer, a = await w.reader()
    posted = [await w.post(a) for _ in range(5)]
    page = await w.page(viewer, 20, since=posted[2])
    assert [t.id for t in page.tweets] == posted[:2:-1]


@pytest.mark.parametrize("store_down", [False, True])
async def test_own_tweets_show_at_once(store_down):
    """on_post puts a tweet in its author's own lists before fan-out runs."""
    w = World()
    author = w.user()
    await w.cached(author)
    tweet = Tweet(5_000, author, "mine", datetime.now(UTC))
    await w.tweets.put(tweet)
    w.server.down = store_down
    await w.feed.on_post(tweet)
    w.server.down = False
    assert w.home.ids(author) == ([] if store_down else [tweet.id])
