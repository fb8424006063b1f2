"""The twin of the read script: a recents window held in memory equals Redis's."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.timeline import NEWEST
from services.feed import WHOLE, down_to, window
from storage.readcache import Recents
from storage.timeline_cache import TimelineCache

pytestmark = pytest.mark.asyncio(loop_scope="session")

bounds = st.one_of(st.just(NEWEST), st.integers(min_value=1, max_value=60))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.sets(st.integers(min_value=1, max_value=50), max_size=12),
       truncated=st.booleans(), before=bounds, since=st.integers(min_value=0, max_value=50),
       want=st.integers(min_value=1, max_value=15),
       floor=st.integers(min_value=0, max_value=55))
async def test_a_window_of_a_whole_list_is_the_scripts_window(services, entries, truncated,
                                                              before, since, want, floor):
    cache = TimelineCache(services.redis, "test-ut", cap=12, ttl_seconds=60)
    ids = sorted(entries, reverse=True)
    await cache.drop(1)
    assert await cache.begin_rebuild(1) == "started"
    await cache.finish_rebuild(1, ids, truncated)
    whole = await cache.read(1, NEWEST, 0, WHOLE)
    # what a process keeps: the whole list, and whether it was capped
    assert (whole.ids, whole.truncated) == (ids, truncated or len(ids) > cache.cap)
    local = window(Recents(whole.ids, whole.truncated), before, since, want)
    script = await cache.read(1, before, since, want)
    assert (local.ids, local.truncated) == (script.ids, script.truncated)
    # down to a floor: the script's answer when asked for as many as down_to says
    deep, asked = down_to(Recents(whole.ids, whole.truncated), before, since, floor)
    script = await cache.read(1, before, since, asked)
    assert (deep.ids, deep.truncated) == (script.ids, script.truncated)
    assert all(i >= floor for i in deep.ids[:-1])
