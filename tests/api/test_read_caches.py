"""The read caches' rules (docs/caches.md), with two API processes on one stack."""

import asyncio
import random
import time

import pytest
from redis.asyncio import Redis

from deploy.local.valkey import EmbeddedValkey
from storage.readcache import MISSING
from tests.conftest import CLUSTER, api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOME = """query{homeTimeline(first:50){edges{node{id text author{id handle followersCount
  viewerIsFollowing}}}}}"""
TWEET = "query($i:ID!){tweet(id:$i){id text}}"
USER = """query($h:String!){user(handle:$h){id followersCount followingCount tweetsCount
  viewerIsFollowing tweets(first:20){edges{node{id}}}}}"""


async def home(api, token: str) -> list[dict]:
    return [e["node"] for e in (await api.ok(HOME, token=token))["homeTimeline"]["edges"]]


async def warm(api, token: str) -> list[dict]:
    """Read twice: the first read of a process may find its listener not yet subscribed
    (and read the stores); the second fills and uses the caches."""
    await home(api, token)
    await asyncio.sleep(0.05)
    return await home(api, token)


async def reader_of(api, tweets: int) -> tuple[str, str, str, list[int]]:
    """A reader following a writer who posted `tweets`, drained: (writer, handle, reader,
    posted ids)."""
    writer, wid, handle = await api.sign_up("w")
    reader, _rid, _ = await api.sign_up("r")
    await api.follow(reader, wid)
    posted = [await api.post(writer, f"t{i}") for i in range(tweets)]
    await drain(api.services)
    return writer, handle, reader, posted


async def test_a_delete_on_one_process_vanishes_from_another_at_once(stack):
    async with api_with(stack) as a, api_with(stack) as b:
        writer, handle, reader, posted = await reader_of(a, 3)
        victim = posted[1]
        assert [int(t["id"]) for t in await warm(b, reader)] == posted[::-1]
        assert (await b.ok(TWEET, {"i": str(victim)}))["tweet"]["id"] == str(victim)
        await b.ok(USER, {"h": handle}, reader)
        assert b.services.caches.tweets.get(victim) is not MISSING

        await a.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(victim)}, writer)
        # No drain: the id is still in the cached lists; b must not show the tweet.
        assert [int(t["id"]) for t in await home(b, reader)] == [posted[2], posted[0]]
        assert (await b.ok(TWEET, {"i": str(victim)}))["tweet"] is None
        user = (await b.ok(USER, {"h": handle}, reader))["user"]
        assert [int(e["node"]["id"]) for e in user["tweets"]["edges"]] == [posted[2], posted[0]]
        assert user["tweetsCount"] == 2


async def test_follow_and_unfollow_on_one_process_show_on_the_next_read_on_another(stack):
    async with api_with(stack) as a, api_with(stack) as b:
        reader, _rid, _ = await a.sign_up("r")
        writer, wid, _ = await a.sign_up("w")
        mine = await a.post(reader, "mine")
        theirs = await a.post(writer, "theirs")
        await drain(a.services)
        assert [int(t["id"]) for t in await warm(b, reader)] == [mine]

        await a.follow(reader, wid)
        got = await home(b, reader)
        assert [int(t["id"]) for t in got] == [theirs, mine]
        assert got[0]["author"]["viewerIsFollowing"] is True

        await a.unfollow(reader, wid)
        assert [int(t["id"]) for t in await home(b, reader)] == [mine]
        who = (await b.ok("query($i:ID!){tweet(id:$i){author{viewerIsFollowing}}}",
                          {"i": str(theirs)}, reader))["tweet"]["author"]
        assert who["viewerIsFollowing"] is False


async def test_an_author_becoming_a_celebrity_on_one_process_is_pulled_on_another(stack):
    """A process whose cached followees still count a new celebrity as ordinary pulls them
    all the same (fan-out no longer pushes them)."""
    async with api_with(stack) as a, api_with(stack) as b:
        reader, _rid, _ = await a.sign_up("r")
        star, sid, _ = await a.sign_up("s")
        await a.follow(reader, sid)
        first = await a.post(star, "before")
        await drain(a.services)
        assert [int(t["id"]) for t in await warm(b, reader)] == [first]
        for _ in range(4):
            fan, _, _ = await a.sign_up("f")
            await a.follow(fan, sid)
        after = await a.post(star, "after, pulled")
        await drain(a.services)
        assert [int(t["id"]) for t in await home(b, reader)] == [after, first]


