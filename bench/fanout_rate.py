"""Fan-out deliveries/s of one worker process (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.seed import author_with_followers

ROOT = Path(__file__).resolve().parent.parent


async def run(followers: int) -> dict:
    from runtime.container import open_services
    from runtime.settings import load

    svc = await open_services(load())
    try:
        author, ids = await author_with_followers(svc, followers)
        async with svc.redis.pipeline(transaction=False) as pipe:
            for u in ids:
                pipe.set(svc.home.key(u), b"", ex=3600)
            await pipe.execute()
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "workers.fanout",
                                                      cwd=ROOT)
        try:
            await asyncio.sleep(3)  # started, id leased, group joined
            tweet = await svc.tweeting.post(author, "fan-out benchmark")
            t0 = time.perf_counter()
            last = ids[-1]
            deadline = t0 + 120
            # Followers are paged newest follow first: the first-seeded follower is last.
            while tweet.id not in (await svc.home.read(ids[0], count=1, renew=False)).ids:
                if time.perf_counter() > deadline:
                    raise TimeoutError("fan-out did not finish in 120 s")
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - t0
            assert tweet.id in (await svc.home.read(last, count=1, renew=False)).ids
        finally:
            worker.terminate()
            await worker.wait()
        return {"followers": followers, "seconds": round(elapsed, 3),
                "deliveries_per_s": round(followers / elapsed)}
    finally:
        await svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100_000)
    args = parser.parse_args()
    from deploy.local.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="chirp-fanout-") as tmp, LocalStack(Path(tmp)) as st:
        os.environ.update(CHIRP_POSTGRES_URL=st.postgres_url, CHIRP_REDIS_URL=st.redis_url,
                          CHIRP_DATA_DIR=tmp, CHIRP_JWT_SECRET="b" * 48, CHIRP_ENV="test",
                          CHIRP_CELEBRITY_THRESHOLD=str(10**9),
                          CHIRP_TWEET_RATE_PER_HOUR="1000000")
        print(json.dumps(asyncio.run(run(args.followers))))


if __name__ == "__main__":
    main()
