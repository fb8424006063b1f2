"""Fault tests, each on a throwaway Valkey cluster: failover, slot migration, wipe."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import pytest_asyncio
import redis

from deploy.local._proc import log_tail
from deploy.local.ports import free_port
from deploy.local.valkey_cluster import ValkeyCluster
from tests.conftest import api_with, bulk_followers, drain, reader_of_three_tweets

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOLLOWERS = 300
HOME = "query{homeTimeline(first:50){edges{node{id}}}}"


@pytest.fixture
def cluster(stack):
    cl = ValkeyCluster(stack.root / f"cluster-{free_port()}")
    cl.start()
    yield cl
    cl.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def env(stack, cluster):
    # followers_count above the suite's celebrity threshold of 5: push, don't pull
    async with api_with(stack, redis_url=cluster.url, claim_idle_ms=500,
                        celebrity_threshold=1_000_000) as api:
        yield api, api.services, cluster


class Load:
    """Posts, fan-out and reads at once until stopped; records posts and reads."""

    def __init__(self, api, writer: str, readers: dict[str, str]) -> None:
        self.api, self.writer, self.readers = api, writer, readers
        self.posted: list[int] = []
        self.reads: dict[str, list[tuple[float, bool]]] = {r: [] for r in readers}
        self.post_errors: list[object] = []
        self.stop = asyncio.Event()

    async def _post(self) -> None:
        n = 0
        while not self.stop.is_set():
            body = await self.api.gql('mutation($t:String!){postTweet(text:$t){id}}',
                                      {"t": f"load {n}"}, self.writer)
            if "errors" in body:
                self.post_errors.append(body["errors"])
            else:
                self.posted.append(int(body["data"]["postTweet"]["id"]))
            n += 1
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                await drain(self.api.services, "cluster-faults")
            await asyncio.sleep(0.05)

    async def _read(self, name: str) -> None:
        while not self.stop.is_set():
            body = await self.api.gql(HOME, token=self.readers[name])
            assert "errors" not in body, body
            self.reads[name].append((time.monotonic(), body.get("extensions", {}).get(
                "degraded", False)))
            await asyncio.sleep(0.02)

    async def run_until(self, done) -> None:
        tasks = [asyncio.create_task(self._post()), asyncio.create_task(self._drain()),
                 *(asyncio.create_task(self._read(n)) for n in self.readers)]
        try:
            await done()
        finally:
            self.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)  # a stuck task fails the test


async def _readers_on_two_shards(api, svc, writer_id: int,
                                 hit_port: int | None = None) -> tuple[dict, dict]:
    """Two readers following the writer, their timelines cached on different primaries
    (the first, "hit", on `hit_port` if given)."""
    tokens, ids, nodes = {}, {}, {}
    while len(tokens) < 2:
        token, uid, _ = await api.sign_up("r")
        node = svc.redis.get_node_from_key(svc.home.key(uid))
        if node.name in nodes.values() or (not tokens and hit_port not in (None, node.port)):
            continue
        node = node.name
        name = "hit" if not tokens else "other"
        tokens[name], ids[name], nodes[name] = token, uid, node
        await api.follow(token, writer_id)
        assert await api.home_ids(token) == []
    return tokens, ids


async def _set_up(api, svc, hit_port: int | None = None):
    writer, writer_id, _ = await api.sign_up("w")
    followers = await bulk_followers(svc, writer_id, FOLLOWERS)
    tokens, ids = await _readers_on_two_shards(api, svc, writer_id, hit_port)
    return writer, followers, tokens, ids


async def _everyone_has_everything(api, svc, load: Load, followers, tokens) -> None:
    """Drained, then every follower's cached timeline holds every tweet, once each."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await drain(svc, "cluster-faults")
            break
        except Exception:
            assert time.monotonic() < deadline, "fan-out never caught up"
            await asyncio.sleep(0.5)
    want = sorted(load.posted, reverse=True)
    for f in followers:
        assert (await svc.home.read(f, count=800)).ids == want, f
    for token in tokens.values():
        assert await api.home_ids(token, page=100) == want


