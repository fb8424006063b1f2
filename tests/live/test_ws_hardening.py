"""WebSocket answers: errors as over HTTP, size limit, origins, logged-out tokens."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
import websockets

from storage import keys
from tests.live.conftest import api_process
from tests.live.test_subscriptions import Http, present

pytestmark = pytest.mark.asyncio(loop_scope="session")

BAD = "{homeTimeline(first:1000){edges{cursor}}}"  # the resolver refuses the page size
UNKNOWN = "{nope}"  # validation


async def http_errors(base: str, query: str, token: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post("/graphql", json={"query": query},
                         headers={"authorization": f"Bearer {token}"})
    return r.json()["errors"]


async def first_answer(url: str, token: str, query: str, protocol: str) -> dict:
    """The first message (keep-alives aside) answering a subscription over `protocol`."""
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    async with websockets.connect(url, subprotocols=[protocol]) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": query}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] != "ka":
                return message


async def test_websocket_errors_match_http(live):
    http = Http(live.apis[0])
    token, _, _ = await http.sign_up("w")
    for query in (BAD, UNKNOWN):
        expected = await http_errors(live.apis[0], query, token)
        assert all("code" in e["extensions"] for e in expected)
        modern = await first_answer(live.ws(0), token, query, "graphql-transport-ws")
        errors = modern["payload"]["errors"] if modern["type"] == "next" else modern["payload"]
        assert errors == expected, (query, modern)
        # The legacy protocol runs subscriptions only: a query is the client's error.
        legacy = await first_answer(live.ws(1), token, query, "graphql-ws")
        assert legacy["type"] == "error" and \
            legacy["payload"]["extensions"]["code"] == "BAD_USER_INPUT", legacy
    for query in ("subscription{nope}", 'subscription{userTweets(handle:"a"){nope}}'):
        legacy = await first_answer(live.ws(1), token, query, "graphql-ws")
        payload = legacy["payload"]
        errors = payload.get("errors", [payload])
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], legacy
        modern = await first_answer(live.ws(0), token, query, "graphql-transport-ws")
        assert modern["payload"] == errors, modern


async def test_websocket_message_size_and_origin(live):
    async with websockets.connect(live.ws(0), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"x": "y" * 100_000}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1009
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(live.ws(0), subprotocols=["graphql-transport-ws"],
                                      origin="https://evil.example.com"):
            pass
    port = live.apis[0].rsplit(":", 1)[1]
    async with websockets.connect(live.ws(0), subprotocols=["graphql-transport-ws"],
                                  origin=f"http://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_subscription_ends_when_its_token_is_logged_out(live):
    http = Http(live.apis[0])
    token, _, _ = await http.sign_up("r")
    async with websockets.connect(live.ws(1), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {
            "query": "subscription{homeTimeline{kind tweetId}}"}}))
        await asyncio.sleep(0.5)
        await http.gql("mutation{logOut}", token=token)  # on the other process
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        while message["type"] == "next" and "errors" not in message["payload"]:
            message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert message["type"] == "next", message
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == \
            ["UNAUTHENTICATED"], message
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "complete"


async def _connected(url: str, token: str, protocol: str):
    ws = await websockets.connect(url, subprotocols=[protocol])
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def _frame(ws, op: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message.get("id") == op:
            return message


async def test_time_budget_over_both_websocket_protocols(stack, live):
    """CHIRP_QUERY_TIMEOUT_MS bounds WebSocket queries and events as over HTTP."""
    slow = "{viewer{followers(first:5){edges{node{id}}}}}"
    event = ("subscription($h:String!){userTweets(handle:$h){kind tweetId "
             "tweet{author{followers(first:5){edges{node{id}}}}}}}")
    with api_process(stack, live.redis_url, CHIRP_QUERY_TIMEOUT_MS="300") as base:
        http = Http(base)
        author_token, author_id, handle = await http.sign_up("ta")
        token, _, _ = await http.sign_up("tv")
        _, other, _ = await http.sign_up("to")
        ws_url = base.replace("http://", "ws://") + "/graphql"
        modern = await _connected(ws_url, token, "graphql-transport-ws")
        legacy = await _connected(ws_url, token, "graphql-ws")
        try:
            await modern.send(json.dumps({"id": "s", "type": "subscribe", "payload": {
                "query": event, "variables": {"h": handle}}}))
            await legacy.send(json.dumps({"id": "s", "type": "start", "payload": {
                "query": event, "variables": {"h": handle}}}))
            await present(live, keys.author_presence(int(author_id)))
            await asyncio.sleep(0.5)  # both sessions have joined the author's channel
            conn = await asyncpg.connect(stack.postgres_url)
            try:
                async with conn.transaction():
                    await conn.execute("LOCK TABLE follows IN ACCESS EXCLUSIVE MODE")
                    expected = await http_errors(base, slow, token)
                    assert [e["extensions"] for e in expected] == \
                        [{"code": "QUERY_TOO_COMPLEX", "timeoutMs": 300}], expected
                    await modern.send(json.dumps({"id": "q", "type": "subscribe",
                                                  "payload": {"query": slow}}))
                    answer = await _frame(modern, "q")
                    assert answer["type"] == "next", answer
                    assert answer["payload"]["data"] is None
                    assert answer["payload"]["errors"] == expected, answer
                    assert (await _frame(modern, "q"))["type"] == "complete"
                    # each event's execution: the same error, and the stream goes on
                    await http.post(author_token, "under the lock")
                    for ws, kind in ((modern, "next"), (legacy, "data")):
                        frame = await _frame(ws, "s")
                        assert frame["type"] == kind, frame
                        assert frame["payload"]["data"] is None
                        assert frame["payload"]["errors"] == expected, frame
                    # a mutation is never cut mid-write: it waits for the lock
                    await modern.send(json.dumps({"id": "m", "type": "subscribe", "payload": {
                        "query": "mutation($u:ID!){follow(userId:$u){id}}",
                        "variables": {"u": other}}}))
                    follow = asyncio.create_task(_frame(modern, "m"))
                    await asyncio.sleep(0.8)
                    assert not follow.done()
            finally:
                await conn.close()
            done = await follow
            assert done["payload"]["data"] == {"follow": {"id": other}}, done
            tweet = await http.post(author_token, "after the lock")
            for ws in (modern, legacy):
                frame = await _frame(ws, "s")
                while frame["payload"]["data"]["userTweets"]["tweetId"] != tweet:
                    frame = await _frame(ws, "s")
                assert "errors" not in frame["payload"], frame
        finally:
            await modern.close()
            await legacy.close()
