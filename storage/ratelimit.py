"""Token-bucket rate limits in Redis (docs/modules.md)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from storage import keys as rkeys
from storage import scripts


@dataclass(frozen=True, slots=True)
class Verdict:
    """One take from a bucket: what the rate-limit headers of the answer say."""

    limit: int
    remaining: int
    retry_after: int  # whole seconds until the next token; 0 when this take was allowed
    reset: int  # whole seconds until the bucket is full again


def _verdict(capacity: int, period_s: int, wait_ms: int, left: int) -> Verdict:
    per_s = period_s / capacity
    wait = 0 if wait_ms == 0 else max(1, -(-int(wait_ms) // 1000))
    return Verdict(capacity, max(0, left), wait, max(wait, int((capacity - left) * per_s)))


class RateLimiter:
    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._take = redis.register_script(scripts.source("take"))  # storage/lua/take.lua

    async def take(self, bucket: str, capacity: int, period_s: int, now_ms: int) -> int:
        """0 if the action may proceed, else whole seconds until it may."""
        return (await self.verdict(bucket, capacity, period_s, now_ms)).retry_after

    async def verdict(self, bucket: str, capacity: int, period_s: int,
                      now_ms: int | None = None) -> Verdict:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        wait_ms, left = await self._take(
            keys=[rkeys.rate_bucket(bucket)], args=[capacity, period_s * 1000, now_ms]
        )
        return _verdict(capacity, period_s, int(wait_ms), int(left))


class LocalRateLimiter:
    """The same token bucket in this process's memory, per process (N processes allow up to
    N times the limit); the least recently seen of `max_buckets` is forgotten."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[object, list[float]] = OrderedDict()

    def verdict(self, bucket: object, capacity: int, period_s: int,
                now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        per = period_s / capacity
        found = self._buckets.get(bucket)
        if found is None:
            if len(self._buckets) >= self.max_buckets:
                self._buckets.popitem(last=False)
            found = self._buckets[bucket] = [float(capacity), now]
        else:
            self._buckets.move_to_end(bucket)
            found[0] = min(capacity, found[0] + (now - found[1]) / per)
            found[1] = now
        if found[0] < 1:
            wait_ms = int((1 - found[0]) * per * 1000) + 1
            return _verdict(capacity, period_s, wait_ms, 0)
        found[0] -= 1
        return _verdict(capacity, period_s, 0, int(found[0]))
