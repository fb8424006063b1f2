"""Token-bucket rate limits in Redis: a burst of `capacity`, refilled evenly over the period.

A bucket of 100/hour allows 100 at once, then one every 36 s: unlike a fixed window it
never lets 200 through across a window boundary.
"""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

from storage import keys as rkeys
from storage import scripts


class RateLimiter:
    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._take = redis.register_script(scripts.source("take"))  # storage/lua/take.lua

    async def take(self, bucket: str, capacity: int, period_s: int, now_ms: int) -> int:
        """0 if the action may proceed, else whole seconds until it may."""
        wait_ms = await self._take(
            keys=[rkeys.rate_bucket(bucket)], args=[capacity, period_s * 1000, now_ms]
        )
        return 0 if wait_ms == 0 else max(1, -(-int(wait_ms) // 1000))
