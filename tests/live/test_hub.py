"""The pub/sub hub on a real Redis: overflow, routing, celebrity filtering, direct frames."""

from __future__ import annotations

import asyncio

import pytest

from bench.seed import author_with_followers
from core.models import LiveKind
from storage import keys, notices
from subscriptions.hub import QUEUE_SIZE, RESYNC, Hub, Seen
from subscriptions.hydrate import EventHydrator
from tests.conftest import CLUSTER

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def publish(services, channel: str, payload: str) -> None:
    """As the scripts publish: to shard channels on a cluster."""
    await services.redis.execute_command("SPUBLISH" if CLUSTER else "PUBLISH", channel, payload)


async def route(services, hub, payload: str) -> None:
    """A notice routed to viewers (`kind:id:v1,v2`), as the fan-out scripts send it: to the
    hub's channel on one server, to each viewer's own channel on a cluster."""
    if not CLUSTER:
        await publish(services, keys.hub_channel(hub.id), payload)
        return
    kind, tweet, viewers = payload.split(":")
    for v in viewers.split(","):
        await publish(services, keys.home_channel(int(v)), f"{kind}:{tweet}:{v}")


@pytest.fixture
async def hub(stack, services):
    hub = Hub(stack.redis_url, EventHydrator(services), tune_gc=False)
    await hub.start()
    await asyncio.wait_for(hub.connected.wait(), 5)
    yield hub
    await hub.stop()


async def test_slow_subscriber_gets_resync_not_unbounded_memory(hub, services):
    slow = await hub.join({"chirp:test:slow"})
    fast = await hub.join({"chirp:test:fast"})
    await asyncio.sleep(0.2)
    for i in range(QUEUE_SIZE * 2):
        await publish(services, "chirp:test:slow", f"d:{i + 1}")
    await publish(services, "chirp:test:fast", "d:1")
    got = await asyncio.wait_for(fast.get(), 5)
    assert (got.kind, got.tweet_id) == (LiveKind.TWEET_DELETED, 1)
    await asyncio.sleep(0.3)
    assert slow.queue.qsize() <= QUEUE_SIZE
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert RESYNC in items
    await slow.close()
    await fast.close()
    assert hub._refs == {}


async def test_routed_notices_reach_only_the_named_viewers(hub, services):
    a1, a2 = await hub.join(set(), viewer=1), await hub.join(set(), viewer=1)
    b, c = await hub.join(set(), viewer=2), await hub.join(set(), viewer=3)
    await route(services, hub, "d:77:1,2,99")
    await route(services, hub, "d:78:3")
    for sub in (a1, a2, b):
        assert (await asyncio.wait_for(sub.get(), 5)).tweet_id == 77
    assert (await asyncio.wait_for(c.get(), 5)).tweet_id == 78
    assert a1.queue.empty() and b.queue.empty() and c.queue.empty()
    for sub in (a1, a2, b, c):
        await sub.close()
    assert hub._viewers == {}


async def test_celebrity_tweets_reach_only_current_followers(hub, services):
    celeb, (fan, former) = await author_with_followers(services, 2)
    await services.graph.unfollow(former, celeb, services.settings.celebrity)
    tweet = await services.tweeting.post(celeb, "to my fans")
    channel = {keys.author_channel(celeb)}
    fan_s, former_s = await hub.join(channel, fan), await hub.join(channel, former)
    watcher = await hub.join(channel)
    await asyncio.sleep(0.2)
    await publish(services, keys.author_channel(celeb), notices.added(tweet.id))
    for sub in (fan_s, watcher):
        event = await asyncio.wait_for(sub.get(), 5)
        assert (event.kind, event.tweet_id, event.tweet.text) == (LiveKind.TWEET_ADDED, tweet.id, "to my fans")
    await asyncio.sleep(0.3)
    assert former_s.queue.empty()
    for sub in (fan_s, former_s, watcher):
        await sub.close()


async def test_seen_keeps_the_newest_ids_in_bounded_memory():
    seen = Seen(size=4)
    assert all(seen.add(i) for i in (50, 10, 30, 20))
    assert not seen.add(30) and 30 in seen and 40 not in seen
    assert list(seen.ids) == [10, 20, 30, 50]
    assert seen.add(60)  # past its size: the older half (10, 20) is forgotten at once
    assert list(seen.ids) == [30, 50, 60] and 10 not in seen and 20 not in seen
    assert seen.add(5) and seen.add(20)  # no newer than one forgotten: let through, unkept
    assert list(seen.ids) == [30, 50, 60]
    assert seen.add(40) and not seen.add(40) and not seen.add(60)
    assert list(seen.ids) == [30, 40, 50, 60] and seen.ids.itemsize == 8
    for i in range(61, 1061):  # a long stream stays within size
        assert seen.add(i) and not seen.add(i)
        assert len(seen.ids) <= 4 and i in seen


class FakeDirect:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate: asyncio.Future | None = None
        self.open = True

    def send(self, event):
        return self._send(f"{event.kind}:{event.tweet_id}") if self.open else None

    async def _send(self, text: str) -> None:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate
        self.sent.append(text)


async def test_direct_delivery_keeps_order_with_a_slow_socket(hub, services):
    sub = await hub.join(set(), viewer=5)
    direct = sub.direct = FakeDirect()
    await route(services, hub, "d:1:5")
    await asyncio.sleep(0.2)
    assert direct.sent == ["TWEET_DELETED:1"] and sub.queue.empty()
    paused = direct.gate = asyncio.get_running_loop().create_future()
    await route(services, hub, "d:2:5")
    await route(services, hub, "d:3:5")
    await asyncio.sleep(0.2)
    assert direct.sent == ["TWEET_DELETED:1"]
    assert sub.direct is None and sub.queue.qsize() == 1  # 3 waits in the queue, behind 2
    getting = asyncio.create_task(sub.get())
    await asyncio.sleep(0.1)
    assert not getting.done()
    paused.set_result(None)
    assert (await asyncio.wait_for(getting, 5)).tweet_id == 3
    assert direct.sent == ["TWEET_DELETED:1", "TWEET_DELETED:2"]
    direct.open = False
    sub.direct = direct
    await route(services, hub, "d:4:5")
    assert (await asyncio.wait_for(sub.get(), 5)).tweet_id == 4
    assert direct.sent == ["TWEET_DELETED:1", "TWEET_DELETED:2"]
    await sub.close()
