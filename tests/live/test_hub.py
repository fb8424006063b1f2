"""The pub/sub hub on a real Redis: bounded queues overflow into RESYNC; notices routed to
this hub reach the sessions of the viewers they name, and no one else."""

from __future__ import annotations

import asyncio

import pytest

from storage import live
from subscriptions.hub import QUEUE_SIZE, RESYNC, Hub

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_slow_subscriber_gets_resync_not_unbounded_memory(stack, services):
    hub = Hub(stack.redis_url, tune_gc=False)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        slow = await hub.join({"chirp:test:slow"})
        fast = await hub.join({"chirp:test:fast"})
        await asyncio.sleep(0.2)
        for i in range(QUEUE_SIZE * 2):
            await services.redis.publish("chirp:test:slow", f"a:{i + 1}")
        await services.redis.publish("chirp:test:fast", "a:1")
        assert await asyncio.wait_for(fast.get(), 5) == ("chirp:test:fast", "a", 1)
        await asyncio.sleep(0.3)
        assert slow.queue.qsize() <= QUEUE_SIZE
        items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert RESYNC in items  # told to refetch, rather than holding everything
        await slow.close()
        await fast.close()
        assert hub._refs == {}
    finally:
        await hub.stop()


async def test_routed_notices_reach_only_the_named_viewers(stack, services):
    hub = Hub(stack.redis_url, tune_gc=False)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        a1, a2 = await hub.join(set(), viewer=1), await hub.join(set(), viewer=1)
        b, c = await hub.join(set(), viewer=2), await hub.join(set(), viewer=3)
        await services.redis.publish(live.hub_channel(hub.id), "a:77:1,2,99")
        await services.redis.publish(live.hub_channel(hub.id), "d:77:3")
        for sub in (a1, a2, b):
            assert await asyncio.wait_for(sub.get(), 5) == (None, "a", 77)
        assert await asyncio.wait_for(c.get(), 5) == (None, "d", 77)
        assert a1.queue.empty() and b.queue.empty() and c.queue.empty()
        for sub in (a1, a2, b, c):
            await sub.close()
        assert hub._viewers == {}
    finally:
        await hub.stop()
