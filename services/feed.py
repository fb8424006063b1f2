"""FeedManager: the one place that owns the timeline rules.

Write side: insert a new tweet into its author's own timeline at once, push it into
followers' cached timelines (fan-out, never for celebrities), merge a followee's tweets on
follow, unmerge them on unfollow, drop a deleted tweet everywhere, back-fill a demoted
celebrity's tweets. Read side: merge the cached timeline with followed celebrities' recent
tweets, rebuild a missing timeline once, continue from the store past the cached window,
and pull from the store alone when Redis is unreachable. With the read caches
(storage/readcache.py) a request's followees and celebrities' recents come from memory, its
one round trip checks the caches' fence, and what the caches say is published on every
change (`announce`).

Resolvers and workers call this; none of them touch timeline keys themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import timedelta
from operator import neg

from redis.exceptions import NoScriptError, RedisError

from core import fanout
from core.ids import id_datetime
from core.models import AUTHOR_DEMOTED, TWEET_CREATED, TWEET_DELETED, Event, Tweet, User
from core.timeline import NEWEST, Slice, exact_merge, slice_of
from runtime import metrics
from runtime.settings import ACTIVE_MARK_SECONDS
from storage import keys, notices
from storage.graph import SocialGraph
from storage.invalidation import queue_publish
from storage.multiplexed import MultiplexedRedis
from storage.readcache import MISSING, Fence, Followees, ReadCaches, Recents, SortedIds
from storage.timeline_cache import (
    SINGLE_SCRIPTS,
    CachedSlice,
    Reads,
    ReadState,
    TimelineCache,
    queue_reads,
)
from storage.tweets import IdCollision, TweetStore
from storage.users import ActivityMarks, UserStore

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

    allowed: Collection[int]  # the viewer and everyone they follow: what a page may show
    celebs: list[int]  # followed celebrities: pulled at read time

    def pushed(self) -> list[int]:
        """The viewer and followed non-celebrities: what the cached timeline holds."""
        pulled = set(self.celebs)
        return [i for i in self.allowed if i not in pulled]


# A cached source's answer, and how many entries it was asked for.
Sourced = tuple[CachedSlice, int]


class _Exhausted(Exception):
    """A cached source reached its truncation point: continue from the store."""


class _Refence(Exception):
    """The request's fence had to wait for invalidations (or gave up on the caches) after
    cached values were used: assemble the page again."""


@dataclass(eq=False)
class FeedManager:
    home: TimelineCache
    recents: TimelineCache
    tweets: TweetStore
    graph: SocialGraph
    users: UserStore
    threshold: int  # followers that make a celebrity
    active_days: InitVar[int]
    fanout_chunk: int = 20_000
    caches: ReadCaches | None = None
    # The cached home read's one call, pipelined with the other readers' (one server only)
    line: MultiplexedRedis | None = None
    active_within: timedelta = field(init=False)
    activity: ActivityMarks = field(init=False)

    def __post_init__(self, active_days: int) -> None:
        self.active_within = timedelta(days=active_days)
        self.activity = ActivityMarks(self.users)

    # ------------------------------------------------------------------ write side

    async def on_post(self, tweet: Tweet) -> None:
        """Show a new tweet in its author's own timeline and recents at once. Best effort:
        the fan-out worker repeats both idempotently, so a Redis blip here loses nothing."""
        author = tweet.author_id
        changed = [f"u{author}", f"r{author}"]  # tweets_count, and the author's recents
        if self.caches is not None:
            self.caches.apply_all(changed)

        def build(pipe) -> None:
            self._queue_own(pipe, author, tweet.id)
            queue_publish(pipe, changed)

        try:
            await self.home.run(build)
        except RedisError as e:
            log.warning("own-timeline insert of %s deferred to fan-out: %s", tweet.id, e)

    async def announce(self, items: list[str]) -> None:
        """Tell every API process's read caches what changed (storage/invalidation.py),
        this one's at once. Best effort: a process that misses it empties its caches."""
        if self.caches is not None:
            self.caches.apply_all(items)
        try:
            await self.home.run(lambda pipe: queue_publish(pipe, items))
        except RedisError as e:
            log.warning("could not publish invalidations %s: %s", items, e)

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
        own = await self.home.run(lambda pipe: self._queue_own(pipe, author_id, tweet_id))
        if own[1]:  # the post path's insert into recents had failed: caches hold the old
            await self.announce([f"u{author_id}", f"r{author_id}"])
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is None or not self.pushed(author):
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
        # Again after the API's own (which may have failed), now that recents lost it too.
        await self.announce([f"t{tweet_id}", f"u{author_id}", f"r{author_id}"])
        await self.home.run(lambda pipe: self.home.queue_notify(
            pipe, keys.author_presence(author_id), keys.author_channel(author_id),
            notices.deleted(tweet_id),
        ))
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is not None and not self.pushed(author):
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
        """A demotion (core/fanout.py): the author's newest tweets merged into followers'
        cached timelines, then the flag cleared, so reads stop pulling only once the
        timelines hold them. Nothing for a demotion already finished (a redelivery); one
        back at the threshold meanwhile is called off."""
        author = (await self.users.get_many([author_id])).get(author_id)
        if author is None or not author.demoting:
            return 0
        if fanout.is_celebrity(author.followers_count, False, self.threshold):
            await self.graph.end_demotion(author_id, demoted=False)
            return 0
        metrics.BACK_FILLS.inc()
        ids, truncated = await self._author_window(author_id)
        merged = 0
        async for followers in self._follower_pages(author_id, True):
            merged += await self.home.merge_many(followers, ids, truncated)
        if await self.graph.end_demotion(author_id, demoted=True):
            await self.announce([f"c{author_id}:0", f"u{author_id}"])
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

    async def on_follow(self, follower: int, followee: int, pushed: bool) -> None:
        """Merge a new followee's tweets into the follower's cached timeline (if cached)
        if their tweets are pushed (core.fanout.pushed); a celebrity's are pulled at read
        time instead."""
        if not pushed:
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

    async def followed(self, viewer: int, caches: ReadCaches | None = None) -> Followed:
        """Everyone the viewer follows, split by the celebrity rule: one query, or the
        followee cache of a request whose fence allows it."""
        if caches is None:
            ids, counts, flags = await self.graph.followees(viewer)
            return Followed({viewer, *ids}, self._celebs(ids, counts, flags))
        entry = caches.followees.get(viewer)
        if entry is MISSING:
            generation = caches.generation
            ids, counts, flags = await self.graph.followees(viewer)
            entry = Followees(SortedIds([viewer, *ids]), tuple(self._celebs(ids, counts, flags)))
            caches.keep(caches.followees, generation, {viewer: entry})
        if entry.version != caches.crossings:
            entry.split = Followed(entry.ids, _crossed(entry, caches.celebrity, viewer))
            entry.version = caches.crossings
        return entry.split

    def _celebs(self, ids: list[int], counts: list[int], flags: list[bool]) -> list[int]:
        t = self.threshold
        return [i for i, c, f in zip(ids, counts, flags, strict=True)
                if fanout.is_celebrity(c, f, t)]

    def celebrity(self, user: User) -> bool:
        return fanout.is_celebrity(user.followers_count, user.celebrity, self.threshold)

    def pushed(self, user: User) -> bool:
        return fanout.pushed(user.followers_count, user.celebrity, user.demoting,
                             self.threshold)

    async def home_page(
        self, viewer: int, first: int, before: int, since: int, load: TweetLoader,
        fence: Fence | None = None,
    ) -> Page:
        """`fence`: the request's, letting it use the read caches (storage/readcache.py)."""
        while True:
            try:
                return await self._home_page(viewer, first, before, since, load, fence)
            except _Refence:
                continue  # the fence is settled now: once more, with or without caches

    async def _home_page(
        self, viewer: int, first: int, before: int, since: int, load: TweetLoader,
        fence: Fence | None,
    ) -> Page:
        caches = await fence.begin() if fence is not None else None
        followed = await self.followed(viewer, caches)

        async def cached(before: int, count: int) -> list[Sourced]:
            return await self._home_slices(viewer, followed, before, since, count, fence,
                                           caches)

        async def stored(before: int, count: int) -> list[Tweet]:
            return await self.tweets.by_authors(sorted(followed.allowed), before, since, count)

        return await self._page(first, before, cached, stored, load, followed.allowed)

    async def user_page(
        self, author: int, first: int, before: int, since: int, load: TweetLoader,
        fence: Fence | None = None,
    ) -> Page:
        while True:
            try:
                return await self._user_page(author, first, before, since, load, fence)
            except _Refence:
                continue

    async def _user_page(
        self, author: int, first: int, before: int, since: int, load: TweetLoader,
        fence: Fence | None,
    ) -> Page:
        caches = await fence.begin() if fence is not None else None

        async def cached(before: int, count: int) -> list[Sourced]:
            return [(await self._recents_slice(author, before, since, count, fence, caches),
                     count)]

        async def stored(before: int, count: int) -> list[Tweet]:
            return await self.tweets.by_author(author, before, since, count)

        return await self._page(first, before, cached, stored, load, {author})

    async def _page(
        self,
        first: int,
        before: int,
        cached: Callable[[int, int], Awaitable[list[Sourced]]],
        stored: Callable[[int, int], Awaitable[list[Tweet]]],
        load: TweetLoader,
        allowed: Collection[int],
    ) -> Page:
        """Collect first+1 visible tweets below `before` (the extra one only tells whether
        a next page exists), from the caches while they know, then from the store. Each
        cached source answers a slice and how many entries it was asked for."""
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
            ids, boundary = exact_merge([_as_slice(g, w, before) for g, w in got])
            if ids:
                tweets = await load(ids)
                out.extend(t for t in tweets if t is not None and t.author_id in allowed)
            if boundary == 0:
                break  # every source is complete down to `since`
            if any(g.truncated for g, _w in got) or boundary >= before:
                # A capped list gave out: it knows nothing below here, the store does.
                metrics.STORE_FALLBACK_READS.inc()
                use_store = True
            before = boundary
        return Page(out[:first], len(out) > first, degraded)

    async def _home_slices(
        self, viewer: int, followed: Followed, before: int, since: int, count: int,
        fence: Fence | None = None, caches: ReadCaches | None = None,
    ) -> list[Sourced]:
        """One round trip: the fence (if the request has not passed it yet), the viewer's
        list, and the recents of each followed celebrity that this process does not hold
        (all of them without caches). Recents held here are cut below the viewer's slice,
        not at `count`: reading deeper costs nothing, and cut at `count` an active
        celebrity's slice would end above the viewer's and make the page read again."""
        celebs = followed.celebs
        checking = fence is not None and fence.state is None
        kept: dict[int, Recents] = {}
        missing: list[int] = []
        generation = 0
        if caches is not None:
            kept, missing = caches.recents.get_many(celebs)
            generation = caches.generation
            if not missing and not self.home.cluster:
                home = await self._home_call(viewer, followed, before, since, count, fence,
                                             checking)
                return await self._with_recents(home, count, before, since, celebs, kept,
                                                caches)
        pulled = () if caches is not None else celebs
        reading = Reads([(self.home, viewer), *((self.recents, c) for c in pulled)],
                        before, since, count, renew_first=True)
        whole_reading = Reads([(self.recents, c) for c in missing], NEWEST, 0, WHOLE) \
            if missing else None

        def build(pipe) -> None:
            if checking:
                fence.queue(pipe)
            reading.queue(pipe)
            if whole_reading is not None:
                whole_reading.queue(pipe)
            pipe.set(keys.seen(viewer), 1, nx=True, ex=ACTIVE_MARK_SECONDS)

        replies = await self.home.run(build)
        if replies[-1]:  # the viewer's first read this hour
            self.activity.add(viewer)
        if checking and not await fence.settle(replies[0]):
            raise _Refence()
        at = 1 if checking else 0
        reads = reading.collect(replies[at:at + reading.calls])
        at += reading.calls
        wholes = whole_reading.collect(replies[at:at + whole_reading.calls]) \
            if whole_reading is not None else []
        home = await self._home_list(viewer, followed, before, since, count, reads[0])
        if caches is None:
            slices: list[Sourced] = [(home, count)]
            for celeb, reply in zip(celebs, reads[1:], strict=True):
                got = self.recents.parse(reply)
                if got.state != ReadState.OK:
                    got = await self._rebuilt(
                        self.recents, celeb, before, since, count, self._author_window
                    )
                slices.append((got, count))
            return slices
        if missing:
            whole: dict[int, Recents] = {}
            for celeb, reply in zip(missing, wholes, strict=True):
                got = self.recents.parse(reply)
                if got.state == ReadState.OK:
                    whole[celeb] = Recents(got.ids, got.truncated)
            caches.keep(caches.recents, generation, whole)
            kept.update(whole)
        return await self._with_recents(home, count, before, since, celebs, kept, caches)

    async def _home_call(self, viewer: int, followed: Followed, before: int, since: int,
                         count: int, fence: Fence | None, checking: bool) -> CachedSlice:
        """The round trip of a read whose celebrities' recents are all held, on one server:
        one script call (home.lua) reading the fence's counter, setting the activity mark
        and reading the viewer's list, without a pipeline's per-command costs."""
        home = self.home
        args = (keys.CACHE_SEQ, keys.seen(viewer), home.key(viewer), home.lock_key(viewer),
                before.to_bytes(8, "big"), since.to_bytes(8, "big"), count,
                home.ttl_seconds, ACTIVE_MARK_SECONDS)
        call = self.line.execute if self.line is not None else home.redis.execute_command
        try:
            reply = await call("EVALSHA", _HOME_SHA, 4, *args)
        except NoScriptError:
            await home.load_scripts()
            reply = await call("EVALSHA", _HOME_SHA, 4, *args)
        if reply[1]:  # the viewer's first read this hour
            self.activity.add(viewer)
        if checking and not await fence.settle(reply[0]):
            raise _Refence()
        return await self._home_list(viewer, followed, before, since, count, reply[2])

    async def _home_list(self, viewer: int, followed: Followed, before: int, since: int,
                         count: int, reply: list) -> CachedSlice:
        home = self.home.parse(reply)
        if home.state != ReadState.OK:
            # The rebuilt cache holds what fan-out would have pushed: no second followee query.
            home = await self._rebuilt(
                self.home, viewer, before, since, count,
                lambda _viewer: self._newest_of(followed.pushed()),
            )
        return home

    async def _with_recents(self, home: CachedSlice, count: int, before: int, since: int,
                            celebs: list[int], kept: dict[int, Recents],
                            caches: ReadCaches) -> list[Sourced]:
        """The viewer's slice and each followed celebrity's from the recents held here.
        A list missing or being rebuilt in Redis is rebuilt (or waited for) and then held
        whole like any other, so the next read does not fetch it again (on a cluster,
        one more node in the round trip)."""
        slices: list[Sourced] = [(home, count)]
        floor = _as_slice(home, count, before).floor
        for celeb in celebs:
            entry = kept.get(celeb)
            if entry is None:
                generation = caches.generation
                got = await self._rebuilt(self.recents, celeb, NEWEST, 0, WHOLE,
                                          self._author_window)
                entry = Recents(got.ids, got.truncated)
                caches.keep(caches.recents, generation, {celeb: entry})
            slices.append(down_to(entry, before, since, floor))
        return slices

    async def _recents_slice(
        self, author: int, before: int, since: int, count: int,
        fence: Fence | None = None, caches: ReadCaches | None = None,
    ) -> CachedSlice:
        if caches is None:
            got = await self.recents.read(author, before, since, count)
        else:
            checking = fence is not None and fence.state is None
            entry = caches.recents.get(author)
            if not checking and entry is not MISSING:
                return window(entry, before, since, count)
            generation = caches.generation

            def build(pipe) -> None:
                if checking:
                    fence.queue(pipe)
                if entry is MISSING:
                    queue_reads(pipe, [(self.recents, author)], NEWEST, 0, WHOLE)

            replies = await self.home.run(build)
            if checking and not await fence.settle(replies[0]):
                raise _Refence()
            if entry is not MISSING:
                return window(entry, before, since, count)
            got = self.recents.parse(replies[-1][0])
            if got.state == ReadState.OK:
                entry = Recents(got.ids, got.truncated)
                caches.keep(caches.recents, generation, {author: entry})
                return window(entry, before, since, count)
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


