"""FeedManager: the one place that owns the timeline rules.

Write side: insert a new tweet into its author's own timeline at once, push it into
followers' cached timelines (fan-out, never for celebrities), merge a followee's tweets on
follow, unmerge them on unfollow, drop a deleted tweet everywhere, back-fill a demoted
celebrity's tweets. Read side: merge the cached timeline with followed celebrities' recent
tweets, rebuild a missing timeline once, continue from the store past the cached window,
and pull from the store alone when Redis is unreachable.

Resolvers and workers call this; none of them touch timeline keys themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from redis.exceptions import RedisError

from core import fanout
from core.ids import id_datetime
from core.models import AUTHOR_DEMOTED, TWEET_CREATED, TWEET_DELETED, Event, Tweet, User
from core.timeline import NEWEST, Slice, exact_merge, slice_of
from runtime import metrics
from runtime.settings import ACTIVE_MARK_SECONDS
from storage import keys, notices
from storage.graph import SocialGraph
from storage.timeline_cache import CachedSlice, ReadState, TimelineCache, queue_reads
from storage.tweets import IdCollision, TweetStore
from storage.users import UserStore

log = logging.getLogger(__name__)

TweetLoader = Callable[[list[int]], Awaitable[Sequence[Tweet | None]]]
Publish = Callable[[list[Event]], Awaitable[None]]

REBUILD_WAIT_S = 1.0  # how long a reader waits for another request's rebuild


@dataclass(frozen=True, slots=True)
class Page:
    tweets: list[Tweet]
    has_next: bool
    degraded: bool = False
    authors: dict[int, User] | None = None  # filled by the API layer when it preloads them


@dataclass(frozen=True, slots=True)
class Followed:
    """Who a viewer's home timeline draws on, split by the celebrity rule."""

    allowed: set[int]  # the viewer and everyone they follow: what a page may show
    pushed: list[int]  # the viewer and followed non-celebrities: what the cache holds
    celebs: list[int]  # followed celebrities: pulled at read time


class _Exhausted(Exception):
    """A cached source reached its truncation point: continue from the store."""


