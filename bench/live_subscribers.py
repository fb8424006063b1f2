"""Live delivery with thousands of WebSocket subscribers on one API process:
`python -m bench.live_subscribers --subscribers 2000`.

Seeds one author followed by every subscriber, opens the subscriptions (raw
graphql-transport-ws over `websockets`), posts tweets through the API one a second, and
measures post-to-delivery latency (from the tweet's Snowflake timestamp to its arrival at
each subscriber) and the API process's memory per connection. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.seed import author_with_followers
from core.ids import id_timestamp_ms

ROOT = Path(__file__).resolve().parent.parent
# As `make dev` runs it; BENCH_UVICORN_ARGS overrides (e.g. "--ws-per-message-deflate true").
EXTRA_UVICORN = (
    os.environ.get("BENCH_UVICORN_ARGS") or "--ws-per-message-deflate false"
).split()
SUB = "subscription { homeTimeline { kind tweetId } }"


async def seed(n: int) -> tuple[str, list[str], list[int]]:
    from runtime.container import open_services
    from runtime.settings import load

    svc = await open_services(load())
    try:
        author, ids = await author_with_followers(svc, n)
        token = svc.accounts.token_for(type("U", (), {"id": author}))
        return token, [svc.accounts.token_for(type("U", (), {"id": u})) for u in ids], ids
    finally:
        await svc.close()


async def subscriber(url: str, token: str, ready: asyncio.Event, arrivals: list,
                     stop: asyncio.Event, counter: list) -> None:
    import websockets

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                  max_queue=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUB}}))
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now_ms = time.time() * 1000
            msg = json.loads(raw)
            if msg.get("type") == "next":
                event = msg["payload"]["data"]["homeTimeline"]
                if event["kind"] == "TWEET_ADDED":
                    arrivals.append(now_ms - id_timestamp_ms(int(event["tweetId"])))
                elif event["kind"] == "RESYNC":
                    counter[2] += 1  # a real client would refetch here


async def all_present(user_ids: list[int], seconds: float = 300) -> None:
    from runtime.container import redis_client
    from storage import live

    redis = redis_client(os.environ["CHIRP_REDIS_URL"])
    try:
        deadline = time.monotonic() + seconds
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                for u in user_ids:
                    pipe.exists(live.presence_key(u))
                if all(await pipe.execute()):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("not every subscription became present")
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


async def run(api: str, author_token: str, tokens: list[str], user_ids: list[int],
              tweets: int, pid: int) -> dict:
    ws_url = api.replace("http://", "ws://") + "/graphql"
    proc = psutil.Process(pid)
    rss0 = proc.memory_info().rss
    ready, stop = asyncio.Event(), asyncio.Event()
    arrivals: list[float] = []
    counter = [0, len(tokens), 0]  # subscribed, wanted, RESYNCs received
    tasks = []
    for i, t in enumerate(tokens):
        tasks.append(asyncio.create_task(subscriber(ws_url, t, ready, arrivals, stop, counter)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not stampede the accept queue
    await asyncio.wait_for(ready.wait(), 300)
    await all_present(user_ids)  # every session set up: from here nothing may be missed
    await asyncio.sleep(1)
    rss1 = proc.memory_info().rss
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        for i in range(tweets):
            r = await client.post("/graphql", json={
                "query": "mutation($t:String!){postTweet(text:$t){id}}",
                "variables": {"t": f"live {i}"}},
                headers={"authorization": f"Bearer {author_token}"})
            assert "errors" not in r.json(), r.text
            await asyncio.sleep(1.0)
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    arrivals.sort()
    expected = tweets * len(tokens)

    def pct(p: float) -> float:
        return round(arrivals[min(len(arrivals) - 1, int(p * len(arrivals)))], 1)

    return {
        "subscribers": len(tokens), "tweets": tweets, "deliveries": len(arrivals),
        "expected": expected, "resyncs": counter[2],
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(arrivals[-1], 1),
        "api_rss_bytes_per_connection": round((rss1 - rss0) / len(tokens)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--tweets", type=int, default=10)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    from deploy.local.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="chirp-live-") as tmp, LocalStack(Path(tmp)) as st:
        env = dict(os.environ, CHIRP_POSTGRES_URL=st.postgres_url, CHIRP_REDIS_URL=st.redis_url,
                   CHIRP_DATA_DIR=tmp, CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
                   CHIRP_CELEBRITY_THRESHOLD=str(10**9), CHIRP_PG_POOL_SIZE="20")
        os.environ.update(env)
        author_token, tokens, user_ids = asyncio.run(seed(args.subscribers))
        procs = [
            subprocess.Popen([sys.executable, "-m", "uvicorn", "app:create_app", "--factory",
                              "--port", str(args.port), "--log-level", "warning",
                              "--backlog", "4096", *EXTRA_UVICORN], cwd=ROOT, env=env),
            subprocess.Popen([sys.executable, "-m", "workers.fanout"], cwd=ROOT, env=env,
                             stderr=subprocess.DEVNULL),
        ]
        try:
            time.sleep(3)
            api = f"http://127.0.0.1:{args.port}"
            print(json.dumps(asyncio.run(run(api, author_token, tokens, user_ids, args.tweets,
                                             procs[0].pid))))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
