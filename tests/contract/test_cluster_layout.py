"""The Redis adapters on a throwaway 3-primary Valkey cluster."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from core.models import TWEET_CREATED, Event
from core.timeline import NEWEST
from deploy.local.ports import free_port
from deploy.local.valkey_cluster import ValkeyCluster
from storage import keys
from storage.eventbus import RedisStreamBus
from storage.idlease import LeasedIds
from storage.redis_client import close, connect
from storage.timeline_cache import Reads, ReadState, TimelineCache
from subscriptions.sharded import ShardedPubSub

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = ValkeyCluster(tmp_path_factory.mktemp("layout") / f"c{free_port()}", replicas=0)
    cl.start()
    yield cl
    cl.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def redis(cluster):
    r = connect(cluster.url)
    await r.initialize()
    yield r
    await close(r)


async def test_a_page_spread_over_every_node_is_written_and_read_back_in_order(redis):
    home = TimelineCache(redis, "lt", cap=8, ttl_seconds=60, live=True, free_slots=True)
    owners = list(range(5000, 5200))
    assert len({redis.get_node_from_key(home.key(o)).name for o in owners}) == 3
    async with redis.pipeline(transaction=False) as pipe:
        for o in owners:
            pipe.set(home.key(o), b"", ex=60)
        await pipe.execute()
    assert await home.insert_many(owners, 30) == len(owners)
    assert await home.insert_many(owners + [9999], 30) == 0  # idempotent; 9999 not cached
    assert await home.insert_many(owners, 40) == len(owners)
    sources = [(home, o) for o in owners[:40]] + [(home, 9999)]
    reading = Reads(sources, NEWEST, 0, 10)
    replies = await home.run(reading.queue)
    assert reading.calls == 3  # one per node
    got = [home.parse(r) for r in reading.collect(replies)]
    assert [g.ids for g in got[:-1]] == [[40, 30]] * 40
    assert got[-1].state == ReadState.MISSING
    assert await home.remove_many(owners, [30]) == len(owners)
    assert await home.merge_many(owners, [35], False) == len(owners)
    assert (await home.read(owners[7])).ids == [40, 35]


async def test_live_notices_go_to_present_owners_shard_channels(cluster, redis):
    home = TimelineCache(redis, "tl", cap=8, ttl_seconds=60, live=True)
    owners = [7100, 7101, 7102]  # 7102 not present: not told
    for o in owners:
        await redis.set(home.key(o), b"", ex=60)
    for o in owners[:2]:
        await home.run(lambda p, o=o: home.queue_present(p, [o], "h", 60000))
    sub = ShardedPubSub(cluster.url, 15)
    await sub.connect()
    await sub.subscribe(*(keys.home_channel(o) for o in owners))
    try:
        await asyncio.sleep(0.3)
        assert await home.insert_many(owners, 50) == 3
        await home.remove_many(owners, [50], deleted=True)
        got = []
        deadline = asyncio.get_running_loop().time() + 5
        while len(got) < 4 and asyncio.get_running_loop().time() < deadline:
            m = await sub.get_message(0.5)
            if m and m["type"] == "message":
                got.append((m["channel"].decode(), m["data"].decode()))
        assert sorted(got) == sorted([
            (keys.home_channel(7100), "a:50:7100"), (keys.home_channel(7101), "a:50:7101"),
            (keys.home_channel(7100), "d:50:7100"), (keys.home_channel(7101), "d:50:7101"),
        ])
    finally:
        await sub.aclose()


async def test_rebuild_transaction_and_author_notices_on_a_cluster(redis):
    home = TimelineCache(redis, "rb", cap=8, ttl_seconds=60)
    assert await home.begin_rebuild(1) == "started"
    assert (await home.read(1)).state == ReadState.BUILDING
    await home.finish_rebuild(1, [5, 4], False)
    assert (await home.read(1)).ids == [5, 4]
    await redis.set(keys.author_presence(3), 1, ex=60)
    replies = await home.run(lambda p: home.queue_notify(
        p, keys.author_presence(3), keys.author_channel(3), "a:9"))
    assert replies == [0]  # SPUBLISH answers the subscribers reached: none here


async def test_stream_bus_and_id_leases_on_a_cluster(redis):
    bus = RedisStreamBus(redis, claim_idle_ms=100)
    await redis.delete(keys.EVENTS, keys.EVENTS_DEAD)
    await bus.publish([Event(TWEET_CREATED, 11, 1)])
    (got,) = await bus.receive("c", 10, block_ms=100)
    await bus.dead_letter(got, "boom")  # one transaction over the stream and dead letters
    assert await bus.dead_count() == 1 and await bus.lag() == 0
    assert await bus.replay_dead() == 1
    assert [d.event.tweet_id for d in await bus.receive("c", 10, block_ms=100)] == [11]
    ids = LeasedIds(redis)
    worker = await ids.start()
    assert await redis.exists(keys.id_lease(worker), keys.id_lease_high_water(worker)) == 2
    assert ids.next_id() > 0
    await ids.close()


async def test_a_list_whose_slot_moved_is_sent_again_per_slot(cluster, redis):
    """A list moved to another node is skipped, then sent again there: counted once."""
    home = TimelineCache(redis, "mv", cap=8, ttl_seconds=60, live=True)
    owners = list(range(8000, 8060))
    async with redis.pipeline(transaction=False) as pipe:
        for o in owners:
            pipe.set(home.key(o), b"", ex=60)
        await pipe.execute()
    await redis.set(keys.presence(owners[0]), "x", ex=60)  # a live owner: its key moves too
    steps = [
        lambda: home.insert_many(owners, 10),
        lambda: home.remove_many(owners, [10], deleted=True),
        lambda: home.merge_many(owners, [20], False),
    ]
    for step in steps:
        key = home.key(owners[0])
        source = redis.get_node_from_key(key).port
        target = next(p for p in cluster.primary_ports() if p != source)
        await asyncio.to_thread(cluster.move_slot, redis.keyslot(key), source, target)
        resent = home.resent
        assert await step() == len(owners)
        assert home.resent > resent
    assert {tuple((await home.read(o)).ids) for o in owners} == {(20,)}
    key = home.key(owners[0])
    source = redis.get_node_from_key(key).port
    target = next(p for p in cluster.primary_ports() if p != source)
    await asyncio.to_thread(cluster.move_slot, redis.keyslot(key), source, target)
    reading = Reads([(home, o) for o in owners], NEWEST, 0, 10)
    got = [home.parse(r) for r in reading.collect(await home.run(reading.queue))]
    assert got[0].state == ReadState.BUILDING  # read again on its own, by the caller
    assert {tuple(g.ids) for g in got[1:]} == {(20,)}
    assert (await home.read(owners[0])).ids == [20]
