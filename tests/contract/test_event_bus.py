"""The event-bus contract: Redis Streams and Kafka pass the same suite."""

import asyncio
import secrets
import time

import pytest
import pytest_asyncio

from core.models import TWEET_CREATED, TWEET_DELETED, Event
from storage.eventbus import RedisStreamBus
from storage.kafka_bus import KafkaBus

pytestmark = pytest.mark.asyncio(loop_scope="session")

IDLE_MS = 200


@pytest_asyncio.fixture(loop_scope="session", params=["redis", "kafka"])
async def make_bus(request, services):
    """A factory of bus handles on one fresh bus: each handle is one consumer process."""
    made = []
    if request.param == "redis":
        from tests.conftest import drain

        await drain(services)  # leave nothing of other tests in the stream

        def make():
            made.append(RedisStreamBus(services.redis, claim_idle_ms=IDLE_MS))
            return made[-1]
    else:
        backends = request.getfixturevalue("scale_backends")
        topic = f"chirp.contract.{secrets.token_hex(4)}"

        def make():
            made.append(KafkaBus(backends.kafka_bootstrap, topic, partitions=3,
                                 claim_idle_ms=IDLE_MS))
            return made[-1]
    yield make
    for bus in made:
        await bus.close()


async def _receive(bus, consumer: str, want: int, within: float = 15.0) -> list:
    got: list = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        got += await bus.receive(consumer, 10, block_ms=100)
    return got


async def test_publish_receive_ack_retry_dead_letter_and_replay(make_bus):
    bus = make_bus()
    events = [Event(TWEET_CREATED, i, 1) for i in (101, 102, 103)]
    await bus.publish(events)
    got = await _receive(bus, "c1", 3)
    assert [d.event for d in got] == events and all(d.attempts == 1 for d in got)
    await bus.ack(got[:1])
    # The other two were not acknowledged: their work failed. They come back, counted.
    again = await _receive(bus, "c1", 2)
    assert [d.event.tweet_id for d in again] == [102, 103]
    assert all(d.attempts == 2 for d in again)
    await bus.dead_letter(again[0], "boom")
    await bus.ack(again[1:])
    assert await bus.lag() == 0
    assert any(e.tweet_id == 102 and err == "boom" for _m, e, err in await bus.dead())
    assert await bus.replay_dead() >= 1
    got = await _receive(bus, "c3", 1)
    assert 102 in [d.event.tweet_id for d in got]
    await bus.ack(got)
    assert await bus.lag() == 0
    assert await bus.replay_dead() == 0  # each dead letter is replayed once


async def test_a_dead_consumers_events_go_to_another(make_bus):
    first, second = make_bus(), make_bus()
    await first.publish([Event(TWEET_CREATED, 201, 7)])
    held = await _receive(first, "a", 1)
    assert [d.event.tweet_id for d in held] == [201]
    await first.release()  # "a" dies without acknowledging
    await asyncio.sleep(IDLE_MS / 1000 + 0.1)
    taken = await _receive(second, "b", 1)
    assert [d.event.tweet_id for d in taken] == [201]
    await second.ack(taken)
    assert await second.lag() == 0


async def test_events_keep_their_payload_and_an_authors_order(make_bus):
    bus = make_bus()
    sent = [
        Event(TWEET_CREATED, 301, 9, text="héllo ✓ 'quoted'"),
        Event(TWEET_CREATED, 301, 9, span=(5, 900)),
        Event(TWEET_DELETED, 301, 9),
        Event(TWEET_CREATED, 302, 9, text=""),
    ]
    await bus.publish(sent)
    got = await _receive(bus, "c", 4)
    mine = [d.event for d in got if d.event.author_id == 9 and d.event.span is None]
    assert mine == [sent[0], sent[2], sent[3]]  # one author: in order
    assert sent[1] in [d.event for d in got]
    await bus.ack(got)
