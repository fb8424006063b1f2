"""The pub/sub hub on a real Redis: bounded queues overflow into RESYNC."""

from __future__ import annotations

import asyncio

import pytest

from subscriptions.hub import QUEUE_SIZE, RESYNC, Hub

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_slow_subscriber_gets_resync_not_unbounded_memory(stack, services):
    hub = Hub(stack.redis_url)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        slow = await hub.join({"chirp:test:slow"})
        fast = await hub.join({"chirp:test:fast"})
        await asyncio.sleep(0.2)
        for i in range(QUEUE_SIZE * 2):
            await services.redis.publish("chirp:test:slow", f"a:{i + 1}")
        await services.redis.publish("chirp:test:fast", "a:1")
        assert await asyncio.wait_for(fast.get(), 5) == ("chirp:test:fast", b"a:1")
        await asyncio.sleep(0.3)
        assert slow.queue.qsize() <= QUEUE_SIZE
        items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert RESYNC in items  # told to refetch, rather than holding everything
        await slow.close()
        await fast.close()
        assert hub._refs == {}
    finally:
        await hub.stop()