async def test_counts_changed_on_one_process_are_seen_on_another_within_a_second(stack):
    async with api_with(stack) as a, api_with(stack) as b:
        me, _mid, my_handle = await a.sign_up("m")
        other, oid, other_handle = await a.sign_up("o")
        for api in (b, b):
            await api.ok(USER, {"h": my_handle}, me)
            await api.ok(USER, {"h": other_handle}, me)
        await a.follow(me, oid)
        await a.post(me, "one")

        async def seen(handle: str, field: str, value: int) -> bool:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                if (await b.ok(USER, {"h": handle}, me))["user"][field] == value:
                    return True
                await asyncio.sleep(0.05)
            return False

        # The user's own changes, on their next read anywhere; others' counts within 1 s
        # (in fact at once too: the same invalidations carry both).
        mine = (await b.ok(USER, {"h": my_handle}, me))["user"]
        assert (mine["followingCount"], mine["tweetsCount"]) == (1, 1)
        assert await seen(other_handle, "followersCount", 1)


async def test_invalidations_lost_with_the_connection_never_serve_a_deleted_tweet(stack):
    """A delete published while the listener is disconnected: the fence sends reads to the
    stores, and the caches are emptied on resubscribing (a read may refill them since)."""
    async with api_with(stack) as a, api_with(stack) as b:
        writer, _, reader, posted = await reader_of(a, 2)
        await warm(b, reader)
        assert b.services.caches.tweets.get(posted[0]) is not MISSING
        kill = ("CLIENT", "KILL", "TYPE", "pubsub")
        if CLUSTER:
            for node in b.services.redis.get_nodes():
                direct = Redis(host=node.host, port=node.port)
                await direct.execute_command(*kill)
                await direct.aclose()
        else:
            await b.services.redis.execute_command(*kill)
        await a.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(posted[0])}, writer)
        assert [int(t["id"]) for t in await home(b, reader)] == [posted[1]]
        for _ in range(100):
            if b.services.caches.invalidations.live:
                break
            await asyncio.sleep(0.02)
        assert b.services.caches.tweets.get(posted[0]) in (MISSING, None)  # None: known gone
        assert [int(t["id"]) for t in await warm(b, reader)] == [posted[1]]


async def test_redis_losing_its_data_never_serves_a_deleted_tweet(stack):
    vk = EmbeddedValkey(stack.root / "readcache-valkey")
    url = vk.start()
    try:
        async with api_with(stack, redis_url=url) as a, api_with(stack, redis_url=url) as b:
            writer, _, reader, posted = await reader_of(a, 2)
            await warm(b, reader)
            counter = b.services.caches.invalidations.seq
            vk.kill()
            for f in vk.data_dir.rglob("appendonlydir/*"):
                f.unlink()
            vk.start()
            await a.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(posted[0])}, writer)
            await drain(a.services)
            assert [int(t["id"]) for t in await home(b, reader)] == [posted[1]]
            for _ in range(250):  # the listener sees the restart on its own schedule
                if b.services.caches.invalidations.seq != counter:
                    break
                await asyncio.sleep(0.02)
            assert b.services.caches.invalidations.seq != counter
    finally:
        vk.stop()


async def test_cached_and_uncached_processes_answer_alike(stack):
    """The twin: random operations through a cached and an uncached process, reads compared."""
    rng = random.Random(7)
    async with api_with(stack) as cached, api_with(stack, cache_mb=0) as plain:
        apis = (cached, plain)
        users = [await cached.sign_up("t") for _ in range(8)]
        mine: dict[int, list[int]] = {u: [] for _, u, _ in users}
        token = {u: t for t, u, _ in users}
        for step in range(160):
            _t, uid, _ = rng.choice(users)
            api = rng.choice(apis)
            op = rng.random()
            if op < 0.4:
                mine[uid].append(await api.post(token[uid], f"{step}"))
            elif op < 0.6:
                other = rng.choice(users)[1]
                if other != uid:
                    await api.follow(token[uid], other)
            elif op < 0.7:
                other = rng.choice(users)[1]
                if other != uid:
                    await api.unfollow(token[uid], other)
            elif op < 0.78 and mine[uid]:
                victim = mine[uid].pop(rng.randrange(len(mine[uid])))
                await api.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(victim)},
                             token[uid])
            elif op < 0.9:
                await drain(cached.services)
            else:
                _t, other, handle = rng.choice(users)
                answers = [await x.ok(USER, {"h": handle}, token[uid]) for x in apis]
                assert answers[0] == answers[1], step
            answers = [await home(x, token[uid]) for x in apis]
            assert answers[0] == answers[1], step
        assert cached.services.caches.tweets._hits._value.get() > 0
