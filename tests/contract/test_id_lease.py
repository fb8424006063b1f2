"""Leased worker ids: never shared, a new holder starts above the old one's ids."""

import pytest
import pytest_asyncio

from core.ids import id_timestamp_ms
from storage import keys
from storage.idlease import LEASE_MS, LeasedIds

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def redis(stack):
    """A database of its own: these tests occupy every worker id on purpose."""
    from runtime.container import redis_client

    client = redis_client(stack.redis_url.rsplit("/", 1)[0] + "/7")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_concurrent_holders_get_distinct_ids(redis):
    holders = [LeasedIds(redis) for _ in range(20)]
    try:
        workers = [await h.start() for h in holders]
        assert len(set(workers)) == 20
        minted = [h.next_id() for h in holders for _ in range(500)]
        assert len(set(minted)) == len(minted)
    finally:
        for h in holders:
            await h.close()


async def test_released_id_restarts_above_its_high_water_mark(redis):
    first = LeasedIds(redis)
    wid = await first.start()
    last = max(first.next_id() for _ in range(1000))
    await first.close()  # clean release records the exact last millisecond
    await redis.delete(*[keys.id_lease(w) for w in range(1024) if w != wid])
    # Force the next holder onto the same worker id.
    for w in range(1024):
        if w != wid:
            await redis.set(keys.id_lease(w), "busy", px=5000)
    second = LeasedIds(redis)
    try:
        assert await second.start() == wid
        assert second.next_id() > last
    finally:
        await second.close()
        await redis.delete(*[keys.id_lease(w) for w in range(1024) if w != wid])


async def test_crashed_holder_is_assumed_to_have_minted_a_lease_ahead(redis):
    wid = 1023
    await redis.delete(keys.id_lease(wid))
    # A holder that crashed: its last renewal said hwm=T, it may have minted until T+lease.
    crashed_hwm = 1_800_000_000_000
    await redis.set(keys.id_lease_high_water(wid), str(crashed_hwm))
    for w in range(1023):
        await redis.set(keys.id_lease(w), "busy", px=5000)
    holder = LeasedIds(redis)
    try:
        assert await holder.start() == wid
        assert id_timestamp_ms(holder.generator.next_id()) > crashed_hwm + LEASE_MS
    finally:
        await holder.close()
        await redis.delete(*[keys.id_lease(w) for w in range(1023)])
        await redis.delete(keys.id_lease_high_water(wid))
