"""The event-bus contract on Redis Streams (the Kafka adapter arrives later)."""

import pytest

from core.models import TWEET_CREATED, Event
from storage.eventbus import RedisStreamBus

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_publish_receive_ack_and_redelivery(services):
    bus = RedisStreamBus(services.redis, claim_idle_ms=200)
    await bus.ensure_group()
    # leave nothing of other tests in flight for this consumer group
    from tests.conftest import drain

    await drain(services)
    events = [Event(TWEET_CREATED, i, 1) for i in (101, 102, 103)]
    await bus.publish(events)
    got = await bus.receive("c1", 10, block_ms=100)
    assert [d.event for d in got] == events and all(d.attempts == 1 for d in got)
    await bus.ack(got[:1])
    # c1 dies holding two; c2 claims them once they have been idle long enough
    assert await bus.receive("c2", 10, block_ms=10) == []
    import asyncio

    await asyncio.sleep(0.3)
    again = await bus.receive("c2", 10, block_ms=10)
    assert [d.event.tweet_id for d in again] == [102, 103]
    assert all(d.attempts == 2 for d in again)
    await bus.dead_letter(again[0], "boom")
    await bus.ack(again[1:])
    assert await bus.lag() == 0
    dead = await bus.dead()
    assert any(e.tweet_id == 102 and err == "boom" for _m, e, err in dead)
    replayed = await bus.replay_dead()
    assert replayed >= 1
    got = await bus.receive("c3", 10, block_ms=100)
    assert 102 in [d.event.tweet_id for d in got]
    await bus.ack(got)
