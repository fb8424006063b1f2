"""The home timeline page assembled in-process, no HTTP (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import time

import numpy as np
import orjson


async def run(kind: str, tokens: list[str], seconds: float, concurrency: int) -> dict:
    from bench.app import QUERY, _awaited, home_page_json
    from resolvers.context import build_context
    from runtime.container import open_services
    from runtime.settings import load
    from schema import build_schema

    svc = await open_services(load(), migrate=False)
    schema = build_schema(svc.settings)
    rng = random.Random(3)

    async def graphql(token: str) -> bytes:
        ctx = await _awaited(build_context(svc, f"Bearer {token}"))
        # As the API answers a query it has seen (app.py, GraphQLApp._known_query): the
        # first time through Strawberry's full path, which parses, validates and remembers
        # the document; then straight to execution.
        # (Revisions without the document cache take the full path every time.)
        documents = getattr(schema, "documents", None)
        entry = documents.runnable(QUERY) if documents is not None else None
        if entry is None:
            result = await schema.execute(QUERY, variable_values={"f": 20}, context_value=ctx)
        else:
            ctx.check_read()
            result = await schema.execute_validated(entry, {"f": 20}, ctx, None, None)
        if result.errors:
            raise RuntimeError(result.errors)
        return orjson.dumps({"data": result.data})

    async def plain(token: str) -> bytes:
        return await home_page_json(svc, f"Bearer {token}", 20)

    page = graphql if kind == "graphql" else plain
    for _ in range(50):  # warm: plans, prepared statements, connections
        await page(rng.choice(tokens))
    # As an API process does after start-up (runtime/collector.py): what exists
    # now lives as long as the process, so full collections need not walk it.
    gc.collect()
    gc.freeze()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while (now := time.perf_counter()) < stop:
            await page(rng.choice(tokens))
            latencies.append(time.perf_counter() - now)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await svc.close()
    lat = np.array(latencies) * 1000
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {
        "kind": kind, "pages": len(lat), "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "cpu_ms_per_page": round(cpu * 1000 / len(lat), 3),
        "concurrency": concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["graphql", "plain"], required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    import uvloop

    with open(args.tokens) as f:
        tokens = f.read().split()
    print(json.dumps(uvloop.run(run(args.kind, tokens, args.seconds, args.concurrency))))


if __name__ == "__main__":
    main()
