"""Fan-out on Redis Streams versus Kafka, 1 and 2 workers (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.seed import author_with_followers
from storage import keys

ROOT = Path(__file__).resolve().parent.parent
DELIVERIES = keys.DELIVERIES


async def _cpu_s(svc, procs) -> tuple[float, list[float]]:
    """CPU seconds used so far by Valkey and by each worker process."""
    info = await svc.redis.info("cpu")
    valkey = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    workers = []
    for p in procs:
        t = psutil.Process(p.pid).cpu_times()
        workers.append(t.user + t.system)
    return valkey, workers


async def _measure(svc, author: int, followers: int, workers: int, runs: int,
                   env: dict[str, str]) -> tuple[list[float], dict]:
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "workers.fanout", cwd=ROOT,
                                             env=env)
        for _ in range(workers)
    ]
    try:
        await asyncio.sleep(8)  # started, ids leased, group joined and balanced
        times = []
        valkey0, workers0 = await _cpu_s(svc, procs)
        for n in range(runs):
            base = int(await svc.redis.get(DELIVERIES) or 0)
            await svc.tweeting.post(author, f"fan-out {workers}w run {n}")
            t0 = time.perf_counter()
            while int(await svc.redis.get(DELIVERIES) or 0) - base < followers:
                if time.perf_counter() - t0 > 180:
                    raise TimeoutError("fan-out did not finish in 180 s")
                await asyncio.sleep(0.005)
            times.append(time.perf_counter() - t0)
            await asyncio.sleep(0.5)
        valkey1, workers1 = await _cpu_s(svc, procs)
        # Where the time goes: CPU per delivery in Valkey (the Lua inserts) and in the
        # workers (paging followers, building calls), and how the work split between them.
        n = followers * runs
        cpu = {
            "valkey_cpu_us_per_delivery": round((valkey1 - valkey0) / n * 1e6, 2),
            "worker_cpu_us_per_delivery": round(
                sum(b - a for a, b in zip(workers0, workers1, strict=True)) / n * 1e6, 2),
            "worker_cpu_share": [round((b - a) / max(sum(workers1) - sum(workers0), 1e-9), 2)
                                 for a, b in zip(workers0, workers1, strict=True)],
        }
        return times, cpu
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await p.wait()


async def run(followers: int, chunk: int, runs: int, buses: list[str]) -> dict:
    from runtime.container import open_services
    from runtime.settings import load

    results: dict = {"followers": followers, "chunk": chunk, "runs": runs,
                     "cores": os.cpu_count()}
    seeded = None
    for bus in buses:
        env = dict(os.environ)
        if bus != "redis":
            env.update(CHIRP_EVENT_BUS=bus, CHIRP_KAFKA_TOPIC=f"bench.{secrets.token_hex(3)}",
                       CHIRP_KAFKA_PARTITIONS="12")
        svc = await open_services(load(env))
        try:
            if seeded is None:
                author, ids = await author_with_followers(svc, followers)
                async with svc.redis.pipeline(transaction=False) as pipe:
                    for u in ids:
                        pipe.set(svc.home.key(u), b"", ex=3600)
                    await pipe.execute()
                seeded = author
            name = "kafka" if bus != "redis" else "redis"
            for workers in (1, 2):
                times, cpu = await _measure(svc, seeded, followers, workers, runs, env)
                med = statistics.median(times)
                results.update({f"{name}_{workers}w_{k}": v for k, v in cpu.items()})
                results[f"{name}_{workers}w_seconds"] = round(med, 3)
                results[f"{name}_{workers}w_deliveries_per_s"] = round(followers / med)
            results[f"{name}_2w_vs_1w_speedup_ratio"] = round(
                results[f"{name}_1w_seconds"] / results[f"{name}_2w_seconds"], 2)
        finally:
            await svc.close()
    if "kafka_1w_seconds" in results and "redis_1w_seconds" in results:
        results["kafka_vs_redis_1w_deliveries_ratio"] = round(
            results["kafka_1w_deliveries_per_s"] / results["redis_1w_deliveries_per_s"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kafka", default="127.0.0.1:9092",
                        help="bootstrap servers; 'none' measures Redis Streams only")
    args = parser.parse_args()
    from deploy.local.stack import LocalStack

    buses = ["redis"]
    if args.kafka != "none":
        if args.kafka == "127.0.0.1:9092":
            from deploy.local.backends import servers, start_all

            start_all(servers(only="kafka"), report=False)
        buses.append(f"kafka://{args.kafka}")
    with tempfile.TemporaryDirectory(prefix="chirp-fanout-") as tmp, LocalStack(Path(tmp)) as st:
        os.environ.update(CHIRP_POSTGRES_URL=st.postgres_url, CHIRP_REDIS_URL=st.redis_url,
                          CHIRP_DATA_DIR=tmp, CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
                          CHIRP_CELEBRITY_THRESHOLD=str(10**9),
                          CHIRP_FANOUT_CHUNK=str(args.chunk),
                          CHIRP_WORKER_CLAIM_IDLE_MS="60000",
                          CHIRP_TWEET_RATE_PER_HOUR="1000000")
        print(json.dumps(asyncio.run(run(args.followers, args.chunk, args.runs, buses)),
                         indent=2))


if __name__ == "__main__":
    main()
