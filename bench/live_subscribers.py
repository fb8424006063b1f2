"""Live delivery to thousands of WebSocket subscribers (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
# As `make dev` runs it; BENCH_UVICORN_ARGS overrides (e.g. "--ws-per-message-deflate true").
EXTRA_UVICORN = (
    os.environ.get("BENCH_UVICORN_ARGS") or "--ws-per-message-deflate false"
).split()
SUB = "subscription { homeTimeline { kind tweetId } }"
CONNECT_LIMIT_S = 600  # every subscription set up and present within this
SETUP_PARALLEL = 64  # handshakes in flight per client process


class _Conn(asyncio.Protocol):
    """One graphql-transport-ws subscription over a raw WebSocket: handshake, then frames
    parsed by hand (server frames are unmasked; ours must be masked)."""

    def __init__(self, client: _Client, host: str, port: int, token: str) -> None:
        self.client, self.host, self.port, self.token = client, host, port, token
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.acked = False
        self.seen: set[int] = set()
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
            "\r\n".encode()
        )

    def connection_lost(self, exc) -> None:
        self.client.closed += 1
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed during setup: {exc}"))

    def send(self, payload: bytes, opcode: int = 1) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        full = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.done.set_exception(ConnectionError(buf[:200].decode("latin-1")))
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.send(orjson.dumps({"type": "connection_init",
                                    "payload": {"authorization": f"Bearer {self.token}"}}))
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if b1 == 126:
                if size - pos < 4:
                    break
                b1, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif b1 == 127:
                if size - pos < 10:
                    break
                b1, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if size - pos < head + b1:
                break
            payload = buf[pos + head:pos + head + b1]
            pos += head + b1
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:
                self.send(payload, 10)  # pong: uvicorn drops sockets that do not answer
            elif opcode == 8:
                self.transport.close()
        self.buf = buf[pos:]

    def on_text(self, payload: bytes, now: float) -> None:
        msg = orjson.loads(payload)
        kind = msg.get("type")
        if kind == "next":
            event = msg["payload"]["data"]["homeTimeline"]
            if event["kind"] == "TWEET_ADDED":
                tweet = int(event["tweetId"])
                if tweet in self.seen:
                    self.client.duplicates += 1
                    return
                self.seen.add(tweet)
                self.client.arrivals.setdefault(tweet, []).append(now)
                self.client.count += 1
                if self.client.count == self.client.expect:
                    print("complete", flush=True)
            elif event["kind"] == "RESYNC":
                self.client.resyncs += 1  # a real client would refetch here
        elif kind == "connection_ack" and not self.acked:
            self.acked = True
            self.send(orjson.dumps({"id": "1", "type": "subscribe",
                                    "payload": {"query": self.client.query}}))
            self.done.set_result(None)
        elif kind in ("error", "complete"):
            self.client.errors += 1


class _Client:
    def __init__(self, query: str, expect: int) -> None:
        self.query = query
        self.expect = expect
        self.count = 0
        self.arrivals: dict[int, list[float]] = {}
        self.resyncs = self.duplicates = self.errors = self.closed = 0
        self.conns: list[_Conn] = []


async def _client_main() -> None:
    """A client process: config on stdin; `ready`, `go`, `complete`, `stop`, then results."""
    config = json.loads(sys.stdin.readline())
    loop = asyncio.get_running_loop()
    client = _Client(config["query"], config["expect"])
    gate = asyncio.Semaphore(SETUP_PARALLEL)

    async def open_one(token: str) -> None:
        async with gate:
            _t, conn = await loop.create_connection(
                lambda: _Conn(client, config["host"], config["port"], token),
                config["host"], config["port"],
            )
            client.conns.append(conn)
            await asyncio.wait_for(conn.done, 120)

    await asyncio.gather(*(open_one(t) for t in config["tokens"]))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    assert (await reader.readline()).strip() == b"go"
    cpu0 = time.process_time()
    assert (await reader.readline()).strip() == b"stop"
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "arrivals": {str(k): v for k, v in client.arrivals.items()},
        "resyncs": client.resyncs, "duplicates": client.duplicates, "errors": client.errors,
        "closed": client.closed, "cpu_s": cpu,
    }), flush=True)
    for conn in client.conns:
        conn.transport.close()


async def seed(n: int) -> tuple[str, list[str], list[int]]:
    from bench.seed import author_with_followers
    from runtime.container import open_services
    from runtime.settings import load

    svc = await open_services(load())
    try:
        author, ids = await author_with_followers(svc, n)
        token = svc.accounts.token_for(type("U", (), {"id": author}))
        return token, [svc.accounts.token_for(type("U", (), {"id": u})) for u in ids], ids
    finally:
        await svc.close()


async def forget_presence(user_ids: list[int]) -> None:
    """An earlier round's marks, so that `all_present` waits for this round's sessions."""
    from runtime.container import redis_client
    from storage import keys

    redis = redis_client(os.environ["CHIRP_REDIS_URL"])
    try:
        await redis.delete(*(keys.presence(u) for u in user_ids))
    finally:
        await redis.aclose()


async def all_present(user_ids: list[int], seconds: float) -> None:
    from runtime.container import redis_client
    from storage import keys

    redis = redis_client(os.environ["CHIRP_REDIS_URL"])
    try:
        deadline = time.monotonic() + seconds
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                for u in user_ids:
                    pipe.exists(keys.presence(u))
                if all(await pipe.execute()):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("not every subscription became present")
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


async def _line(proc, want: bytes) -> bytes:
    """The next line of a client that starts with `want`."""
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise EOFError("a client process exited")
        if line.startswith(want):
            return line


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def run(args, ports: list[int], author_token: str, tokens: list[str],
              user_ids: list[int], apis: list[psutil.Process],
              worker: psutil.Process | None) -> dict:
    deadline = time.monotonic() + CONNECT_LIMIT_S
    rss0 = sum(a.memory_info().rss for a in apis)
    if worker is not None:  # an earlier round's sessions are gone; so must their marks be
        await forget_presence(user_ids)
    shards = [tokens[i::args.clients] for i in range(args.clients)]
    clients = []
    for i, shard in enumerate(shards):
        api_port = ports[i % len(ports)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.live_subscribers", "--client", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 30,
        )
        proc.stdin.write(json.dumps({"host": "127.0.0.1", "port": api_port, "tokens": shard,
                                     "query": SUB, "expect": len(shard) * args.tweets}
                                    ).encode() + b"\n")
        await proc.stdin.drain()
        clients.append(proc)
    try:
        for proc in clients:
            line = await asyncio.wait_for(proc.stdout.readline(),
                                          max(1.0, deadline - time.monotonic()))
            assert line.strip() == b"ready", line
        setup_s = CONNECT_LIMIT_S - (deadline - time.monotonic())
        # every session set up: from here nothing may be missed
        if worker is not None:  # the floor keeps no presence: its sockets are all it has
            await all_present(user_ids, max(1.0, deadline - time.monotonic()))
        await asyncio.sleep(2)
        rss1 = sum(a.memory_info().rss for a in apis)
        for proc in clients:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        api_cpu0, worker_cpu0 = sum(map(_cpu, apis)), _cpu(worker) if worker else 0.0
        api_sys0 = sum(a.cpu_times().system for a in apis)
        window = [time.time()]
        spy = await _profile(args, apis[0].pid)
        posted: dict[int, float] = {}
        snowflake_lag: list[float] = []
        from core.ids import id_timestamp_ms

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}",
                                     timeout=30) as http:
            for i in range(args.tweets):
                t0 = time.time()
                r = await http.post("/graphql", json={
                    "query": "mutation($t:String!){postTweet(text:$t){id}}",
                    "variables": {"t": f"live {i}"}},
                    headers={"authorization": f"Bearer {author_token}"})
                body = r.json()
                assert "errors" not in body, r.text
                tid = int(body["data"]["postTweet"]["id"])
                posted[tid] = t0
                snowflake_lag.append(id_timestamp_ms(tid) - t0 * 1000)
                await asyncio.sleep(max(0.0, t0 + args.interval - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(_line(p, b"complete") for p in clients)),
                                   args.drain)
        await asyncio.sleep(0.5)  # a late duplicate would show
        api_cpu = sum(map(_cpu, apis)) - api_cpu0
        api_sys = sum(a.cpu_times().system for a in apis) - api_sys0
        worker_cpu = (_cpu(worker) if worker else 0.0) - worker_cpu0
        window.append(time.time())
        if spy is not None:
            spy.send_signal(2)  # the profiler writes its profile on SIGINT
            await spy.wait()
        results = []
        for proc in clients:
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
        for proc in clients:
            results.append(json.loads(await asyncio.wait_for(_line(proc, b"{"), 60)))
    finally:
        for proc in clients:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    latencies = sorted(
        (t - posted[int(tid)]) * 1000
        for r in results for tid, times in r["arrivals"].items() if int(tid) in posted
        for t in times
    )
    expected = args.tweets * len(tokens)
    n = len(latencies)
    # per tweet: its first and its last subscriber's latency
    first, last = [], []
    for tid, t0 in posted.items():
        times = [t for r in results for t in r["arrivals"].get(str(tid), ())]
        if times:
            first.append((min(times) - t0) * 1000)
            last.append((max(times) - t0) * 1000)
    first.sort()
    last.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(n - 1, int(p * n))], 1) if n else None

    client_cpu = sum(r["cpu_s"] for r in results)
    return {
        "subscribers": len(tokens), "api_processes": len(apis), "tweets": args.tweets,
        "deliveries": n,
        "expected": expected, "resyncs": sum(r["resyncs"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1) if n else None,
        "first_delivery_ms": [round(first[0], 1), round(first[len(first) // 2], 1),
                              round(first[-1], 1)] if first else None,  # min, median, max
        "last_delivery_ms": [round(last[0], 1), round(last[len(last) // 2], 1),
                             round(last[-1], 1)] if last else None,
        "setup_s": round(setup_s, 1),
        "api_rss_bytes_per_connection": round((rss1 - rss0) / len(tokens)),
        "api_cpu_us_per_delivery": round(api_cpu * 1e6 / max(1, n), 1),
        "api_system_cpu_us_per_delivery": round(api_sys * 1e6 / max(1, n), 1),  # kernel's part
        "deliveries_per_api_cpu_s": round(n / max(api_cpu, 1e-9) / len(apis)),
        "worker_cpu_ms_per_tweet": round(worker_cpu * 1e3 / args.tweets, 1),
        "client_cpu_us_per_delivery": round(client_cpu * 1e6 / max(1, n), 1),
        "post_to_id_ms_median": round(sorted(snowflake_lag)[len(snowflake_lag) // 2], 1),
        "window": [round(t, 3) for t in window],  # epoch seconds of the measured window
    }


async def _profile(args, pid: int):
    """A sampling profiler on the API process during the posting window: py-spy into a
    speedscope file, or with a .data path `perf record` (native and kernel stacks); neither
    is a project dependency."""
    if not args.profile:
        return None
    if args.profile.endswith(".data"):
        command = ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", args.profile]
    else:
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                   "-o", args.profile, "-f", "speedscope", "-r", "250",
                   *os.environ.get("BENCH_PYSPY_ARGS", "").split(),  # e.g. "--native"
                   "-d", str(int(args.tweets * args.interval + args.drain + 30))]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def bench_root(args, root: Path) -> dict:
    """Chirp and the floor side by side, in alternating rounds with the same clients: one
    round of each is at the mercy of whatever else the machine does, so the ratio reported
    is the median of the rounds' ratios, with that round's figures."""
    from deploy.local.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="chirp-live-") as tmp, LocalStack(Path(tmp)) as st:
        env = dict(os.environ, CHIRP_POSTGRES_URL=st.postgres_url, CHIRP_REDIS_URL=st.redis_url,
                   CHIRP_DATA_DIR=tmp, CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
                   CHIRP_CELEBRITY_THRESHOLD=str(10**9), CHIRP_PG_POOL_SIZE="20")
        os.environ.update(env)
        author_token, tokens, user_ids = asyncio.run(seed(args.subscribers))
        ports = [args.port + i for i in range(args.apis)]
        floor_port = ports[-1] + 1
        worker = subprocess.Popen([sys.executable, "-m", "workers.fanout"], cwd=root, env=env,
                                  stderr=subprocess.DEVNULL)
        apis = [subprocess.Popen([sys.executable, "-m", "uvicorn", "app:create_app", "--factory",
                                  "--port", str(port), "--log-level", "warning",
                                  "--backlog", "4096", *EXTRA_UVICORN], cwd=root, env=env)
                for port in ports]
        floor = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.live_floor:app",
                                  "--port", str(floor_port), "--log-level", "warning",
                                  "--backlog", "4096", *EXTRA_UVICORN], cwd=ROOT, env=env)
        profile = args.profile
        rounds: list[tuple[dict, dict]] = []
        try:
            for port, proc in [*zip(ports, apis, strict=True), (floor_port, floor)]:
                _wait_ready(port, proc)
            for i in range(args.rounds):
                # py-spy the first round only, the floor's profile beside Chirp's
                args.profile = profile if i == 0 else None
                chirp = asyncio.run(run(args, ports, author_token, tokens, user_ids,
                                        [psutil.Process(p.pid) for p in apis],
                                        psutil.Process(worker.pid)))
                if profile and i == 0:
                    args.profile = str(Path(profile).with_suffix(".floor" + Path(profile).suffix))
                low = asyncio.run(run(args, [floor_port], author_token, tokens, user_ids,
                                      [psutil.Process(floor.pid)], None))
                rounds.append((chirp, low))
        finally:
            _stop([worker, *apis, floor])
        ratios = [c["deliveries_per_api_cpu_s"] / f["deliveries_per_api_cpu_s"]
                  for c, f in rounds]
        middle = sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]
        out, low = rounds[middle]
        # memory per connection from the first round: later ones reuse what it freed
        out["api_rss_bytes_per_connection"] = rounds[0][0]["api_rss_bytes_per_connection"]
        low["api_rss_bytes_per_connection"] = rounds[0][1]["api_rss_bytes_per_connection"]
        out["root"] = str(root)
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        out["floor"] = low
        out["live_deliveries_vs_floor_ratio"] = round(ratios[middle], 3)
        out["p99_ms_chirp_and_floor"] = [out["p99_ms"], low["p99_ms"]]
        out["rounds"] = [{"ratio": round(r, 3),
                          "api_cpu_us_per_delivery_chirp_and_floor": [
                              c["api_cpu_us_per_delivery"], f["api_cpu_us_per_delivery"]],
                          "of_which_system_chirp_and_floor": [
                              c["api_system_cpu_us_per_delivery"],
                              f["api_system_cpu_us_per_delivery"]],
                          "p99_ms_chirp_and_floor": [c["p99_ms"], f["p99_ms"]]}
                         for r, (c, f) in zip(ratios, rounds, strict=True)]
        return out


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait_ready(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError("the API never became ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--tweets", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between posts")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="at most this many seconds to wait for deliveries after the last post")
    parser.add_argument("--clients", type=int, default=0,
                        help="client processes (default: one per 2,500 subscribers)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--apis", type=int, default=1,
                        help="API processes (ports --port, --port+1, ...); subscribers are "
                             "spread over them, tweets are posted through the first")
    parser.add_argument("--root", default=str(ROOT),
                        help="source tree(s) of the API and worker, comma-separated")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of Chirp and the floor; the median is reported")
    parser.add_argument("--profile", help="profile the API's first round into this file: "
                                          "py-spy's speedscope, or perf's for a .data name")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the children
    if args.client:
        import uvloop

        uvloop.run(_client_main())
        return
    args.clients = max(args.clients or -(-args.subscribers // 2500), args.apis)
    if args.subscribers + 100 > hard:
        sys.exit(f"{args.subscribers} subscribers need more than the {hard} open files allowed")
    for root in args.root.split(","):
        print(json.dumps(bench_root(args, Path(root).resolve())), flush=True)


if __name__ == "__main__":
    main()
