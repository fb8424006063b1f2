"""The Redis timeline scripts, and tests/fakes.py, against the pure reference model."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.timeline import insert as model_insert
from core.timeline import remove as model_remove
from storage.timeline_cache import ReadState, TimelineCache
from tests.fakes import MemoryServer, MemoryTimelineCache

pytestmark = pytest.mark.asyncio(loop_scope="session")

ids = st.integers(min_value=1, max_value=2**63 - 2)  # 2**63-1 is the NEWEST read bound


@pytest.fixture
def valkey_cache(services):
    return TimelineCache(services.redis, "test-tl", cap=8, ttl_seconds=60, free_slots=True)


@pytest.fixture(params=["valkey", "memory"])
def cache(request):
    if request.param == "memory":
        return MemoryTimelineCache(MemoryServer(), "test-tl", cap=8, ttl_seconds=60,
                                   free_slots=True)
    return request.getfixturevalue("valkey_cache")


async def fresh(cache, owner, entries, truncated=False):
    await cache.drop(owner)
    assert await cache.begin_rebuild(owner) == "started"
    await cache.finish_rebuild(owner, entries, truncated)


async def test_missing_lists_are_never_written(cache):
    assert not await cache.insert(424242, 5)
    assert (await cache.read(424242)).state == ReadState.MISSING
    assert await cache.insert_many([424242, 424243], 5) == 0


async def test_insert_is_ordered_idempotent_and_capped(cache):
    await fresh(cache, 1, [])
    for i in [5, 9, 7, 9, 1, 3, 12, 11, 10, 2, 8]:
        await cache.insert(1, i)
    got = await cache.read(1, count=100)
    assert got.ids == [12, 11, 10, 9, 8, 7, 5, 3] and got.truncated
    # below the oldest entry of a capped list: unknown territory, not inserted
    assert not await cache.insert(1, 2)
    assert await cache.insert(1, 6)
    assert (await cache.read(1, count=100)).ids == [12, 11, 10, 9, 8, 7, 6, 5]


async def test_read_bounds(cache):
    await fresh(cache, 2, [50, 40, 30, 20, 10])
    assert (await cache.read(2, before=40, count=2)).ids == [30, 20]
    assert (await cache.read(2, before=40, since=20, count=5)).ids == [30]
    r = await cache.read(2, before=15, count=5)
    assert r.ids == [10] and not r.truncated


async def test_rebuild_lock(cache):
    await cache.drop(3)
    assert await cache.begin_rebuild(3) == "started"
    assert await cache.begin_rebuild(3) == "busy"
    assert (await cache.read(3)).state == ReadState.BUILDING
    await cache.insert(3, 99)  # fan-out during the rebuild lands...
    await cache.finish_rebuild(3, [50, 40], False)
    assert (await cache.read(3)).ids == [99, 50, 40]  # ...and is kept
    assert await cache.begin_rebuild(3) == "exists"
    if isinstance(cache, TimelineCache):
        ttl = await cache.redis.ttl(cache.key(3))
        assert 50 < ttl <= 60


async def test_merge_respects_truncation(cache):
    await fresh(cache, 4, [100, 90, 80])
    # the merged list knows only down to 85: nothing below is exact any more
    await cache.merge(4, [95, 85], truncated=True)
    got = await cache.read(4, count=10)
    assert got.ids == [100, 95, 90, 85] and got.truncated


async def test_removing_everything_from_a_truncated_list_drops_it(cache):
    await fresh(cache, 5, [9, 8], truncated=True)
    assert await cache.remove_many([5], [9, 8]) == 2
    assert (await cache.read(5)).state == ReadState.MISSING


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.lists(ids, max_size=8, unique=True),
    ops=st.lists(st.tuples(st.booleans(), ids), max_size=25),
)
async def test_scripts_match_the_model(cache, start, ops):
    entries = sorted(start, reverse=True)
    await fresh(cache, 6, entries)
    model = entries
    truncated = False
    for is_insert, value in ops:
        if is_insert:
            if truncated and model and value < model[-1]:
                continue  # the script skips these by design (tested above)
            await cache.insert(6, value)
            before = model
            model = model_insert(model, value, cache.cap)
            truncated = truncated or len(set(before) | {value}) > cache.cap
        else:
            victim = model[value % len(model)] if model else value
            await cache.remove_many([6], [victim])
            model = model_remove(model, [victim])
            if truncated and not model:
                break
        got = await cache.read(6, count=100)
        assert got.ids == model
        # a page below some entry, and one above another: the paths that search
        if model:
            pivot = model[value % len(model)]
            assert (await cache.read(6, before=pivot, count=3)).ids == \
                [e for e in model if e < pivot][:3]
            assert (await cache.read(6, since=pivot, count=3)).ids == \
                [e for e in model if e > pivot][:3]


async def test_a_full_list_takes_new_heads_in_place(valkey_cache):
    """Free slots in front of a full list (storage/timeline_cache.py): every path sees the
    same entries."""
    cache = valkey_cache
    await fresh(cache, 8, [80, 70, 60, 50, 40, 30, 20, 10])  # full (cap 8)
    raw = cache.redis.get
    assert (await raw(cache.key(8)))[:1] != b"\xff"
    for i in range(9, 40):  # 90..390: runs out of free slots (15) twice
        assert await cache.insert(8, i * 10)
        value = await raw(cache.key(8))
        # rewritten with 15 free slots at 90, 250 (the 16th push: none left, so a rewrite)
        assert (value[:1] == b"\xff") == ((i - 9) % 16 != 15), i
        got = await cache.read(8, count=100)
        assert got.ids == list(range(i * 10, i * 10 - 80, -10)) and got.truncated
        assert (await cache.read(8, before=i * 10 - 20, count=2)).ids == \
            [i * 10 - 30, i * 10 - 40]
    assert len(value) == (15 + 8 + 1) * 8  # 15 free slots, 8 entries, the sentinel
    assert not await cache.insert(8, 390)  # the head again: a no-op
    assert (await cache.read(8, count=3)).ids == [390, 380, 370]
    assert (await cache.read(8, before=370, since=330, count=10)).ids == [360, 350, 340]
    # an id between entries: back to a plain list, the oldest dropped
    assert await cache.insert(8, 1000) and await cache.insert(8, 375)
    assert (await raw(cache.key(8)))[:1] != b"\xff"
    assert (await cache.read(8, count=100)).ids == [1000, 390, 380, 375, 370, 360, 350, 340]
    assert await cache.insert(8, 1010)  # free slots again
    assert await cache.remove_many([8], [390, 375]) == 2
    assert (await cache.read(8, count=100)).ids == [1010, 1000, 380, 370, 360, 350]
    assert await cache.insert(8, 1020)  # not full: a plain insert
    assert await cache.insert(8, 1030) and await cache.insert(8, 1040)  # full, then free slots
    await cache.merge(8, [1030, 400, 385], truncated=False)
    got = await cache.read(8, count=100)
    assert got.ids == [1040, 1030, 1020, 1010, 1000, 400, 385, 380] and got.truncated
    # a list written with another cap is rewritten, not patched, by an insert
    small = TimelineCache(cache.redis, cache.prefix, cap=4, ttl_seconds=60, free_slots=True)
    assert await cache.insert(8, 1050)
    assert await small.insert(8, 1060)
    assert (await cache.read(8, count=100)).ids == [1060, 1050, 1040, 1030]
    # a family without free slots (an author's recents) stays plain
    plain = TimelineCache(cache.redis, cache.prefix, cap=4, ttl_seconds=60)
    assert await plain.insert(8, 1070)
    assert (await raw(cache.key(8)))[:1] != b"\xff"
    assert (await cache.read(8, count=100)).ids == [1070, 1060, 1050, 1040]


async def test_bytes_per_entry(services):
    """docs/timelines.md's figure: MEMORY USAGE of a full 800-entry home timeline / 800."""
    full = TimelineCache(services.redis, "test-mem", cap=800, ttl_seconds=60, free_slots=True)
    owner = 77
    ids = [services.ids.next_id() for _ in range(801)]
    await fresh(full, owner, ids[::-1][:800], truncated=True)
    used = await services.redis.memory_usage(full.key(owner))
    per_entry = used / 800
    print(f"bytes per cached timeline entry: {per_entry:.2f} ({used} bytes for 800)")
    assert per_entry <= 8.2
    # New heads then go into the free slots in front: written in place, never grown.
    for i in ids[800:] + [services.ids.next_id() for _ in range(1000)]:
        await full.insert(owner, i)
    assert (await services.redis.getrange(full.key(owner), 0, 0)) == b"\xff"
    pushed = await services.redis.memory_usage(full.key(owner))
    print(f"with free slots, after 1,001 pushes: {pushed / 800:.2f} bytes per entry")
    assert pushed / 800 <= 8.4