_HOME_SHA = SINGLE_SCRIPTS["home"].sha
WHOLE = 1 << 24  # a read count that returns a whole list (and its sentinel, if capped)


def _crossed(entry: Followees, crossed: dict[int, bool], viewer: int) -> list[int]:
    """A cached entry's celebrities now: those of when it was loaded, with the threshold
    crossings seen since (`crossed`: author -> a celebrity now). Never the viewer: their
    own tweets are always in their cached timeline."""
    celebs = [c for c in entry.celebs if crossed.get(c, True)]
    if crossed:
        known = set(celebs)
        celebs += [a for a, now in crossed.items()
                   if now and a not in known and a != viewer and a in entry.ids]
    return celebs


def down_to(entry: Recents, before: int, since: int, floor: int) -> Sourced:
    """A held list's entries in (since, before) down to `floor` and one more (so that it
    reaches below `floor`), or all of them for floor 0, and the count that asks for: what
    the read script answers when asked for that many."""
    ids = entry.ids
    n = len(ids)
    start = bisect_right(ids, -before, key=neg) if n and ids[0] >= before else 0
    stop = bisect_left(ids, -since, start, n, key=neg) if n and ids[-1] <= since else n
    if floor:
        k = bisect_right(ids, -floor, start, stop, key=neg) + 1  # >= floor, and one below
        if k < stop:
            return CachedSlice(ReadState.OK, ids[start:k], False), k - start
    got = ids[start:stop]
    return CachedSlice(ReadState.OK, got, entry.truncated and stop == n), len(got) + 1


def window(entry: Recents, before: int, since: int, want: int) -> CachedSlice:
    """What the read script returns for this window of a list held whole: up to `want`
    ids below `before` and above `since`, truncated if it reached the end of a capped
    list with fewer than `want`."""
    ids = entry.ids
    n = len(ids)
    start = bisect_right(ids, -before, key=neg) if n and ids[0] >= before else 0
    stop = min(n, start + want)
    if stop > start and ids[stop - 1] <= since:
        stop = bisect_left(ids, -since, start, stop, key=neg)
    return CachedSlice(ReadState.OK, ids[start:stop],
                       entry.truncated and stop == n and stop - start < want)


def _as_slice(got: CachedSlice, count: int, before: int) -> Slice:
    return slice_of(got.ids, count, not got.truncated, before)
