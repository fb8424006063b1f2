"""The Redis timeline scripts against the pure reference model, on a real server."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.timeline import NEWEST, unpack
from core.timeline import insert as model_insert
from core.timeline import remove as model_remove
from storage.timeline_cache import SENTINEL, ReadState, TimelineCache, slack

pytestmark = pytest.mark.asyncio(loop_scope="session")

ids = st.integers(min_value=1, max_value=2**63 - 2)  # 2**63-1 is the NEWEST read bound


@pytest.fixture
def cache(services):
    return TimelineCache(services.redis, "test-tl", cap=8, ttl_seconds=60)


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


async def test_bytes_per_entry(services):
    """The numbers docs/timelines.md quotes: MEMORY USAGE of a full 800-entry home timeline
    (with its truncation sentinel), divided by 800, as a rebuild writes it, and under
    fan-out. Appends make Valkey grow the string greedily (it doubles the allocation when
    an APPEND outgrows it), so a list fan-out has written into holds about twice its bytes
    until the next trim rewrites it exactly."""
    full = TimelineCache(services.redis, "test-mem", cap=800, ttl_seconds=60)
    owner = 77
    ids = [services.ids.next_id() for _ in range(801)]
    await fresh(full, owner, ids[::-1][:800], truncated=True)
    used = await services.redis.memory_usage(full.key(owner))
    print(f"bytes per cached timeline entry: {used / 800:.2f} ({used} bytes for 800), rebuilt")
    assert used / 800 <= 8.2
    # one trim cycle of fan-out: from the trimmed list to the next trim
    samples, stored = [], []
    for _ in range(slack(800) + 1):
        await full.insert(owner, services.ids.next_id())
        samples.append(await services.redis.memory_usage(full.key(owner)))
        stored.append(await services.redis.strlen(full.key(owner)) // 8 - 1)
    per_entry = sum(samples) / len(samples) / 800
    per_stored = sum(u / n for u, n in zip(samples, stored, strict=True)) / len(samples)
    print(f"bytes per cached timeline entry under fan-out: {per_entry:.2f} per logical entry"
          f" ({min(samples)}..{max(samples)} bytes for 800), {per_stored:.2f} per stored entry"
          f" (800..{800 + slack(800)} stored)")
    assert per_entry <= 16.2 and per_stored <= 16


async def test_live_notices_go_once_to_each_hub_naming_its_present_owners(services):
    """Fan-out tells live owners through their hubs: one message per hub per script call,
    listing the owners whose lists changed and whose presence there has not expired."""
    import asyncio

    from storage import live

    home = TimelineCache(services.redis, "tl", cap=8, ttl_seconds=60, live=True)
    owners = [9100, 9101, 9102, 9103]  # 9103 has no cached list: not written, not told
    for o in owners[:3]:
        await fresh(home, o, [10])
    r = services.redis
    await home.run(lambda p: home.call(p, "present", [live.presence_key(9100)], ["hubA", 60000]))
    await home.run(lambda p: home.call(p, "present", [live.presence_key(9101)], ["hubA", 60000]))
    await home.run(lambda p: home.call(p, "present", [live.presence_key(9101)], ["hubB", 60000]))
    await home.run(lambda p: home.call(p, "present", [live.presence_key(9103)], ["hubA", 60000]))
    await r.hset(live.presence_key(9102), "hubB", 1)  # expired long ago: not told
    assert 55 <= await r.ttl(live.presence_key(9100)) <= 60
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(live.hub_channel("hubA"), live.hub_channel("hubB"))
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
            (live.hub_channel("hubA"), "a:20:9100,9101"), (live.hub_channel("hubB"), "a:20:9101"),
            (live.hub_channel("hubA"), "d:20:9100,9101"), (live.hub_channel("hubB"), "d:20:9101"),
        ])
        assert live.parse_routed("a:20:9100,9101") == ("a", 20, [9100, 9101])
        # renewing presence drops the fields of hubs that stopped renewing theirs
        await home.run(lambda p: home.call(p, "present", [live.presence_key(9102)], ["hubA", 60000]))
        assert await r.hkeys(live.presence_key(9102)) == [b"hubA"]
    finally:
        await pubsub.aclose()
        await r.delete(*[live.presence_key(o) for o in owners], *[home.key(o) for o in owners])


# -- the stored layout: oldest first, lazily trimmed (cap + slack entries), sentinel in front


async def stored(cache, owner):
    """The raw value: (sentinel present, ascending entries)."""
    v = await cache.redis.get(cache.key(owner))
    front = v[:8] == SENTINEL
    entries = unpack(v[8:] if front else v)
    assert entries == sorted(set(entries)), "stored entries must ascend without duplicates"
    assert len(v) // 8 <= cache.cap + slack(cache.cap)  # the sentinel counts: trimmed anyway
    return front, entries


async def test_newest_inserts_append_and_trim_lazily(cache):
    await fresh(cache, 20, [8, 7, 6, 5, 4, 3, 2, 1])  # full, not truncated
    r = await cache.read(20, count=100)
    assert r.ids == [8, 7, 6, 5, 4, 3, 2, 1] and not r.truncated
    assert await cache.insert(20, 9)
    # appended: nine stored entries, no sentinel, yet logically truncated at the cap
    assert await stored(cache, 20) == (False, list(range(1, 10)))
    r = await cache.read(20, count=100)
    assert r.ids == [9, 8, 7, 6, 5, 4, 3, 2] and r.truncated
    assert (await cache.read(20, count=8)).truncated is False  # count reached first
    assert not await cache.insert(20, 9)  # the newest again: no-op
    assert not await cache.insert(20, 1)  # below the logical list, though still stored
    assert await cache.insert(20, 10)
    assert await stored(cache, 20) == (False, list(range(1, 11)))
    assert await cache.insert(20, 11)  # past cap + slack: trimmed to sentinel + cap
    assert await stored(cache, 20) == (True, list(range(4, 12)))
    r = await cache.read(20, before=6, count=100)
    assert r.ids == [5, 4] and r.truncated


async def test_exactly_cap_entries_read_past_the_cap(cache):
    """A read asking for more than the cap sees the whole logical list: truncated only if
    the value holds more than it (a sentinel or older stored entries)."""
    await fresh(cache, 21, list(range(80, 0, -10)))  # 8 entries, complete
    r = await cache.read(21, count=9)
    assert len(r.ids) == 8 and not r.truncated
    await fresh(cache, 21, list(range(80, 0, -10)), truncated=True)
    r = await cache.read(21, count=9)
    assert len(r.ids) == 8 and r.truncated
    await fresh(cache, 21, [], truncated=True)
    r = await cache.read(21)
    assert r.ids == [] and r.truncated
    assert not await cache.insert(21, 5)  # nothing known: not even a newest id


async def test_remove_and_merge_see_only_the_logical_list(cache):
    await fresh(cache, 22, list(range(8, 0, -1)))
    for i in (9, 10):
        await cache.insert(22, i)  # stored 1..10; logically 10..3, truncated
    assert await cache.remove_many([22], [1, 2]) == 0  # beyond the logical list
    assert await cache.remove_many([22], [5]) == 1
    assert await stored(cache, 22) == (True, [3, 4, 6, 7, 8, 9, 10])
    for i in (11, 12, 13):
        await cache.insert(22, i)
    await cache.merge(22, [14, 2, 1], truncated=False)
    # floor 6 (the oldest logical entry, 6): 2 and 1 are not kept
    assert await stored(cache, 22) == (True, [6, 7, 8, 9, 10, 11, 12, 13, 14][-8:])


class Model:
    """The reference model of one list: newest-first entries and the truncation flag, with
    None for a list that does not exist."""

    def __init__(self, cap: int, entries: list[int], truncated: bool) -> None:
        self.cap, self.entries, self.truncated = cap, entries, truncated

    def insert(self, x: int) -> int:
        e = self.entries
        if e is None or x in e or (self.truncated and (not e or x < e[-1])):
            return 0
        self.truncated = self.truncated or len(e) + 1 > self.cap
        self.entries = model_insert(e, x, self.cap)
        return 1

    def remove(self, doomed: list[int]) -> int:
        if self.entries is None:
            return 0
        kept = model_remove(self.entries, doomed)
        removed = len(self.entries) - len(kept)
        self.entries = None if removed and self.truncated and not kept else kept
        return removed

    def merge(self, ids: list[int], truncated: bool) -> bool:
        if self.entries is None:
            return False
        a, b = self.entries, sorted(set(ids), reverse=True)
        floor = max([a[-1]] if self.truncated and a else [0])
        if truncated and b:
            floor = max(floor, b[-1])
        union = sorted({i for i in a + b if i >= floor}, reverse=True)
        self.truncated = self.truncated or truncated or len(union) > self.cap
        self.entries = union[:self.cap]
        return True

    def read(self, before: int, since: int, count: int):
        if self.entries is None:
            return None
        below = [i for i in self.entries if i < before]
        got = [i for i in below if i > since][:count]
        reached = len(got) < count and all(i > since for i in below)
        return got, self.truncated and reached


def near(entries, k):
    """A read bound at, just above or just below an entry."""
    return entries[k % len(entries)] + (k % 3 - 1) if entries else k


def timeline_ops(top):
    newest = st.tuples(st.just("newest"), st.integers(1, 3))
    anywhere = st.tuples(st.just("insert"), st.integers(1, top))
    remove = st.tuples(st.just("remove"), st.lists(st.integers(0, 30), min_size=1, max_size=3))
    merge = st.tuples(st.just("merge"), st.lists(st.integers(1, top), max_size=12),
                      st.booleans())
    read = st.tuples(st.just("read"), st.integers(0, 40), st.integers(0, 40),
                     st.integers(1, 12))
    return st.lists(st.one_of(newest, newest, newest, anywhere, remove, merge, read),
                    max_size=80)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.lists(st.integers(1, 200), max_size=8, unique=True),
    start_truncated=st.booleans(),
    ops=timeline_ops(400),
)
async def test_lazy_trim_matches_the_model(cache, start, start_truncated, ops):
    """Long runs of newest inserts past cap + slack (APPEND, then a trim), interleaved with
    inserts anywhere, removes, merges and bounded reads, against the model."""
    owner = 23
    entries = sorted(start, reverse=True)
    await fresh(cache, owner, entries, start_truncated)
    model = Model(cache.cap, entries, start_truncated)
    top = max(entries, default=0)
    for op in ops:
        kind = op[0]
        if model.entries is None:  # removed out of existence: a rebuild makes it again
            assert (await cache.read(owner)).state == ReadState.MISSING
            await fresh(cache, owner, [])
            model = Model(cache.cap, [], False)
        if kind == "newest":
            top += op[1]
            assert await cache.insert(owner, top) == bool(model.insert(top))
        elif kind == "insert":
            assert await cache.insert(owner, op[1]) == bool(model.insert(op[1]))
            top = max(top, op[1])
        elif kind == "remove":
            e = model.entries
            doomed = [e[i % len(e)] if e and i % 3 else i + 1 for i in op[1]]
            doomed = list(dict.fromkeys(doomed))
            assert await cache.remove_many([owner], doomed) == model.remove(doomed)
        elif kind == "merge":
            ids = sorted(set(op[1]), reverse=True)
            assert await cache.merge(owner, ids, op[2]) == model.merge(ids, op[2])
            top = max([top, *ids])
        else:
            before = near(model.entries, op[1]) if op[1] else NEWEST
            since, count = near(model.entries, op[2]) if op[2] else 0, op[3]
            want = model.read(before, since, count)
            got = await cache.read(owner, before=before, since=since, count=count)
            assert (got.ids, got.truncated) == want, (before, since, count)
        if model.entries is not None:
            got = await cache.read(owner, count=100)
            assert (got.ids, got.truncated) == (model.entries, model.truncated)
            if model.entries:  # below the newest entry: the whole value is searched
                got = await cache.read(owner, before=model.entries[0], count=100)
                assert (got.ids, got.truncated) == model.read(model.entries[0], 0, 100)
            await stored(cache, owner)
