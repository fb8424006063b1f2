"""Inspect and replay dead-lettered events: `python -m workers.deadletters list|replay`."""

from __future__ import annotations

import argparse
import asyncio

from runtime.container import event_bus, redis_client
from runtime.settings import load
from storage.redis_client import close as close_redis


async def run(command: str) -> None:
    settings = load()
    if not settings.redis_url:
        raise SystemExit("CHIRP_REDIS_URL must be set")
    redis = redis_client(settings.redis_url)
    bus = event_bus(settings, redis, claim_idle_ms=30_000)
    try:
        if command == "list":
            for mid, event, error in await bus.dead(1000):
                print(f"{mid} {event.kind} tweet={event.tweet_id} "
                      f"author={event.author_id}: {error}")
        else:
            print(f"replayed {await bus.replay_dead()} events")
    finally:
        await bus.close()
        await close_redis(redis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    asyncio.run(run(parser.parse_args().command))


if __name__ == "__main__":
    main()
