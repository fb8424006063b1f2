"""Timelines on one Valkey beside a 3-primary Valkey cluster (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from redis.asyncio.connection import AbstractConnection

from core.timeline import NEWEST
from deploy.local.valkey import EmbeddedValkey
from deploy.local.valkey_cluster import ValkeyCluster
from storage import keys
from storage.redis_client import close, connect
from storage.timeline_cache import Reads, TimelineCache

ROOT = Path(__file__).resolve().parent.parent
CAP = 800
BASE = 1 << 60
PAGE = 1000
sends = 0


def _counting(real):
    async def send(self, command, check_health=True):
        global sends
        sends += 1
        return await real(self, command, check_health)
    return send


class Layout:
    def __init__(self, name: str, url: str, primaries: list[int], replicas: list[int]) -> None:
        self.name, self.url = name, url
        self.primaries = [psutil.Process(p) for p in primaries]
        self.replicas = [psutil.Process(p) for p in replicas]

    def cpu(self) -> tuple[float, float]:
        def total(ps: list[psutil.Process]) -> float:
            return sum(sum(p.cpu_times()[:2]) for p in ps)
        return total(self.primaries), total(self.replicas)


async def seed(redis, home: TimelineCache, recents: TimelineCache, keys_n: int) -> None:
    full = b"".join((BASE - 100 * i).to_bytes(8, "big") for i in range(CAP)) + bytes(8)
    for start in range(0, keys_n, 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for owner in range(start, min(keys_n, start + 2000)):
                pipe.set(home.key(owner), full, ex=3600)
                if owner < 10:
                    pipe.set(recents.key(owner), full[:8 * 100], ex=3600)
            await pipe.execute()
    await home.load_scripts()


async def fan_out(layout: Layout, home: TimelineCache, keys_n: int, pushes: int) -> dict:
    owners = list(range(keys_n))
    p0, r0 = layout.cpu()
    t0 = time.perf_counter()
    for k in range(pushes):
        for start in range(0, keys_n, PAGE):
            await home.insert_many(owners[start:start + PAGE], BASE + 1 + k,
                                   count_into=keys.DELIVERIES)
    wall = time.perf_counter() - t0
    await asyncio.sleep(2)  # background frees of the values replaced
    p1, r1 = layout.cpu()
    n = keys_n * pushes
    return {"deliveries_per_s": n / wall, "primary_cpu_us_per_delivery": (p1 - p0) * 1e6 / n,
            "replica_cpu_us_per_delivery": (r1 - r0) * 1e6 / n}


async def reads(layout: Layout, home: TimelineCache, recents: TimelineCache, celebs: int,
                viewers: int) -> dict:
    global sends
    p0, _ = layout.cpu()
    sends = 0
    t0 = time.perf_counter()
    for v in range(viewers):
        sources = [(home, 100 + v), *((recents, c) for c in range(celebs))]
        reading = Reads(sources, NEWEST, 0, 27, renew_first=True)
        replies = await home.run(reading.queue)
        got = reading.collect(replies)
        assert len(got) == 1 + celebs and all(r[0] == 2 for r in got)
    wall = time.perf_counter() - t0
    p1, _ = layout.cpu()
    return {"primary_cpu_us_per_read": (p1 - p0) * 1e6 / viewers,
            "round_trips_per_read": sends / viewers, "wall_us_per_read": wall * 1e6 / viewers}


async def round_of(layout: Layout, args) -> dict:
    redis = connect(layout.url, socket_timeout=30)
    home = TimelineCache(redis, keys.HOME, CAP, 3600, live=True, free_slots=True)
    recents = TimelineCache(redis, keys.RECENTS, CAP, 3600)
    await flush(redis)
    await seed(redis, home, recents, args.keys)
    out = {"fanout": await fan_out(layout, home, args.keys, args.pushes)}
    for celebs in (0, 10):
        out[f"read_{celebs}_celebrities"] = await reads(layout, home, recents, celebs,
                                                        args.reads)
    await close(redis)
    return out


async def flush(redis) -> None:
    if hasattr(redis, "get_primaries"):
        for node in redis.get_primaries():
            await redis.execute_command("FLUSHALL", target_nodes=node)
    else:
        await redis.flushall()


def _median(rounds: list[dict]) -> dict:
    return {section: {k: round(statistics.median(r[section][k] for r in rounds), 2)
                      for k in rounds[0][section]} for section in rounds[0]}


def run(args) -> dict:
    AbstractConnection.send_packed_command = _counting(AbstractConnection.send_packed_command)
    with tempfile.TemporaryDirectory(prefix="chirp-cluster-bench-") as tmp:
        single = EmbeddedValkey(Path(tmp) / "single")
        single.start()
        cluster = ValkeyCluster(Path(tmp) / "cluster")
        try:
            cluster.start()
            primaries = cluster.primary_ports()
            layouts = [
                Layout("single", single.url, [single.process.pid], []),
                Layout("cluster", cluster.url,
                       [cluster.node(p).pid for p in primaries],
                       [n.pid for n in cluster.nodes if n.port not in primaries]),
            ]
            got: dict[str, list[dict]] = {lay.name: [] for lay in layouts}
            for _ in range(args.rounds):
                for lay in layouts:
                    got[lay.name].append(asyncio.run(round_of(lay, args)))
        finally:
            cluster.stop()
            single.stop()
    out = {name: _median(rounds) for name, rounds in got.items()}
    s, c = out["single"], out["cluster"]
    out["cluster_vs_single"] = {
        "cpu_per_delivery": round(c["fanout"]["primary_cpu_us_per_delivery"]
                                  / s["fanout"]["primary_cpu_us_per_delivery"], 3),
        "deliveries_per_s": round(c["fanout"]["deliveries_per_s"]
                                  / s["fanout"]["deliveries_per_s"], 3),
        **{f"cpu_per_read_{n}_celebrities": round(
            c[f"read_{n}_celebrities"]["primary_cpu_us_per_read"]
            / s[f"read_{n}_celebrities"]["primary_cpu_us_per_read"], 3) for n in (0, 10)},
    }
    out["params"] = vars(args)
    return out


def table(out: dict) -> str:
    rows = [("fan-out deliveries/s", "fanout", "deliveries_per_s"),
            ("Valkey CPU per delivery, us (primaries)", "fanout", "primary_cpu_us_per_delivery"),
            ("replicas' CPU per delivery, us", "fanout", "replica_cpu_us_per_delivery")]
    for n in (0, 10):
        rows += [(f"Valkey CPU per read, {n} celebrities, us", f"read_{n}_celebrities",
                  "primary_cpu_us_per_read"),
                 (f"round trips per read, {n} celebrities", f"read_{n}_celebrities",
                  "round_trips_per_read"),
                 (f"wall per read, {n} celebrities, us", f"read_{n}_celebrities",
                  "wall_us_per_read")]
    lines = ["| | single | 3-primary cluster |", "|---|---|---|"]
    for label, section, key in rows:
        lines.append(f"| {label} | {out['single'][section][key]} | "
                     f"{out['cluster'][section][key]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    out = run(args)
    print(table(out))
    print(json.dumps(out["cluster_vs_single"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
