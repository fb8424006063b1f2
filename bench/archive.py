"""Archive throughput, and a page from the archive beside the live store (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

import httpx

from bench.archive_format import _texts
from core import cursor
from core.ids import id_datetime, min_id_for_ms, wall_clock_ms
from workers import archive

DAY_MS = 86400 * 1000
PAGE = """query($h:String!,$a:String){userTimeline(handle:$h,first:20,after:$a){
  edges{node{id text createdAt}} pageInfo{hasNextPage endCursor}}}"""


async def _seed(svc, authors: int, per_author: int) -> list[tuple[int, str, int]]:
    """(author, handle, cursor id) per author: the cursor is the 40th newest tweet."""
    rng = random.Random(11)
    texts = _texts(rng, 2000)
    now = wall_clock_ms()
    users, tweets, picks, taken = [], [], [], set()
    for a in range(authors):
        uid = svc.ids.next_id()
        handle = f"arc{a}_{uid % 10**6}"
        users.append((uid, handle, handle, "x", per_author))
        ids: set[int] = set()
        while len(ids) < per_author:
            i = min_id_for_ms(now - rng.randint(400, 550) * DAY_MS - rng.randint(0, DAY_MS))
            if i not in taken:
                ids.add(i)
                taken.add(i)
        newest = sorted(ids, reverse=True)
        tweets += [(i, uid, rng.choice(texts), id_datetime(i)) for i in newest]
        picks.append((uid, handle, newest[39]))
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash", "tweets_count"],
            records=users)
        await conn.copy_records_to_table(
            "tweets", columns=["id", "author_id", "text", "created_at"], records=tweets)
    return picks


async def _graphql_pages(client, svc, picks, cold: bool, rounds: int) -> tuple[list, float]:
    bodies, times = [], []
    for r in range(rounds):
        for _uid, handle, at in picks:
            if cold:
                svc.archive.drop_cached()
            variables = {"h": handle, "a": cursor.encode(cursor.TWEET, at)}
            t = time.perf_counter()
            resp = await client.post("/graphql", json={"query": PAGE, "variables": variables})
            times.append(time.perf_counter() - t)
            if r == 0:
                bodies.append(resp.content)
    return bodies, statistics.median(times) * 1000


async def _store_pages(svc, picks, cold: bool, rounds: int) -> tuple[list, float]:
    pages, times = [], []
    for r in range(rounds):
        for uid, _handle, at in picks:
            if cold:
                svc.archive.drop_cached()
            t = time.perf_counter()
            got = await svc.tweets.by_author(uid, before=at, limit=21)
            times.append(time.perf_counter() - t)
            if r == 0:
                pages.append(got)
    return pages, statistics.median(times) * 1000


async def measure(svc, authors: int, per_author: int, rounds: int = 3, log=print) -> dict:
    from app import create_app

    log(f"archive: seeding {authors} authors x {per_author} tweets, 13-18 months old")
    sizes = "SELECT pg_total_relation_size('tweets'), pg_total_relation_size('archived_tweets')" \
        " + pg_total_relation_size('archive_objects')"
    live_before, index_before = await svc.pool.fetchrow(sizes)
    picks = await _seed(svc, authors, per_author)
    live_after, _ = await svc.pool.fetchrow(sizes)
    transport = httpx.ASGITransport(app=create_app(services=svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _graphql_pages(client, svc, picks, False, 1)  # warm recents caches and code
        live_bodies, live_ms = await _graphql_pages(client, svc, picks, False, rounds)
        live_store, live_store_ms = await _store_pages(svc, picks, False, rounds)
        log("archive: moving them")
        summary = await archive.run(svc.pool, svc.live_tweets, svc.archive,
                                    archive.cutoff_for(365 * 86400))
        assert summary.archived == authors * per_author, summary
        _, index_after = await svc.pool.fetchrow(sizes)
        cold_bodies, cold_ms = await _graphql_pages(client, svc, picks, True, rounds)
        warm_bodies, warm_ms = await _graphql_pages(client, svc, picks, False, rounds)
        cold_store, cold_store_ms = await _store_pages(svc, picks, True, rounds)
        warm_store, warm_store_ms = await _store_pages(svc, picks, False, rounds)
    assert live_bodies == cold_bodies == warm_bodies, "archived pages differ from live ones"
    assert live_store == cold_store == warm_store, "archived store pages differ"
    out = {
        "tweets": summary.archived,
        "objects": summary.objects,
        "bytes_per_tweet": round(summary.bytes / summary.archived, 1),
        # PostgreSQL: the tweets table with its indexes, against the archive's index.
        "pg_bytes_per_live_tweet": round((live_after - live_before) / summary.archived, 1),
        "pg_bytes_per_archived_tweet": round((index_after - index_before) / summary.archived, 1),
        "archive_tweets_per_s": summary.tweets_per_s,
        "user_page_live_ms": round(live_ms, 2),
        "user_page_archive_cold_ms": round(cold_ms, 2),
        "user_page_archive_warm_ms": round(warm_ms, 2),
        "store_page_live_ms": round(live_store_ms, 3),
        "store_page_archive_cold_ms": round(cold_store_ms, 3),
        "store_page_archive_warm_ms": round(warm_store_ms, 3),
    }
    out["archive_vs_live_page_ratio"] = round(cold_ms / live_ms, 2)
    out["archive_vs_live_store_page_ratio"] = round(cold_store_ms / live_store_ms, 2)
    log(f"archive: {json.dumps(out)}")
    return out


async def _standalone(quick: bool) -> dict:
    import tempfile

    from deploy.local.stack import LocalStack
    from runtime.container import open_services
    from runtime.settings import load

    with tempfile.TemporaryDirectory(prefix="chirp-bench-archive-") as tmp, \
            LocalStack(Path(tmp)) as st:
        svc = await open_services(load({
            "CHIRP_POSTGRES_URL": st.postgres_url, "CHIRP_REDIS_URL": st.redis_url,
            "CHIRP_DATA_DIR": tmp, "CHIRP_ENV": "test", "CHIRP_ARCHIVE_INTERVAL_HOURS": "0",
        }))
        try:
            return await measure(svc, 50 if quick else 200, 100 if quick else 300)
        finally:
            await svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_standalone(args.quick))))


if __name__ == "__main__":
    main()
