"""Live home timelines and author streams, as async generators of LiveEvents.

Order of operations makes `sinceId` gapless: join the pub/sub channels, then mark the viewer
present (so publishers start publishing), then read the backlog from the timeline. A tweet
fanned out before the presence mark is in the backlog; one after it arrives live; one in
between may come both ways and is dropped the second time (ids already sent are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from core.errors import NotFound
from core.models import Tweet, User
from core.timeline import NEWEST
from resolvers import args
from resolvers.context import Context
from runtime import metrics
from storage import live
from subscriptions.hub import RESYNC, Subscriber

log = logging.getLogger("chirp.live")

ADDED, DELETED, RESYNCED = "TWEET_ADDED", "TWEET_DELETED", "RESYNC"
BACKLOG_MAX = 1000  # a reconnecting client further behind than this gets RESYNC instead


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    tweet_id: int | None = None
    tweet: Tweet | None = None
    author: User | None = None


class _Seen:
    """Ids already sent, bounded (a live stream runs for hours)."""

    def __init__(self, size: int = 4096) -> None:
        self.ids: OrderedDict[int, None] = OrderedDict()
        self.size = size

    def add(self, tweet_id: int) -> bool:
        """False if it was already there."""
        if tweet_id in self.ids:
            return False
        self.ids[tweet_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


async def home_timeline(ctx: Context, since_id: str | None) -> AsyncIterator[LiveEvent]:
    viewer = ctx.require_viewer()
    since = args.since(since_id)
    celebs = await _celebrities(ctx, viewer)
    async with _session(ctx, _home_channels(viewer, celebs),
                        lambda sub: _heartbeat(ctx, viewer, sub, celebs)) as sub:
        if not since:
            # Fan-out only reaches cached timelines: cache this one before we count as
            # present, or a tweet pushed in between would be neither live nor replayed.
            await _ensure_cached(ctx, viewer)
        await _mark_present(ctx, viewer, celebs)
        seen = _Seen()
        backlog = await _backlog(ctx, viewer, since) if since else None
        if backlog is None and since:
            yield LiveEvent(RESYNCED)
        # one users query for the whole backlog, not one per tweet
        authors = await ctx.loaders.users.load_many([t.author_id for t in backlog or []])
        for tweet, author in zip(backlog or [], authors, strict=True):
            seen.add(tweet.id)
            yield LiveEvent(ADDED, tweet.id, tweet, author)

        async def rejoin() -> None:
            # After a pub/sub reconnect Redis may have lost our presence marks and the
            # cached timeline (restarted empty): restore both before telling the client
            # to refetch, so nothing published after its refetch is missed.
            await _ensure_cached(ctx, viewer)
            await _mark_present(ctx, viewer, await _celebrities(ctx, viewer))

        async for event in _events(ctx, sub, seen, home_of=viewer, on_resync=rejoin):
            yield event


async def user_tweets(ctx: Context, handle: str) -> AsyncIterator[LiveEvent]:
    author = await ctx.loaders.users_by_handle.load(handle)
    if author is None:
        raise NotFound(f"no user @{handle}")
    async with _session(ctx, {live.author_channel(author.id)},
                        lambda _sub: _author_heartbeat(ctx, author.id)) as sub:
        await ctx.services.redis.set(
            live.author_presence_key(author.id), 1, ex=live.PRESENCE_TTL_S
        )
        async for event in _events(ctx, sub, _Seen(), home_of=None):
            yield event


@contextlib.asynccontextmanager
async def _session(
    ctx: Context, channels: set[str], heartbeat: Callable[[Subscriber], Awaitable[None]]
) -> AsyncIterator[Subscriber]:
    """Joined channels and a running heartbeat, both undone however the stream ends."""
    sub = await ctx.hub.join(channels)
    beat = asyncio.create_task(heartbeat(sub))
    metrics.LIVE_SUBSCRIPTIONS.inc()
    try:
        yield sub
    finally:
        metrics.LIVE_SUBSCRIPTIONS.dec()
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await sub.close()


async def _events(
    ctx: Context, sub: Subscriber, seen: _Seen, home_of: int | None, on_resync=None
) -> AsyncIterator[LiveEvent]:
    while True:
        item = await sub.get()
        if item == RESYNC:
            if on_resync is not None:
                with contextlib.suppress(Exception):  # best effort; the heartbeat retries
                    await on_resync()
            metrics.LIVE_DELIVERED.labels(RESYNCED).inc()
            yield LiveEvent(RESYNCED)
            continue
        channel, data = item
        parsed = live.parse(data)
        if parsed is None:
            continue
        kind, tweet_id = parsed
        if kind == "d":
            metrics.LIVE_DELIVERED.labels(DELETED).inc()
            yield LiveEvent(DELETED, tweet_id)
            continue
        if not seen.add(tweet_id):
            continue
        ctx.fresh_loaders()  # per-event caches: nothing stale across events
        loaded = await ctx.hydrator.tweet(tweet_id)  # shared by this process's sessions
        if loaded is None:
            continue  # deleted before we got here
        tweet, author = loaded
        if (
            home_of is not None
            and tweet.author_id != home_of
            and channel != live.home_channel(home_of)
            and not await ctx.loaders.viewer_follows.load(tweet.author_id)
        ):
            continue  # a celebrity's channel, but no longer followed
        metrics.LIVE_DELIVERED.labels(ADDED).inc()
        yield LiveEvent(ADDED, tweet.id, tweet, author)


async def _ensure_cached(ctx: Context, viewer: int) -> None:
    """The live path only reaches cached timelines (fan-out skips missing ones)."""
    ctx.fresh_loaders()
    await ctx.services.feed.home_page(viewer, 1, NEWEST, 0, ctx.loaders.tweets.load_many)


async def _backlog(ctx: Context, viewer: int, since: int) -> list[Tweet] | None:
    """Everything in the home timeline newer than `since`, oldest first; None if there is
    more than a live stream should replay (the client should refetch instead)."""
    out: list[Tweet] = []
    before = NEWEST
    ctx.fresh_loaders()
    while True:
        page = await ctx.services.feed.home_page(
            viewer, args.MAX_PAGE, before, since, ctx.loaders.tweets.load_many
        )
        out.extend(page.tweets)
        if len(out) > BACKLOG_MAX:
            return None
        if not page.has_next or not page.tweets:
            return out[::-1]
        before = page.tweets[-1].id


async def _celebrities(ctx: Context, viewer: int) -> set[int]:
    return set((await ctx.services.feed.followed(viewer)).celebs)


def _home_channels(viewer: int, celebs: set[int]) -> set[str]:
    return {live.home_channel(viewer)} | {live.author_channel(c) for c in celebs}


async def _mark_present(ctx: Context, viewer: int, celebs: set[int]) -> None:
    async with ctx.services.redis.pipeline(transaction=False) as pipe:
        pipe.set(live.presence_key(viewer), 1, ex=live.PRESENCE_TTL_S)
        for c in celebs:
            pipe.set(live.author_presence_key(c), 1, ex=live.PRESENCE_TTL_S)
        # keep the cached timeline alive as long as someone watches it
        pipe.expire(ctx.services.home.key(viewer), ctx.services.home.ttl_seconds)
        await pipe.execute()


async def _heartbeat(ctx: Context, viewer: int, sub: Subscriber, celebs: set[int]) -> None:
    """Renew presence, and follow changes in which celebrities the viewer follows."""
    while True:
        await asyncio.sleep(live.HEARTBEAT_S)
        try:
            now = await _celebrities(ctx, viewer)
            if now != celebs:
                celebs = now
                await sub.set_channels(_home_channels(viewer, celebs))
            await _mark_present(ctx, viewer, celebs)
        except Exception as e:  # Redis or the database blinked: try again next beat
            log.warning("live heartbeat for %s failed: %s", viewer, e)


async def _author_heartbeat(ctx: Context, author: int) -> None:
    while True:
        await asyncio.sleep(live.HEARTBEAT_S)
        try:
            await ctx.services.redis.set(
                live.author_presence_key(author), 1, ex=live.PRESENCE_TTL_S
            )
        except Exception as e:
            log.warning("live heartbeat for author %s failed: %s", author, e)
