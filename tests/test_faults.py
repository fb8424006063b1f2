"""A worker killed mid-fan-out, Redis and PostgreSQL stopped and started (docs/testing.md)."""

import asyncio
import subprocess
import sys
import time

import pytest
import pytest_asyncio

from deploy.local.valkey import EmbeddedValkey
from storage import keys
from tests.conftest import api_with, bulk_followers, drain, reader_of_three_tweets, worker_env

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def own_redis(stack):
    vk = EmbeddedValkey(stack.root / "faults-valkey")
    url = vk.start()
    yield vk, url
    vk.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def env(stack, own_redis):
    vk, url = own_redis
    async with api_with(stack, redis_url=url, claim_idle_ms=1000) as api:
        yield api, api.services, vk, url


def start_worker(env_vars: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workers.fanout"], cwd=ROOT, env=env_vars)


async def test_worker_killed_mid_fan_out_finishes_after_restart(stack, env):
    api, svc, _vk, url = env
    await drain(svc)
    token, author, _ = await api.sign_up("big")
    followers = await bulk_followers(svc, author, 20_000)
    # 20k followers: a celebrity under the suite's threshold, so raise it for the worker.
    env_vars = worker_env(stack, url, CHIRP_CELEBRITY_THRESHOLD="1000000")
    worker = start_worker(env_vars)
    killed_at = None
    try:
        await asyncio.sleep(2.0)
        base = int(await svc.redis.get(keys.DELIVERIES) or 0)
        tid = await api.post(token, "to twenty thousand")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = int(await svc.redis.get(keys.DELIVERIES) or 0) - base
            if done >= 1000:
                worker.kill()
                killed_at = done
                break
            await asyncio.sleep(0.002)
        worker.wait()
        assert killed_at is not None, "the worker never started delivering"
        assert killed_at < len(followers), "killed too late to test anything; too fast?"
        # A fresh worker claims the unacknowledged event after it has been idle 1 s.
        worker = start_worker(env_vars)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await svc.bus.lag():
            await asyncio.sleep(0.2)
        assert await svc.bus.lag() == 0
    finally:
        worker.terminate()
        worker.wait(10)
    async with svc.redis.pipeline(transaction=False) as pipe:
        for f in followers:
            pipe.get(svc.home.key(f))
        blobs = await pipe.execute()
    entry = tid.to_bytes(8, "big")
    assert all(b == entry for b in blobs)


async def test_redis_down_reads_degrade_posts_survive_then_recover(env):
    api, svc, vk, _url = env
    reader, rid, writer, before = await reader_of_three_tweets(api, svc)

    vk.stop()
    try:
        body = await api.gql("{homeTimeline{edges{node{id}}}}", token=reader)
        assert "errors" not in body, body
        assert body["extensions"]["degraded"] is True
        assert [int(e["node"]["id"]) for e in body["data"]["homeTimeline"]["edges"]] == \
            before[::-1]
        # posting still works: the event waits in the outbox
        during = [await api.post(writer, f"during {i}") for i in range(2)]
        r = await api.client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["redis"] != "ok"
    finally:
        vk.start()
    await asyncio.sleep(0.2)
    await drain(svc)
    body = await api.gql("{homeTimeline(first:50){edges{node{id}}}}", token=reader)
    assert "errors" not in body and "degraded" not in body.get("extensions", {})
    got = [int(e["node"]["id"]) for e in body["data"]["homeTimeline"]["edges"]]
    assert got == (before + during)[::-1]
    assert (await svc.home.read(rid, count=50)).ids == got


async def test_pooled_connections_survive_a_redis_restart(env):
    """After a restart every pooled connection is dead, and the cached reads' pipelined
    one (storage/multiplexed.py); the first command on each must reconnect and retry, not
    degrade the read."""
    api, svc, vk, _url = env
    reader, _rid, _writer, before = await reader_of_three_tweets(api, svc)
    query = "{homeTimeline{edges{node{id}}}}"
    await asyncio.gather(*(api.gql(query, token=reader) for _ in range(12)))
    await asyncio.gather(*(svc.redis.ping() for _ in range(6)))
    assert len(svc.redis.connection_pool._available_connections) >= 2
    assert svc.feed.line is not None and not svc.feed.line._line.closed
    vk.restart()
    bodies = await asyncio.gather(*(api.gql(query, token=reader) for _ in range(12)))
    for body in bodies:
        assert "errors" not in body and "degraded" not in body.get("extensions", {}), body
        assert [int(e["node"]["id"]) for e in body["data"]["homeTimeline"]["edges"]] == \
            before[::-1]


async def test_redis_comes_back_empty_timelines_rebuild_and_nothing_is_lost(env):
    """Redis loses its data: tweets posted meanwhile still reach followers, every timeline
    is rebuilt from PostgreSQL."""
    api, svc, vk, _url = env
    reader, rid, writer, before = await reader_of_three_tweets(api, svc)

    vk.kill()
    for f in vk.data_dir.rglob("*.aof*"):
        f.unlink()
    for d in vk.data_dir.rglob("appendonlydir"):
        for f in d.iterdir():
            f.unlink()
    during = [await api.post(writer, f"during {i}") for i in range(2)]
    vk.start()
    assert await svc.redis.dbsize() == 0
    await drain(svc)
    assert await api.home_ids(reader) == (before + during)[::-1]
    after = await api.post(writer, "after")
    await drain(svc)
    assert await api.home_ids(reader) == [after, *(before + during)[::-1]]
    assert (await svc.home.read(rid, count=50)).ids == [after, *(before + during)[::-1]]


async def test_postgres_down_answers_unavailable_then_recovers(stack, own_redis):
    """PostgreSQL is the source of truth: while it is down requests fail cleanly with
    UNAVAILABLE (never a 500), /readyz says so, and everything recovers by itself."""
    from deploy.local.postgres import EmbeddedPostgres
    from tests.conftest import Stack

    pg = EmbeddedPostgres(stack.root / "faults-postgres")
    url = pg.start()
    try:
        own = Stack(stack.root, pg, own_redis[0], url, own_redis[1], stack.backend_env,
                    stack.backends)
        async with api_with(own, redis_url=own_redis[1]) as api:
            token, _, _ = await api.sign_up("pgdown")
            await api.post(token, "before")
            pg.stop()
            body = await api.gql("{homeTimeline{edges{node{id}}}}", token=token)
            assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
            r = await api.client.post("/graphql", json={"query": 'mutation{postTweet(text:"x"){id}}'},
                                      headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200
            assert r.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
            assert (await api.client.get("/readyz")).status_code == 503
            pg.start()
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                body = await api.gql("{homeTimeline{edges{node{text}}}}", token=token)
                if "errors" not in body:
                    break
                assert asyncio.get_running_loop().time() < deadline, body
                await asyncio.sleep(0.2)
            assert [e["node"]["text"] for e in body["data"]["homeTimeline"]["edges"]] == ["before"]
    finally:
        pg.stop()


async def test_worker_dying_between_apply_and_commit_loses_and_duplicates_nothing(stack, env):
    """A batch applied, not acknowledged, applied again: each tweet once per follower."""
    api, svc, _vk, url = env
    await drain(svc)
    authors = [await api.sign_up("ab") for _ in range(3)]
    followers = []
    for _ in range(4):
        token, fid, _ = await api.sign_up("fb")
        for _t, aid, _h in authors:
            await api.follow(token, aid)
        followers.append((token, fid))
        assert await api.home_ids(token) == []
    tweets = [await api.post(t, f"t{n}") for n in range(3) for t, _a, _h in authors]
    env_vars = worker_env(stack, url)
    crashing = start_worker(dict(env_vars, CHIRP_FAULT_EXIT_BEFORE_ACK="1"))
    try:
        assert crashing.wait(60) == 70
    finally:
        crashing.kill()
    assert await svc.bus.lag() > 0
    worker = start_worker(env_vars)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (await svc.bus.lag() or await _outbox(svc)):
            await asyncio.sleep(0.2)
        assert await svc.bus.lag() == 0
    finally:
        worker.terminate()
        worker.wait(10)
    for _token, fid in followers:
        cached = (await svc.home.read(fid, count=50)).ids
        assert cached == sorted(tweets, reverse=True), fid


async def _outbox(svc) -> int:
    return await svc.pool.fetchval("SELECT count(*) FROM outbox")