async def test_live_notices_go_once_to_each_hub_naming_its_present_owners(services):
    """Fan-out tells live owners: one message per hub per script call, present owners only."""
    import asyncio

    from core.models import LiveKind
    from storage import keys, notices

    home = TimelineCache(services.redis, "tl", cap=8, ttl_seconds=60, live=True)
    owners = [9100, 9101, 9102, 9103]  # 9103 has no cached list: not written, not told
    for o in owners[:3]:
        await fresh(home, o, [10])
    r = services.redis
    batches: list = []
    replies = await home.run(
        lambda p: batches.extend(home.queue_present(p, [9100, 9101, 9103], "hubA", 60000)))
    found = dict(zip((o for b in batches for o in b), (f for r in replies for f in r), strict=True))
    assert found == {9100: 1, 9101: 1, 9103: 0}  # 9103's timeline is not cached
    await home.run(lambda p: home.queue_present(p, [9101], "hubB", 60000))
    await r.hset(keys.presence(9102), "hubB", 1)  # expired long ago: not told
    assert 55 <= await r.ttl(keys.presence(9100)) <= 60
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.hub_channel("hubA"), keys.hub_channel("hubB"))
    try:
        assert await home.insert_many(owners, 20) == 3
        await home.remove_many(owners, [20], deleted=True)
        got = []
        deadline = asyncio.get_running_loop().time() + 5
        while len(got) < 4 and asyncio.get_running_loop().time() < deadline:
            m = await pubsub.get_message(timeout=0.5)
            if m:
                got.append((m["channel"].decode(), m["data"].decode()))
        assert sorted(got) == sorted([
            (keys.hub_channel("hubA"), "a:20:9100,9101"), (keys.hub_channel("hubB"), "a:20:9101"),
            (keys.hub_channel("hubA"), "d:20:9100,9101"), (keys.hub_channel("hubB"), "d:20:9101"),
        ])
        assert notices.parse_routed("a:20:9100,9101") == (LiveKind.TWEET_ADDED, 20, [9100, 9101])
        # renewing presence drops the fields of hubs that stopped renewing theirs
        await home.run(lambda p: home.queue_present(p, [9102], "hubA", 60000))
        assert await r.hkeys(keys.presence(9102)) == [b"hubA"]
    finally:
        await pubsub.aclose()
        await r.delete(*[keys.presence(o) for o in owners], *[home.key(o) for o in owners])