def _nodes(port: int) -> list[list[str]]:
    with redis.Redis(port=port, socket_timeout=2) as c:
        return [line.split() for line in
                c.execute_command("CLUSTER", "NODES").decode().splitlines()]


def _no_failover(cluster: ValkeyCluster, victim: int, lines: list[list[str]]) -> str:
    logs = "\n".join(f"-- node {n.port}:\n{log_tail(n.log_path, 15)}"
                     for n in cluster.nodes if n.port != victim)
    return "no failover in 60 s; CLUSTER NODES:\n" + "\n".join(map(" ".join, lines)) + logs


async def test_primary_killed_under_load_fails_over_and_loses_nothing(env):
    api, svc, cluster = env
    # The first seed: the node the listeners subscribe on and redis-py's first primary.
    victim = cluster.nodes[0].port
    writer, followers, tokens, ids = await _set_up(api, svc, victim)
    survivor = next(n.port for n in cluster.nodes if n.port != victim)
    load = Load(api, writer, tokens)
    killed = promoted = 0.0

    async def scenario() -> None:
        nonlocal killed, promoted
        await asyncio.sleep(2)
        cluster.node(victim).kill()
        killed = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            lines = _nodes(survivor)
            serving = [p for p in lines if "master" in p[2] and "fail" not in p[2] and len(p) > 8]
            if len(serving) == 3 and not any(f":{victim}@" in p[1] for p in serving):
                break
            assert time.monotonic() - killed < 60, _no_failover(cluster, victim, lines)
        promoted = time.monotonic()
        cluster.node(victim).start(persist=False)
        await asyncio.sleep(4)

    await load.run_until(scenario)
    assert not load.post_errors and len(load.posted) > 20
    grace = 3.0  # the client notices the new slot map on its next error or refresh
    for name, reads in load.reads.items():
        degraded = [t for t, d in reads if d]
        assert all(killed <= t <= promoted + grace for t in degraded), name
        assert not any(d for t, d in reads if t > promoted + grace), name
    other = [round(t - killed, 2) for t, d in load.reads["other"] if d]
    assert not other, f"reads of another shard degraded, s after the kill: {other}"
    assert any(d for _t, d in load.reads["hit"]), "the victim's reader never degraded"
    await _everyone_has_everything(api, svc, load, followers, tokens)


async def test_slot_migrated_under_load_loses_nothing(env):
    api, svc, cluster = env
    writer, followers, tokens, ids = await _set_up(api, svc)
    key = svc.home.key(ids["hit"])
    slot = svc.redis.keyslot(key)
    source = svc.redis.get_node_from_key(key).port
    target = next(p for p in cluster.primary_ports() if p != source)
    load = Load(api, writer, tokens)
    moved = 0.0
    resent = svc.home.resent

    async def scenario() -> None:
        nonlocal moved
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.move_slot, slot, source, target, 1, 0.3)
        moved = time.monotonic()
        await asyncio.sleep(3)

    await load.run_until(scenario)
    assert not load.post_errors and len(load.posted) > 20
    with redis.Redis(port=target) as c:
        assert c.exists(key)
    assert not any(d for t, d in load.reads["hit"] if t > moved + 2)
    assert not any(d for _t, d in load.reads["other"])
    await _everyone_has_everything(api, svc, load, followers, tokens)
    # the per-node fan-out met the moved slot and sent its list again the per-slot way
    assert svc.home.resent > resent


async def test_whole_cluster_restarted_empty_rebuilds_and_loses_nothing(env):
    api, svc, cluster = env
    reader, rid, writer, before = await reader_of_three_tweets(api, svc)

    cluster.wipe()
    body = await api.gql(HOME, token=reader)
    assert body["extensions"]["degraded"] is True
    assert [int(e["node"]["id"]) for e in body["data"]["homeTimeline"]["edges"]] == before[::-1]
    during = [await api.post(writer, f"during {i}") for i in range(2)]
    cluster.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            await drain(svc)
            break
        except Exception:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
    assert await api.home_ids(reader) == (before + during)[::-1]
    after = await api.post(writer, "after")
    await drain(svc)
    assert await api.home_ids(reader) == [after, *(before + during)[::-1]]
    assert (await svc.home.read(rid, count=50)).ids == [after, *(before + during)[::-1]]
