"""Rough single-process homeTimeline throughput (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
QUERY = (
    "query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text createdAt "
    "author{id handle displayName}}} pageInfo{hasNextPage endCursor}}}"
)


async def seed(pg_url: str, redis_url: str, users: int, follows: int, tweets: int) -> list[int]:
    from argon2 import PasswordHasher

    from runtime.container import open_services
    from runtime.settings import load

    settings = load(dict(os.environ, CHIRP_POSTGRES_URL=pg_url, CHIRP_REDIS_URL=redis_url))
    svc = await open_services(settings)
    rng = random.Random(1)
    ids = [svc.ids.next_id() for _ in range(users)]
    pw = PasswordHasher().hash("benchmark-password")
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash"],
            records=[(u, f"b{n}", f"Bench user {n}", pw) for n, u in enumerate(ids)],
        )
        edges = {(u, f) for u in ids for f in rng.sample(ids, follows) if f != u}
        await conn.copy_records_to_table(
            "follows", columns=["follower_id", "followee_id", "seq"],
            records=[(a, b, svc.ids.next_id()) for a, b in edges],
        )
        rows = []
        for _ in range(tweets):
            tid = svc.ids.next_id()
            rows.append((tid, rng.choice(ids), f"tweet {tid}", __import__("datetime").datetime.now(
                __import__("datetime").UTC)))
        await conn.copy_records_to_table(
            "tweets", columns=["id", "author_id", "text", "created_at"], records=rows
        )
        await conn.execute(
            "UPDATE users u SET"
            " followers_count = (SELECT count(*) FROM follows WHERE followee_id=u.id),"
            " following_count = (SELECT count(*) FROM follows WHERE follower_id=u.id),"
            " tweets_count = (SELECT count(*) FROM tweets WHERE author_id=u.id)"
        )
        await conn.execute("ANALYZE")
    tokens = [svc.accounts.token_for(type("U", (), {"id": u})) for u in ids]
    await svc.close()
    return tokens


async def warm(url: str, tokens: list[str], concurrency: int) -> None:
    """Read every home timeline once, so the measured phase sees the steady state."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async def one(token: str) -> None:
            async with sem:
                await client.post("/graphql", json={"query": QUERY, "variables": {"f": 20}},
                                  headers={"authorization": f"Bearer {token}"})

        await asyncio.gather(*(one(t) for t in tokens))


async def load_gen(url: str, tokens: list[str], seconds: float, concurrency: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        async def one(i: int) -> None:
            nonlocal errors
            n = i
            while time.perf_counter() < deadline:
                token = tokens[n % len(tokens)]
                n += concurrency
                t0 = time.perf_counter()
                r = await client.post(
                    "/graphql", json={"query": QUERY, "variables": {"f": 20}},
                    headers={"authorization": f"Bearer {token}"},
                )
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200 or "errors" in r.json():
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "concurrency": concurrency}


def run_wrk(url: str, tokens: list[str], seconds: float, concurrency: int, tmp: Path) -> dict:
    """wrk (C, one thread) loads the API far more cheaply than a Python client can."""
    token_file = tmp / "tokens.txt"
    token_file.write_text("\n".join(tokens))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency",
         "-s", str(ROOT / "bench" / "home.lua"), url, "--", str(token_file)],
        capture_output=True, text=True, check=True,
    ).stdout
    def grab(label: str) -> float:
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == label:
                v = parts[1]
                scale = {"us": 0.001, "ms": 1, "s": 1000}
                for unit, k in scale.items():
                    if v.endswith(unit) and v[: -len(unit)].replace(".", "").isdigit():
                        return round(float(v[: -len(unit)]) * k, 2)
        raise ValueError(f"no {label} in wrk output:\n{out}")
    requests = int(next(line.split()[0] for line in out.splitlines() if "requests in" in line))
    rps = float(next(x.split()[1] for x in out.splitlines() if x.startswith("Requests/sec")))
    non_2xx = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    return {"client": "wrk", "requests": requests, "errors": non_2xx, "rps": round(rps),
            "p50_ms": grab("50%"), "p99_ms": grab("99%"), "concurrency": concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--follows", type=int, default=100)
    parser.add_argument("--tweets", type=int, default=40000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--python-client", action="store_true",
                        help="use the httpx load generator even if wrk is installed")
    args = parser.parse_args()

    from deploy.local.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="chirp-bench-") as tmp, LocalStack(Path(tmp)) as st:
        env = dict(os.environ, CHIRP_POSTGRES_URL=st.postgres_url, CHIRP_REDIS_URL=st.redis_url,
                   CHIRP_DATA_DIR=tmp, CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
                   CHIRP_PORT=str(args.port))
        os.environ.update(env)
        tokens = asyncio.run(seed(st.postgres_url, st.redis_url, args.users, args.follows,
                                  args.tweets))
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:create_app", "--factory", "--port",
             str(args.port), "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env)
        try:
            time.sleep(3)
            url = f"http://127.0.0.1:{args.port}"
            # Warm: every timeline cached (the steady state; rebuild cost is separate).
            t0 = time.perf_counter()
            asyncio.run(warm(url, tokens, args.concurrency))
            warm_s = time.perf_counter() - t0
            proc = psutil.Process(api.pid)
            cpu0 = sum(proc.cpu_times()[:2])
            if shutil.which("wrk") and not args.python_client:
                result = run_wrk(url, tokens, args.seconds, args.concurrency, Path(tmp))
            else:
                result = asyncio.run(load_gen(url, tokens, args.seconds, args.concurrency))
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            # The generator, PostgreSQL and Valkey share the 2 cores with the API process;
            # its own CPU per request says what one core would serve on its own.
            result["api_cpu_ms_per_request"] = round(cpu * 1000 / result["requests"], 2)
            result["one_core_capacity_rps"] = round(result["requests"] / cpu)
            result["cold_reads_per_s"] = round(len(tokens) / warm_s)
            print(json.dumps(result))
        finally:
            api.terminate()
            api.wait(10)


if __name__ == "__main__":
    main()
