"""WebSocket answers: errors as over HTTP, size limit, origins, logged-out tokens."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.live.test_subscriptions import Http

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
