"""Every rate limit by name, on the one limiter (storage/ratelimit.py) (docs/modules.md)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from core.errors import RateLimited
from runtime.settings import Settings
from storage.ratelimit import LocalRateLimiter, RateLimiter, Verdict

log = logging.getLogger(__name__)


class Limits:
    def __init__(self, settings: Settings, shared: RateLimiter,
                 local: LocalRateLimiter | None = None) -> None:
        self.settings = settings
        self.shared = shared
        self.local = local or LocalRateLimiter()

    async def _take(self, bucket: str, capacity: int, period_s: int, what: str
                    ) -> Verdict | None:
        try:
            verdict = await self.shared.verdict(bucket, capacity, period_s)
        except RedisError as e:
            log.warning("rate limiter unavailable, allowing %s: %s", what, e)
            return None
        if verdict.retry_after:
            raise limited(verdict, f"too many {what}; retry in {verdict.retry_after} s")
        return verdict

    async def log_in(self, handle: str, address: str) -> Verdict | None:
        # The handle's bucket first: attempts it refuses do not spend the address's tokens,
        # so a flood on one account leaves other accounts at the same address usable.
        s = self.settings
        await self._take(f"login:h:{handle.lower()}", s.login_rate_per_minute, 60,
                         "log-in attempts for this handle")
        return await self._take(f"login:a:{address}", s.login_ip_rate_per_minute, 60,
                                "log-in attempts from this address")

    async def sign_up(self, address: str) -> Verdict | None:
        return await self._take(f"signup:a:{address}", self.settings.signup_rate_per_hour,
                                3600, "sign-ups from this address")

    async def follow(self, account: int) -> Verdict | None:
        return await self._take(f"follow:{account}", self.settings.follow_rate_per_hour,
                                3600, "follows and unfollows")

    def read(self, account: int) -> Verdict:
        verdict = self.local.verdict(account, self.settings.read_rate_per_minute, 60)
        if verdict.retry_after:
            raise limited(verdict, f"too many reads; retry in {verdict.retry_after} s")
        return verdict


def limited(verdict: Verdict, message: str) -> RateLimited:
    error = RateLimited(message, verdict.retry_after)
    error.verdict = verdict  # type: ignore[attr-defined]
    return error


def headers(verdict: Verdict) -> dict[str, str]:
    out = {"RateLimit-Limit": str(verdict.limit), "RateLimit-Remaining": str(verdict.remaining),
           "RateLimit-Reset": str(verdict.reset)}
    if verdict.retry_after:
        out["Retry-After"] = str(verdict.retry_after)
    return out
