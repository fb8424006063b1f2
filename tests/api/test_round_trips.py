"""A homeTimeline page costs a constant number of database queries and Redis round trips,
whatever its size: DataLoaders batch hydration, pipelines batch the cache reads."""

import pytest
from redis.asyncio.connection import AbstractConnection

from tests.conftest import CLUSTER, api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

QUERY = """query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text createdAt
  author{id handle displayName viewerIsFollowing}}} pageInfo{hasNextPage endCursor}}}"""


async def test_constant_round_trips_per_page(stack, monkeypatch):
    queries: list[str] = []
    redis_trips = 0
    real_send = AbstractConnection.send_packed_command

    async def counting_send(self, command, check_health=True):
        nonlocal redis_trips
        redis_trips += 1
        return await real_send(self, command, check_health)

    async with api_with(stack, on_query=lambda r: queries.append(r.query)) as api:
        svc, client = api.services, api.client
        viewer, viewer_id, _ = await api.sign_up("viewer")
        authors = [await api.sign_up("author") for _ in range(8)]
        celebs = [await api.sign_up("celeb") for _ in range(2)]
        for _t, aid, _ in authors + celebs:
            await api.follow(viewer, aid)
        for _t, cid, _ in celebs:  # 5 followers make a celebrity in this suite
            for _ in range(4):
                fan, _, _ = await api.sign_up("fan")
                await api.follow(fan, cid)
        for i in range(30):
            t = (authors + celebs)[i % 10][0]
            await api.post(t, f"tweet {i}")
        await drain(svc)
        await api.home_ids(viewer)  # warm: the cached timeline exists
        for first in (5, 40):  # and a connection is open to each node the page reads
            await client.post("/graphql", json={"query": QUERY, "variables": {"f": first}},
                              headers={"authorization": f"Bearer {viewer}"})

        costs = {}
        for first in (5, 20, 40):
            queries.clear()
            redis_trips = 0
            monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
            r = await client.post(
                "/graphql", json={"query": QUERY, "variables": {"f": first}},
                headers={"authorization": f"Bearer {viewer}"},
            )
            monkeypatch.setattr(AbstractConnection, "send_packed_command", real_send)
            body = r.json()
            assert "errors" not in body, body
            assert len(body["data"]["homeTimeline"]["edges"]) == min(first, 30)
            costs[first] = (len(queries), redis_trips)
        # followees, tweets by id, users by id, viewer's follow edges
        print("homeTimeline page cost (pg queries, redis round trips):", costs)
        assert costs[5] == costs[20] == costs[40], costs
        pg, trips = costs[20]
        assert pg <= 4, queries
        if CLUSTER:  # one per node holding a source, sent to all nodes at once
            sources = [svc.home.key(viewer_id), *(svc.recents.key(c) for _, c, _ in celebs)]
            assert trips == len({svc.redis.get_node_from_key(k).name for k in sources}), trips
        else:
            assert trips == 1, trips
