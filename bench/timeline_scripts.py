"""The timeline scripts against an earlier version of them (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import psutil
from redis.asyncio import Redis

from deploy.local.valkey import EmbeddedValkey

ROOT = Path(__file__).resolve().parent.parent
CAP = 800
BASE = 1 << 60  # ids of the seeded entries count down from here in steps of 100
NEWEST = 2**63 - 1


def load_version(name: str, source: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"<{name}: storage/timeline_cache.py>", "exec"), module.__dict__)
    return module


def load_revision(name: str, revision: str, tmp: Path) -> ModuleType:
    """storage/timeline_cache.py, and the storage modules it imports, at `revision`."""
    subprocess.run(f"git archive {revision} storage | tar -x -C {tmp}", shell=True,
                   cwd=ROOT, check=True)
    saved = {}
    for mod in ("keys", "live", "notices", "redis_client", "scripts"):
        path = tmp / "storage" / f"{mod}.py"
        if not path.exists():
            continue
        with contextlib.suppress(ModuleNotFoundError):  # today's, to put back afterwards
            importlib.import_module(f"storage.{mod}")
        full = f"storage.{mod}"
        saved[full] = sys.modules.get(full)
        spec = importlib.util.spec_from_file_location(full, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[full] = loaded
        spec.loader.exec_module(loaded)
    storage = importlib.import_module("storage")
    attrs = {m: getattr(storage, m.split(".")[1], None) for m in saved}
    try:
        for m in saved:
            setattr(storage, m.split(".")[1], sys.modules[m])
        source = (tmp / "storage" / "timeline_cache.py").read_text()
        return load_version(name, source)
    finally:
        for m, old in saved.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old
            setattr(storage, m.split(".")[1], attrs[m])


def home_cache(module, redis: Redis, prefix: str):
    """A home timeline family, as runtime/container.py makes it in that version."""
    try:
        return module.TimelineCache(redis, prefix, CAP, 3600, live=True, free_slots=True)
    except TypeError:  # a version before free slots
        return module.TimelineCache(redis, prefix, CAP, 3600, live=True)


async def seed(redis: Redis, cache, keys: int) -> None:
    full = b"".join((BASE - 100 * i).to_bytes(8, "big") for i in range(CAP)) + bytes(8)
    for start in range(0, keys, 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for owner in range(start, min(keys, start + 2000)):
                pipe.set(cache.key(owner), full, ex=3600)
            await pipe.execute()
    await cache.load_scripts()


async def fan_out(redis: Redis, valkey: psutil.Process, cache, keys: int, pushes: int) -> dict:
    owners = list(range(keys))
    before = sum(valkey.cpu_times()[:2])
    started = time.perf_counter()
    for k in range(pushes):
        for start in range(0, keys, 1000):
            await cache.insert_many(owners[start:start + 1000], BASE + 1 + k)
    wall = time.perf_counter() - started
    await asyncio.sleep(3)  # background frees of the values replaced
    cpu = sum(valkey.cpu_times()[:2]) - before
    deliveries = keys * pushes
    return {"deliveries_per_s": round(deliveries / wall),
            "valkey_cpu_us_per_delivery": round(cpu * 1e6 / deliveries, 2)}


async def read_time(redis: Redis, module, cache, keys: int, before: int) -> float:
    await redis.config_resetstat()
    for start in range(0, keys, 100):
        async with redis.pipeline(transaction=False) as pipe:
            for owner in range(start, min(keys, start + 100)):
                module.queue_reads(pipe, [(cache, owner)], before, 0, 27)
            await pipe.execute()
    stats = await redis.info("commandstats")
    return stats["cmdstat_evalsha"]["usec_per_call"]


async def run(url: str, pid: int, versions: dict[str, ModuleType], args) -> dict:
    redis = Redis.from_url(url)
    await redis.config_set("appendonly", "no")
    valkey = psutil.Process(pid)
    caches = {name: home_cache(m, redis, f"b{name}") for name, m in versions.items()}
    out: dict = {"fanout": {}, "memory_bytes_per_list": {}, "read_us_per_call": {}}
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for _ in range(args.fanout_rounds):
        for name, cache in caches.items():
            await redis.flushall()
            await seed(redis, cache, args.keys)
            runs[name].append(await fan_out(redis, valkey, cache, args.keys, args.pushes))
    for name, got in runs.items():
        out["fanout"][name] = {k: statistics.median(r[k] for r in got) for k in got[0]}
    # Both versions' lists side by side, as their own inserts left them, for the reads.
    await redis.flushall()
    for name, cache in caches.items():
        await seed(redis, cache, args.keys)
        await fan_out(redis, valkey, cache, args.keys, args.pushes)
        sample = range(0, args.keys, max(1, args.keys // 200))
        usage = [await redis.memory_usage(cache.key(o), samples=0) for o in sample]
        out["memory_bytes_per_list"][name] = round(statistics.mean(usage))
    times: dict[tuple[str, str], list[float]] = {}
    page = BASE - 100 * 400
    for _ in range(args.rounds):
        for label, before in (("head", NEWEST), ("page", page)):
            order = list(versions)
            random.shuffle(order)
            for name in order:
                t = await read_time(redis, versions[name], caches[name], args.keys, before)
                times.setdefault((label, name), []).append(t)
    for (label, name), got in times.items():
        out["read_us_per_call"].setdefault(label, {})[name] = round(statistics.median(got), 2)
    for before in (NEWEST, page):
        for owner in (0, args.keys // 2, args.keys - 1):
            answers = {tuple((await c.read(owner, before=before, count=27)).ids)
                       for c in caches.values()}
            assert len(answers) == 1, f"the versions disagree on list {owner}"
    await redis.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="git revision to compare with")
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--fanout-rounds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30, help="read rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chirp-scripts-") as tmp:
        versions = {
            args.against: load_revision("timeline_cache_then", args.against, Path(tmp)),
            "now": load_version("timeline_cache_now",
                                (ROOT / "storage/timeline_cache.py").read_text()),
        }
        valkey = EmbeddedValkey(Path(tmp) / "valkey")
        url = valkey.start()
        try:
            out = asyncio.run(run(url, valkey.process.pid, versions, args))
        finally:
            valkey.stop()
    then, now = args.against, "now"
    rows = [
        ("fan-out into full lists, deliveries/s",
         out["fanout"][then]["deliveries_per_s"], out["fanout"][now]["deliveries_per_s"]),
        ("Valkey CPU per delivery, us", out["fanout"][then]["valkey_cpu_us_per_delivery"],
         out["fanout"][now]["valkey_cpu_us_per_delivery"]),
        ("memory per full list, bytes", out["memory_bytes_per_list"][then],
         out["memory_bytes_per_list"][now]),
        ("head read, us per call", out["read_us_per_call"]["head"][then],
         out["read_us_per_call"]["head"][now]),
        ("page read, us per call", out["read_us_per_call"]["page"][then],
         out["read_us_per_call"]["page"][now]),
    ]
    print(f"| | {then} | now | now / {then} |\n|---|---|---|---|")
    for label, a, b in rows:
        print(f"| {label} | {a} | {b} | {b / a:.3f} |")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
