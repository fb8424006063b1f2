"""Live home timelines over GraphQL WebSockets, with the third-party `gql` client."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from storage import keys

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOME = gql("""subscription($s: ID) { homeTimeline(sinceId: $s) {
  kind tweetId tweet { id text author { handle } } } }""")
USER = gql("""subscription($h: String!) { userTweets(handle: $h) { kind tweetId tweet { text } } }""")


class Http:
    def __init__(self, base: str) -> None:
        self.base = base

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as c:
            r = await c.post("/graphql", json={"query": query, "variables": variables or {}},
                             headers=headers)
        body = r.json()
        assert "errors" not in body, body
        return body["data"]

    async def sign_up(self, prefix="l") -> tuple[str, str, str]:
        handle = f"{prefix}{secrets.token_hex(4)}"[:15]
        d = await self.gql('mutation($h:String!){signUp(handle:$h,password:"password123")'
                           "{token user{id}}}", {"h": handle})
        return d["signUp"]["token"], d["signUp"]["user"]["id"], handle

    async def post(self, token: str, text: str) -> str:
        d = await self.gql("mutation($t:String!){postTweet(text:$t){id}}", {"t": text}, token)
        return d["postTweet"]["id"]

    async def follow(self, token: str, user_id: str) -> None:
        await self.gql("mutation($u:ID!){follow(userId:$u){id}}", {"u": user_id}, token)


async def present(live, key: str, seconds: float = 10.0) -> None:
    """Wait until a live session has marked itself present (it then receives everything)."""
    from runtime.container import redis_client
    from storage.redis_client import close as close_redis

    redis = redis_client(live.redis_url)
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not await redis.exists(key):
            assert asyncio.get_running_loop().time() < deadline, f"{key} never appeared"
            await asyncio.sleep(0.05)
    finally:
        await close_redis(redis)


def home_present(user_id: str) -> str:
    return keys.presence(int(user_id))


def transport(live, i: int, token: str | None) -> WebsocketsTransport:
    params = {"authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(url=live.ws(i), init_payload=params)


async def collect(session, document, variables, want: int, seconds: float = 15.0) -> list:
    out = []
    request = GraphQLRequest(document, variable_values=variables)

    async def run():
        async for result in session.subscribe(request):
            out.append(result)
            if len(out) >= want:
                return

    await asyncio.wait_for(run(), seconds)
    return out


async def test_tweets_reach_a_subscriber_on_another_process(live):
    a = Http(live.apis[0])  # posts on process 0; the subscriber is on process 1
    reader, rid, _ = await a.sign_up("reader")
    writer, wid, _ = await a.sign_up("writer")
    await a.follow(reader, wid)
    async with Client(transport=transport(live, 1, reader)) as session:
        task = asyncio.create_task(collect(session, HOME, {}, 2))
        await present(live, home_present(rid))
        await asyncio.sleep(0.2)
        await a.post(writer, "from the other process")
        await a.post(reader, "my own")
        events = await task
    kinds = [e["homeTimeline"]["kind"] for e in events]
    texts = {e["homeTimeline"]["tweet"]["text"] for e in events}
    assert kinds == ["TWEET_ADDED", "TWEET_ADDED"]
    assert texts == {"from the other process", "my own"}


async def test_since_id_is_gapless_and_deletes_arrive(live):
    a = Http(live.apis[0])
    reader, rid, _ = await a.sign_up()
    writer, wid, _ = await a.sign_up()
    await a.follow(reader, wid)
    first = await a.post(writer, "t0")
    missed = [await a.post(writer, f"t{i}") for i in (1, 2)]
    await asyncio.sleep(1.0)
    async with Client(transport=transport(live, 1, reader)) as session:
        task = asyncio.create_task(collect(session, HOME, {"s": first}, 4))
        await present(live, home_present(rid))
        fresh = await a.post(writer, "t3")
        await a.gql("mutation($i:ID!){deleteTweet(id:$i)}", {"i": missed[0]}, writer)
        events = [e["homeTimeline"] for e in await task]
    assert [(e["kind"], e["tweetId"]) for e in events] == [
        ("TWEET_ADDED", missed[0]), ("TWEET_ADDED", missed[1]), ("TWEET_ADDED", fresh),
        ("TWEET_DELETED", missed[0]),
    ]


async def test_celebrity_tweets_arrive_live(live):
    a = Http(live.apis[0])
    celeb, cid, _ = await a.sign_up("celeb")
    fans = [await a.sign_up("fan") for _ in range(5)]
    for t, _, _ in fans:
        await a.follow(t, cid)
    async with Client(transport=transport(live, 1, fans[0][0])) as session:
        task = asyncio.create_task(collect(session, HOME, {}, 1))
        await present(live, keys.author_presence(int(cid)))
        tid = await a.post(celeb, "hello fans")
        (event,) = await task
    assert event["homeTimeline"]["tweetId"] == tid


async def test_user_tweets_is_public(live):
    a = Http(live.apis[0])
    author, aid, handle = await a.sign_up()
    async with Client(transport=transport(live, 0, None)) as session:
        task = asyncio.create_task(collect(session, USER, {"h": handle}, 1))
        await present(live, keys.author_presence(int(aid)))
        await a.post(author, "anyone may watch")
        (event,) = await task
    assert event["userTweets"]["tweet"]["text"] == "anyone may watch"


async def test_home_timeline_needs_a_viewer(live):
    async with Client(transport=transport(live, 0, None)) as session:
        with pytest.raises(TransportQueryError) as e:
            await collect(session, HOME, {}, 1, seconds=5)
    assert e.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    with pytest.raises(Exception):  # noqa: B017 - the server closes the socket (4403)
        async with Client(transport=transport(live, 0, "not-a-token")) as session:
            await collect(session, HOME, {}, 1, seconds=5)


async def test_redis_restart_mid_subscription_loses_nothing(live):
    """Refetching with sinceId on RESYNC, a client misses nothing across a Redis restart."""
    a = Http(live.apis[0])
    reader, rid, _ = await a.sign_up()
    writer, wid, _ = await a.sign_up()
    await a.follow(reader, wid)
    got: set[str] = set()
    resyncs = 0
    last_seen: str | None = None

    async def follow_stream(session):
        nonlocal resyncs, last_seen
        async for result in session.subscribe(GraphQLRequest(HOME, variable_values={})):
            event = result["homeTimeline"]
            if event["kind"] == "TWEET_ADDED":
                got.add(event["tweetId"])
                last_seen = max(last_seen or "0", event["tweetId"], key=int)
            elif event["kind"] == "RESYNC":
                resyncs += 1
                d = await a.gql("query($s:ID){homeTimeline(first:100,sinceId:$s){"
                                "edges{node{id}}}}", {"s": last_seen}, reader)
                got.update(e["node"]["id"] for e in d["homeTimeline"]["edges"])

    async with Client(transport=transport(live, 1, reader)) as session:
        task = asyncio.create_task(follow_stream(session))
        await present(live, home_present(rid))
        await asyncio.sleep(0.2)
        posted = [await a.post(writer, "before")]
        await asyncio.sleep(0.5)
        live.valkey.stop()
        posted += [await a.post(writer, f"during {i}") for i in range(2)]
        live.valkey.start()
        await asyncio.sleep(1.0)
        posted.append(await a.post(writer, "after"))
        deadline = asyncio.get_running_loop().time() + 30
        while not set(posted) <= got and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        task.cancel()
    assert set(posted) <= got, (posted, got)
    assert resyncs >= 1


async def test_legacy_graphql_ws_protocol_still_works(live):
    a = Http(live.apis[0])
    reader, rid, _ = await a.sign_up("old")
    writer, wid, _ = await a.sign_up("w")
    await a.follow(reader, wid)
    legacy = WebsocketsTransport(
        url=live.ws(0), init_payload={"authorization": f"Bearer {reader}"},
        subprotocols=[WebsocketsTransport.APOLLO_SUBPROTOCOL],
    )
    async with Client(transport=legacy) as session:
        task = asyncio.create_task(collect(session, HOME, {}, 1))
        await present(live, home_present(rid))
        await asyncio.sleep(0.2)
        tid = await a.post(writer, "old protocol")
        (event,) = await task
    assert event["homeTimeline"]["tweetId"] == tid


async def test_viewer_dependent_fields_are_resolved_per_viewer(live):
    """A viewer-dependent field is never shared between two sessions' selections."""
    a = Http(live.apis[0])
    reader, rid, _ = await a.sign_up("vr")
    writer, wid, _ = await a.sign_up("vw")
    await a.follow(reader, wid)
    doc = gql("""subscription { homeTimeline { kind tweetId
        tweet { text author { id viewerIsFollowing } } } }""")
    async with Client(transport=transport(live, 1, reader)) as rs, \
            Client(transport=transport(live, 1, writer)) as ws:
        got_r = asyncio.create_task(collect(rs, doc, {}, 1))
        got_w = asyncio.create_task(collect(ws, doc, {}, 1))
        await present(live, home_present(rid))
        await present(live, home_present(wid))
        await asyncio.sleep(0.2)
        tid = await a.post(writer, "who follows whom")
        (r,), (w,) = await got_r, await got_w
    assert r["homeTimeline"]["tweetId"] == w["homeTimeline"]["tweetId"] == tid
    assert r["homeTimeline"]["tweet"]["author"]["viewerIsFollowing"] is True
    assert w["homeTimeline"]["tweet"]["author"]["viewerIsFollowing"] is False
