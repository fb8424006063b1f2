"""Batched presence renewal on a real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bench.seed import author_with_followers
from core.timeline import NEWEST
from storage import keys, notices
from subscriptions.hub import RESYNC, Hub
from subscriptions.hydrate import EventHydrator
from subscriptions.presence import Presence

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_renewal_marks_presence_and_follows_celebrity_changes(stack, services):
    threshold = services.settings.celebrity_threshold
    celeb, fans = await author_with_followers(services, threshold + 1)  # a celebrity
    viewer, plain = fans[0], fans[1]
    hub = Hub(stack.redis_url, EventHydrator(services), tune_gc=False)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        presence = Presence.of(services, hub)
        assert Presence.of(services, hub) is presence
        home = await hub.join(set(), viewer)  # as if opened before following the celebrity
        other = await hub.join({keys.author_channel(celeb)}, plain)
        presence.add(home, set())
        presence.add(other, {celeb})
        await presence.renew([home, other])
        assert home.channels == {keys.author_channel(celeb)}
        r = services.redis
        for v in (viewer, plain):
            assert await r.hkeys(keys.presence(v)) == [hub.id.encode()]
            assert 0 < await r.ttl(keys.presence(v)) <= notices.PRESENCE_TTL_S
        assert await r.exists(keys.author_presence(celeb))

        await services.graph.unfollow(viewer, celeb, services.settings.celebrity)  # still one
        await presence.renew([home, other])
        assert home.channels == set()
        assert other.channels == {keys.author_channel(celeb)}
        presence.discard(home)
        presence.discard(other)
        await home.close()
        await other.close()
        assert hub._refs == {} and hub._viewers == {}
    finally:
        await hub.stop()


async def test_renewal_resyncs_sessions_whose_cached_timeline_vanished(stack, services):
    """A live session whose cached timeline vanished (fan-out skips it) is resynced."""
    _author, (kept, lost) = await author_with_followers(services, 2)
    hub = Hub(stack.redis_url, EventHydrator(services), tune_gc=False)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        presence = Presence.of(services, hub)
        async def load(ids):
            found = await services.tweets.get_many(ids)
            return [found.get(i) for i in ids]

        for viewer in (kept, lost):
            await services.feed.home_page(viewer, 1, NEWEST, 0, load)
        subs = [await hub.join(set(), kept), await hub.join(set(), lost)]
        for sub in subs:
            presence.add(sub, set())
        await services.redis.delete(services.home.key(lost))
        await presence.renew(subs)
        assert subs[0].queue.empty()
        assert await asyncio.wait_for(subs[1].get(), 1) == RESYNC
        assert await presence.mark([kept, lost], []) == {lost}  # the stream re-caches it
        for sub in subs:
            presence.discard(sub)
            await sub.close()
    finally:
        await hub.stop()