class FeedManager:
    def __init__(
        self,
        home: TimelineCache,
        recents: TimelineCache,
        tweets: TweetStore,
        graph: SocialGraph,
        users: UserStore,
        celebrity_threshold: int,
        active_days: int,
        fanout_chunk: int = 20_000,
    ) -> None:
        self.home = home
        self.recents = recents
        self.tweets = tweets
        self.graph = graph
        self.users = users
        self.threshold = celebrity_threshold
        self.active_within = timedelta(days=active_days)
        self.fanout_chunk = fanout_chunk
        self._background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ write side

    async def on_post(self, tweet: Tweet) -> None:
        """Show a new tweet in its author's own timeline and recents at once. Best effort:
        the fan-out worker repeats both idempotently, so a Redis blip here loses nothing."""
        try:
            await self.home.run(lambda pipe: self._queue_own(pipe, tweet.author_id, tweet.id))
        except RedisError as e:
            log.warning("own-timeline insert of %s deferred to fan-out: %s", tweet.id, e)

    def _queue_own(self, pipe, author_id: int, tweet_id: int) -> None:
        """The author's own lists, and the author's live channel (celebrity followers and
        userTweets subscribers listen there): one round trip."""
        self.home.queue_insert(pipe, author_id, tweet_id)
        self.recents.queue_insert(pipe, author_id, tweet_id)
        self.home.queue_notify(
            pipe, keys.author_presence(author_id), keys.author_channel(author_id),
            notices.added(tweet_id),
        )

    async def apply(self, event: Event, publish: Publish | None = None) -> int:
        """Apply one bus event; idempotent, so redelivery is harmless. Returns deliveries.

        Given `publish` (the bus), a fan-out to more than `fanout_chunk` followers is not
        done here: it is split into chunk events over follower ranges, published for the
        whole worker group to share, and each chunk is applied like any other event."""
        if event.kind == TWEET_CREATED:
            if event.span is not None:
                return await self._push_span(event.tweet_id, event.author_id, event.span)
            if event.text is not None and not await self._stored(event):
                return 0
            return await self._fan_out(event.tweet_id, event.author_id, publish)
        if event.kind == TWEET_DELETED:
            if event.span is not None:
                await self._remove_span(event.tweet_id, event.author_id, event.span)
                return 0
            if not self.tweets.transactional:
                await self.tweets.delete(event.tweet_id)  # in case the API's delete failed
            await self._fan_out_delete(event.tweet_id, event.author_id, publish)
            return 0
        if event.kind == AUTHOR_DEMOTED:
            return await self._back_fill(event.author_id)
        raise ValueError(f"unknown event kind {event.kind!r}")

    async def _stored(self, event: Event) -> bool:
        """Write a tweet the event carries to the store (which the post path may have
        failed to); False if its id turns out to hold another tweet (the post was taken
        back: see Tweeting)."""
        tweet = Tweet(event.tweet_id, event.author_id, event.text or "",
                      id_datetime(event.tweet_id))
        try:
            await self.tweets.put(tweet)
        except IdCollision:
            log.error("dropping %s: tweet id %s holds another tweet", event.kind, tweet.id)
            return False
        return True

    async def _fan_out(self, tweet_id: int, author_id: int, publish: Publish | None) -> int:
        found = await self.tweets.get_many([tweet_id])
        if tweet_id not in found:
            return 0  # deleted before fan-out reached it
        # Repeats the post path's own-list inserts (idempotent) in case those failed; a
        # repeated live notice is dropped by the subscriber, which dedupes by id.
        await self.home.run(lambda pipe: self._queue_own(pipe, author_id, tweet_id))
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is None or fanout.is_celebrity(author.followers_count, self.threshold):
            return 0  # followers pull a celebrity's tweets at read time
        if publish is not None and author.followers_count > self.fanout_chunk:
            await publish(await self._chunks(TWEET_CREATED, tweet_id, author_id))
            return 0
        return await self._push(tweet_id, author_id, None)

    async def _push_span(self, tweet_id: int, author_id: int, span: tuple[int, int]) -> int:
        if tweet_id not in await self.tweets.get_many([tweet_id]):
            return 0  # deleted meanwhile
        return await self._push(tweet_id, author_id, span)

    async def _push(self, tweet_id: int, author_id: int, span: tuple[int, int] | None) -> int:
        # Push page k while the database reads page k+1: the two round trips overlap.
        delivered = 0
        pushing: asyncio.Task | None = None
        async for followers in self._follower_pages(author_id, True, span):
            if pushing is not None:
                delivered += await pushing
            pushing = asyncio.ensure_future(
                self.home.insert_many(followers, tweet_id, count_into=keys.DELIVERIES)
            )
        if pushing is not None:
            delivered += await pushing
        return delivered

    async def _chunks(self, kind: str, tweet_id: int, author_id: int) -> list[Event]:
        """One event per `fanout_chunk` followers: follow seq ranges [floor, before)."""
        marks = await self.graph.follower_marks(author_id, self.fanout_chunk)
        bounds = [NEWEST, *marks, 0]
        return [
            Event(kind, tweet_id, author_id, span=(floor, before))
            for before, floor in itertools.pairwise(bounds)
            if before > floor
        ]

    async def _fan_out_delete(self, tweet_id: int, author_id: int,
                              publish: Publish | None = None) -> None:
        await self.home.remove_many([author_id], [tweet_id], deleted=True)
        await self.recents.remove_many([author_id], [tweet_id])
        await self.home.run(lambda pipe: self.home.queue_notify(
            pipe, keys.author_presence(author_id), keys.author_channel(author_id),
            notices.deleted(tweet_id),
        ))
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is not None and fanout.is_celebrity(author.followers_count, self.threshold):
            return  # a celebrity's ids are few in caches; reads drop deleted tweets anyway
        big = author is not None and author.followers_count > self.fanout_chunk
        if publish is not None and big:
            await publish(await self._chunks(TWEET_DELETED, tweet_id, author_id))
            return
        await self._remove_span(tweet_id, author_id, None)

    async def _remove_span(self, tweet_id: int, author_id: int,
                           span: tuple[int, int] | None) -> None:
        async for followers in self._follower_pages(author_id, False, span):
            await self.home.remove_many(followers, [tweet_id], deleted=True)

    async def _back_fill(self, author_id: int) -> int:
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is None or fanout.is_celebrity(author.followers_count, self.threshold):
            return 0  # promoted again meanwhile: reads still pull
        ids, truncated = await self._author_window(author_id)
        merged = 0
        async for followers in self._follower_pages(author_id, True):
            merged += await self.home.merge_many(followers, ids, truncated)
        return merged

    async def _follower_pages(
        self, author_id: int, active_only: bool, span: tuple[int, int] | None = None
    ):
        floor, before = span or (0, NEWEST)
        while True:
            page = await self.graph.followers_page(
                author_id, before, fanout.FOLLOWER_PAGE,
                self.active_within if active_only else None, floor,
            )
            if not page:
                return
            yield [follower for _seq, follower in page]
            if len(page) < fanout.FOLLOWER_PAGE:
                return
            before = page[-1][0]

    async def _author_window(self, author_id: int) -> tuple[list[int], bool]:
        """The author's newest tweet ids, as many as a timeline holds, and whether more
        exist below them. Follow merges take all of them, not Mastodon's quarter: a cached
        timeline must stay exactly the newest N of the merge or paging past it would skip."""
        tweets = await self.tweets.by_author(author_id, limit=self.home.cap)
        return [t.id for t in tweets], len(tweets) >= self.home.cap

    async def on_follow(self, follower: int, followee: int, followee_followers: int) -> None:
        """Merge a new followee's tweets into the follower's cached timeline (if cached).
        A celebrity's are pulled at read time instead."""
        if fanout.is_celebrity(followee_followers, self.threshold):
            return
        ids, truncated = await self._author_window(followee)
        try:
            await self.home.merge(follower, ids, truncated)
        except RedisError as e:
            # The cached timeline would now be missing the followee's tweets: drop it so
            # the next read rebuilds it, or, if that fails too, let the TTL end it.
            log.warning("follow merge failed for %s: %s", follower, e)
            await self._forget(follower)

    async def on_unfollow(self, follower: int, followee: int) -> None:
        """Remove an unfollowed account's tweets from the follower's cached timeline.
        Reads also filter by the current followee set, so a racing fan-out push of the
        unfollowed account's tweet never shows."""
        try:
            cached = await self.home.read(follower, count=self.home.cap, renew=False)
            if cached.state != ReadState.OK or not cached.ids:
                return
            found = await self.tweets.get_many(cached.ids)
            doomed = [i for i, t in found.items() if t.author_id == followee]
            await self.home.remove_many([follower], doomed)
        except RedisError as e:
            log.warning("unfollow unmerge failed for %s: %s", follower, e)

    async def _forget(self, user_id: int) -> None:
        with contextlib.suppress(RedisError):
            await self.home.drop(user_id)

    # ------------------------------------------------------------------ read side

    async def followed(self, viewer: int) -> Followed:
        """One query: everyone the viewer follows, with follower counts."""
        ids, counts = await self.graph.followees(viewer)
        t = self.threshold
        celebs = [i for i, c in zip(ids, counts, strict=True) if fanout.is_celebrity(c, t)]
        if celebs:
            known = set(celebs)
            pushed = [viewer, *(i for i in ids if i not in known)]
        else:
            pushed = [viewer, *ids]
        return Followed({viewer, *ids}, pushed, celebs)

    async def home_page(
        self, viewer: int, first: int, before: int, since: int, load: TweetLoader
    ) -> Page:
        followed = await self.followed(viewer)

        async def cached(before: int, count: int) -> list[CachedSlice]:
            return await self._home_slices(viewer, followed, before, since, count)

        async def stored(before: int, count: int) -> list[Tweet]:
            return await self.tweets.by_authors(sorted(followed.allowed), before, since, count)

        return await self._page(first, before, cached, stored, load, followed.allowed)

    async def user_page(
        self, author: int, first: int, before: int, since: int, load: TweetLoader
    ) -> Page:
        async def cached(before: int, count: int) -> list[CachedSlice]:
            return [await self._recents_slice(author, before, since, count)]

        async def stored(before: int, count: int) -> list[Tweet]:
            return await self.tweets.by_author(author, before, since, count)

        return await self._page(first, before, cached, stored, load, {author})

    async def _page(
        self,
        first: int,
        before: int,
        cached: Callable[[int, int], Awaitable[list[CachedSlice]]],
        stored: Callable[[int, int], Awaitable[list[Tweet]]],
        load: TweetLoader,
        allowed: set[int],
    ) -> Page:
        """Collect first+1 visible tweets below `before` (the extra one only tells whether
        a next page exists), from the caches while they know, then from the store."""
        want = first + 1
        out: list[Tweet] = []
        degraded = False
        use_store = False
        while len(out) < want:
            need = want - len(out)
            if use_store:
                got = await stored(before, need)
                out.extend(t for t in got if t.author_id in allowed)
                if len(got) < need:
                    break
                before = got[-1].id
                continue
            # Read a little extra: deleted tweets still cached are dropped on hydration.
            count = need + need // 4 + 2
            try:
                got = await cached(before, count)
            except RedisError as e:
                log.warning("timeline read degraded to the store: %s", e)
                metrics.DEGRADED_READS.inc()
                degraded = use_store = True
                continue
            except _Exhausted:
                metrics.STORE_FALLBACK_READS.inc()
                use_store = True
                continue
            ids, boundary = exact_merge([_as_slice(g, count, before) for g in got])
            if ids:
                tweets = await load(ids)
                out.extend(t for t in tweets if t is not None and t.author_id in allowed)
            if boundary == 0:
                break  # every source is complete down to `since`
            if any(g.truncated for g in got) or boundary >= before:
                # A capped list gave out: it knows nothing below here, the store does.
                metrics.STORE_FALLBACK_READS.inc()
                use_store = True
            before = boundary
        return Page(out[:first], len(out) > first, degraded)

    async def _home_slices(
        self, viewer: int, followed: Followed, before: int, since: int, count: int
    ) -> list[CachedSlice]:
        celebs = followed.celebs
        def build(pipe) -> None:
            sources = [(self.home, viewer), *((self.recents, c) for c in celebs)]
            queue_reads(pipe, sources, before, since, count, renew_first=True)
            pipe.set(keys.seen(viewer), 1, nx=True, ex=ACTIVE_MARK_SECONDS)

        reads, seen = await self.home.run(build)
        if seen:
            # Off the read's critical path; keep a reference so the task is not collected.
            task = asyncio.get_running_loop().create_task(self._mark_active(viewer))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        home = self.home.parse(reads[0])
        if home.state != ReadState.OK:
            # The rebuilt cache holds what fan-out would have pushed: no second followee query.
            home = await self._rebuilt(
                self.home, viewer, before, since, count,
                lambda _viewer: self._newest_of(followed.pushed),
            )
        slices = [home]
        for celeb, reply in zip(celebs, reads[1:], strict=True):
            got = self.recents.parse(reply)
            if got.state != ReadState.OK:
                got = await self._rebuilt(
                    self.recents, celeb, before, since, count, self._author_window
                )
            slices.append(got)
        return slices

    async def _recents_slice(
        self, author: int, before: int, since: int, count: int
    ) -> CachedSlice:
        got = await self.recents.read(author, before, since, count)
        if got.state != ReadState.OK:
            got = await self._rebuilt(
                self.recents, author, before, since, count, self._author_window
            )
        return got

    async def _rebuilt(
        self,
        cache: TimelineCache,
        owner: int,
        before: int,
        since: int,
        count: int,
        window: Callable[[int], Awaitable[tuple[list[int], bool]]],
    ) -> CachedSlice:
        """Rebuild a missing list from the store, one rebuilder per list; others wait for
        it briefly, then read the store themselves (raising _Exhausted)."""
        state = await cache.begin_rebuild(owner)
        if state == "started":
            kind = "home" if cache is self.home else "recents"
            metrics.TIMELINE_REBUILDS.labels(kind).inc()
            try:
                ids, truncated = await window(owner)
            except BaseException:
                await cache.abandon_rebuild(owner)
                raise
            await cache.finish_rebuild(owner, ids, truncated)
        deadline = asyncio.get_running_loop().time() + REBUILD_WAIT_S
        while True:
            got = await cache.read(owner, before, since, count)
            if got.state == ReadState.OK:
                return got
            if asyncio.get_running_loop().time() > deadline:
                raise _Exhausted()
            await asyncio.sleep(0.02)

    async def _newest_of(self, authors: list[int]) -> tuple[list[int], bool]:
        """What a rebuilt home timeline holds: the newest tweets of the given (pushed)
        authors, a timeline's worth, and whether more exist below them."""
        tweets = await self.tweets.by_authors(authors, limit=self.home.cap)
        return [t.id for t in tweets], len(tweets) >= self.home.cap

    async def _mark_active(self, user_id: int) -> None:
        try:
            await self.users.mark_active(user_id)
        except Exception as e:  # activity is advisory; never fail a read over it
            log.warning("could not mark %s active: %s", user_id, e)


def _as_slice(got: CachedSlice, count: int, before: int) -> Slice:
    return slice_of(got.ids, count, not got.truncated, before)
