"""The floor under live delivery: `uvicorn bench.live_floor:app` (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio

import orjson

from core.ids import CHIRP_EPOCH_MS, TIMESTAMP_SHIFT, wall_clock_ms

YIELD_EVERY = 256
_sockets: dict[int, tuple] = {}  # id(send) -> (send, subscription id)
_sequence = 0


def _next_id() -> int:
    global _sequence
    _sequence = (_sequence + 1) & 0xFFF
    return ((wall_clock_ms() - CHIRP_EPOCH_MS) << TIMESTAMP_SHIFT) | _sequence


async def _websocket(receive, send) -> None:
    key = id(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
            elif message["type"] == "websocket.receive":
                frame = orjson.loads(message.get("text") or message.get("bytes") or b"{}")
                if frame.get("type") == "connection_init":
                    await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                elif frame.get("type") == "subscribe":
                    _sockets[key] = (send, frame["id"])
            elif message["type"] == "websocket.disconnect":
                return
    finally:
        _sockets.pop(key, None)


async def _deliver(tweet_id: int) -> None:
    texts: dict[str, str] = {}  # one frame per subscription id, encoded once, as Chirp does
    for i, (send, sub) in enumerate(list(_sockets.values()), 1):
        text = texts.get(sub)
        if text is None:
            text = texts[sub] = orjson.dumps({
                "id": sub, "type": "next", "payload": {"data": {"homeTimeline": {
                    "kind": "TWEET_ADDED", "tweetId": str(tweet_id)}}}}).decode()
        try:
            await send({"type": "websocket.send", "text": text})
        except Exception:  # a socket that went away
            continue
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)


_background: set[asyncio.Task] = set()


async def _http(scope, receive, send) -> None:
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/readyz":
        body = b'{"ready":true}'
    else:  # a post: answered at once, delivered after, as Chirp does
        tweet_id = _next_id()
        task = asyncio.get_running_loop().create_task(_deliver(tweet_id))
        _background.add(task)
        task.add_done_callback(_background.discard)
        body = orjson.dumps({"data": {"postTweet": {"id": str(tweet_id)}}})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await _websocket(receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
