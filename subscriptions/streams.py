"""Live home timelines and author streams, as async generators of LiveEvents.

Order of operations makes `sinceId` gapless: join the hub, then mark the viewer present (so
publishers start publishing), then read the backlog from the timeline. A tweet fanned out
before the presence mark is in the backlog; one after it arrives live; one in between may
come both ways and is dropped the second time (ids already sent are skipped).

Live events come from the hub, already loaded. While a session has nothing of its own to
send, and its subscription offered a `Direct` (see subscriptions/wire.py), the hub writes
events to its socket itself; anything else comes through the session's queue and is
yielded here, in order, after any direct send still in flight.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from core.errors import NotFound
from core.models import LiveKind, Tweet
from core.timeline import NEWEST
from loaders import Loaders, make_loaders
from resolvers import args
from resolvers.context import Context
from runtime import metrics
from subscriptions.hub import RESYNC, Direct, Subscriber
from subscriptions.hydrate import RESYNC_EVENT, LiveEvent
from subscriptions.presence import Presence, celebrity_channels

log = logging.getLogger("chirp.live")

__all__ = ["LiveEvent", "home_timeline", "user_tweets"]

BACKLOG_MAX = 1000  # a reconnecting client further behind than this gets RESYNC instead


class _EventLoaders:
    """A live event's own loaders, built on first use. Scoping loaders per event keeps
    nothing stale across events on a long-lived connection, but building them is most of
    an event's cost to a session, and most events never touch one (the tweet and its
    author come shared from the hydrator)."""

    __slots__ = ("_ctx", "_real")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._real: Loaders | None = None

    def __getattr__(self, name: str):
        if self._real is None:
            self._real = make_loaders(self._ctx.services, self._ctx.viewer_id)
        return getattr(self._real, name)


def _fresh_loaders(ctx: Context) -> None:
    ctx.loaders = _EventLoaders(ctx)  # type: ignore[assignment]


async def home_timeline(
    ctx: Context, since_id: str | None, direct: Direct | None = None
) -> AsyncIterator[LiveEvent]:
    viewer = ctx.require_viewer()
    since = args.since(since_id)
    celebs = await _celebrities(ctx, viewer)
    async with _session(ctx, celebs, viewer) as (sub, presence):
        if not since:
            # Fan-out only reaches cached timelines: cache this one before we count as
            # present, or a tweet pushed in between would be neither live nor replayed.
            await _ensure_cached(ctx, viewer)
        if await presence.mark([viewer], celebs) and not since:
            # Not cached after all (the read above fell back to the database): resync, so
            # the stream re-caches it and the client refetches what fan-out skipped. (With
            # `since`, the backlog read below rebuilds it and returns what was skipped.)
            sub.resync()
        seen = sub.seen
        backlog = await _backlog(ctx, viewer, since) if since else None
        presence.add(sub, celebs)  # renewed from now on (earlier it could look uncached)
        if backlog is None and since:
            yield RESYNC_EVENT
        # one users query for the whole backlog, not one per tweet
        authors = await ctx.loaders.users.load_many([t.author_id for t in backlog or []])
        for tweet, author in zip(backlog or [], authors, strict=True):
            seen.add(tweet.id)
            yield LiveEvent(LiveKind.TWEET_ADDED, tweet.id, tweet, author)

        async def rejoin() -> None:
            # After a pub/sub reconnect Redis may have lost our presence marks and the
            # cached timeline (restarted empty): restore both before telling the client
            # to refetch, so nothing published after its refetch is missed.
            await _ensure_cached(ctx, viewer)
            await presence.mark([viewer], await _celebrities(ctx, viewer))

        async for event in _events(ctx, sub, direct, on_resync=rejoin):
            yield event


async def user_tweets(
    ctx: Context, handle: str, direct: Direct | None = None
) -> AsyncIterator[LiveEvent]:
    author = await ctx.loaders.users_by_handle.load(handle)
    if author is None:
        raise NotFound(f"no user @{handle}")
    async with _session(ctx, {author.id}) as (sub, presence):
        await presence.mark([], [author.id])
        presence.add(sub, {author.id})
        async for event in _events(ctx, sub, direct):
            yield event


@contextlib.asynccontextmanager
async def _session(
    ctx: Context, authors: set[int], viewer: int | None = None
) -> AsyncIterator[tuple[Subscriber, Presence]]:
    """Joined the authors' channels (and for a home timeline, the viewer's routed notices),
    both undone however the stream ends, as is the presence renewal that the caller adds
    once it has marked itself present."""
    sub = await ctx.hub.join(celebrity_channels(authors), viewer)
    presence = Presence.of(ctx.services, ctx.hub)
    metrics.LIVE_SUBSCRIPTIONS.inc()
    try:
        yield sub, presence
    finally:
        metrics.LIVE_SUBSCRIPTIONS.dec()
        presence.discard(sub)
        await sub.close()


_ADDED_COUNT = metrics.LIVE_DELIVERED.labels(LiveKind.TWEET_ADDED)
_DELETED_COUNT = metrics.LIVE_DELIVERED.labels(LiveKind.TWEET_DELETED)
_RESYNCED_COUNT = metrics.LIVE_DELIVERED.labels(LiveKind.RESYNC)


async def _events(
    ctx: Context, sub: Subscriber, direct: Direct | None, on_resync=None
) -> AsyncIterator[LiveEvent]:
    while True:
        if direct is not None and sub.queue.empty():
            # Idle, with nothing queued: the hub may write to the socket itself until it
            # has to queue something again. (The stream is suspended here only after the
            # protocol handler sent whatever this generator yielded last.)
            sub.direct = direct
        item = await sub.get()
        if item == RESYNC:
            if on_resync is not None:
                with contextlib.suppress(Exception):  # best effort; renewal retries
                    await on_resync()
            _RESYNCED_COUNT.inc()
            yield RESYNC_EVENT
            continue
        event: LiveEvent = item  # type: ignore[assignment]
        if event.kind is LiveKind.TWEET_ADDED:
            if not sub.seen.add(event.tweet_id):
                continue
            _ADDED_COUNT.inc()
        else:
            _DELETED_COUNT.inc()
        _fresh_loaders(ctx)  # per-event caches: nothing stale across events
        yield event


async def _ensure_cached(ctx: Context, viewer: int) -> None:
    """The live path only reaches cached timelines (fan-out skips missing ones)."""
    _fresh_loaders(ctx)
    await ctx.services.feed.home_page(viewer, 1, NEWEST, 0, ctx.loaders.tweets.load_many)


async def _backlog(ctx: Context, viewer: int, since: int) -> list[Tweet] | None:
    """Everything in the home timeline newer than `since`, oldest first; None if there is
    more than a live stream should replay (the client should refetch instead)."""
    out: list[Tweet] = []
    before = NEWEST
    _fresh_loaders(ctx)
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
