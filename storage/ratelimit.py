"""Token-bucket rate limits in Redis: a burst of `capacity`, refilled evenly over the period.

A bucket of 100/hour allows 100 at once, then one every 36 s: unlike a fixed window it
never lets 200 through across a window boundary.
"""

from __future__ import annotations

from redis.asyncio import Redis

from storage import keys as rkeys

# KEYS[1] bucket; ARGV capacity, period ms, now ms. Returns 0 if allowed, else ms to wait.
_TAKE = """
local cap, period, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per = period / cap
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if not tokens then tokens, at = cap, now end
if now > at then tokens = math.min(cap, tokens + (now - at) / per); at = now end
if tokens < 1 then return math.ceil((1 - tokens) * per) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(period))
return 0
"""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    async def take(self, bucket: str, capacity: int, period_s: int, now_ms: int) -> int:
        """0 if the action may proceed, else whole seconds until it may."""
        wait_ms = await self._take(
            keys=[rkeys.rate_bucket(bucket)], args=[capacity, period_s * 1000, now_ms]
        )
        return 0 if wait_ms == 0 else max(1, -(-int(wait_ms) // 1000))
