"""What a page costs in round trips (docs/testing.md)."""

import asyncio

import pytest
from redis.asyncio.connection import AbstractConnection

from storage import keys
from storage.multiplexed import _Line
from tests.conftest import CLUSTER, api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOME = """query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text createdAt
  author{id handle displayName viewerIsFollowing}}} pageInfo{hasNextPage endCursor}}}"""
USER = """query($h:String!,$f:Int!){userTimeline(handle:$h,first:$f){edges{cursor node{id
  text createdAt author{id handle displayName followersCount viewerIsFollowing}}}
  pageInfo{hasNextPage endCursor}}}"""


async def _graph(api) -> tuple[str, str, int, list[int]]:
    """A viewer following 8 authors and 2 celebrities, 30 tweets among them."""
    viewer, viewer_id, _ = await api.sign_up("viewer")
    authors = [await api.sign_up("author") for _ in range(8)]
    celebs = [await api.sign_up("celeb") for _ in range(2)]
    for _t, aid, _ in authors + celebs:
        await api.follow(viewer, aid)
    for _t, cid, _ in celebs:
        for _ in range(4):
            fan, _, _ = await api.sign_up("fan")
            await api.follow(fan, cid)
    for i in range(30):
        t = (authors + celebs)[i % 10][0]
        await api.post(t, f"tweet {i}")
    await drain(api.services)
    return viewer, celebs[0][2], viewer_id, [c for _, c, _ in celebs]


def _nodes(api, *names: str) -> int:
    """Round trips of one read touching these keys: one, or on a cluster one per node
    holding any of them (sent to all nodes at once)."""
    if not CLUSTER:
        return 1
    return len({api.services.redis.get_node_from_key(k).name for k in names})


async def _costs(api, monkeypatch, queries: list, token: str, query: str,
                 variables: dict) -> tuple[int, int, dict]:
    redis_trips = 0
    real_send = AbstractConnection.send_packed_command
    real_call = _Line.call

    async def counting_send(self, command, check_health=True):
        nonlocal redis_trips
        redis_trips += 1
        return await real_send(self, command, check_health)

    def counting_call(self, payload):
        nonlocal redis_trips
        redis_trips += 1
        return real_call(self, payload)

    await api.services.feed.activity.idle()  # a mark left by the last read: not this one's
    # The archive's bounds are read once per HORIZON_TTL_S per process, not per page: read
    # them now so that an expiry during the page is not counted as its cost
    api.services.archive.forget_bounds()
    await api.services.archive.horizon()
    await asyncio.sleep(0.05)  # asyncpg calls query loggers soon after, not at once
    queries.clear()
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    monkeypatch.setattr(_Line, "call", counting_call)
    try:
        r = await api.client.post("/graphql", json={"query": query, "variables": variables},
                                  headers={"authorization": f"Bearer {token}"})
    finally:
        monkeypatch.setattr(AbstractConnection, "send_packed_command", real_send)
        monkeypatch.setattr(_Line, "call", real_call)
    body = r.json()
    assert "errors" not in body, body
    # asyncpg introspects types (with JIT off) on a pooled connection's first use: not the
    # page's queries
    queries[:] = [q for q in queries
                  if "typeinfo_tree" not in q and "'jit'" not in q]
    return len(queries), redis_trips, body["data"]


async def test_a_cached_page_makes_no_query_and_one_round_trip(stack, monkeypatch):
    queries: list[str] = []
    async with api_with(stack, on_query=lambda r: queries.append(r.query)) as api:
        viewer, celeb, viewer_id, celebs = await _graph(api)
        # On a cluster the fence first, on its own, then the viewer's list: the followed
        # celebrities' recents are held in the process, not read again.
        home_trips = 2 if CLUSTER else 1
        for first in (5, 20, 40):
            variables = {"f": first}
            _pg, _trips, cold = await _costs(api, monkeypatch, queries, viewer, HOME, variables)
            pg, trips, data = await _costs(api, monkeypatch, queries, viewer, HOME, variables)
            assert data == cold
            assert len(data["homeTimeline"]["edges"]) == min(first, 30)
            assert pg == 0 and trips == home_trips, (first, trips)
        variables = {"h": celeb, "f": 20}
        await _costs(api, monkeypatch, queries, viewer, USER, variables)
        pg, trips, data = await _costs(api, monkeypatch, queries, viewer, USER, variables)
        assert len(data["userTimeline"]["edges"]) == 3
        assert all(e["node"]["author"]["viewerIsFollowing"]
                   for e in data["userTimeline"]["edges"])
        assert (pg, trips) == (0, _nodes(api, keys.CACHE_SEQ)), queries


async def test_an_uncached_page_costs_the_same_whatever_its_size(stack, monkeypatch):
    queries: list[str] = []
    async with api_with(stack, on_query=lambda r: queries.append(r.query), cache_mb=0) as api:
        viewer, _celeb, viewer_id, celebs = await _graph(api)
        await api.home_ids(viewer)
        costs, sent = {}, {}
        for first in (5, 20, 40):
            pg, trips, data = await _costs(api, monkeypatch, queries, viewer, HOME, {"f": first})
            assert len(data["homeTimeline"]["edges"]) == min(first, 30)
            costs[first] = (pg, trips)
            sent[first] = list(queries)
        # followees, tweets by id, users by id, viewer's follow edges
        assert costs[5] == costs[20] == costs[40], (costs, sent)
        pg, trips = costs[20]
        assert pg <= 4, queries
        sources = [api.services.home.key(viewer_id), *map(api.services.recents.key, celebs)]
        assert trips == _nodes(api, *sources), trips
