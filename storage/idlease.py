"""Snowflake worker ids leased in Redis, never shared (docs/modules.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis, RedisCluster

from core.errors import Unavailable
from core.ids import MAX_WORKER_ID, SnowflakeGenerator, wall_clock_ms
from runtime import tasks
from storage import keys, scripts

log = logging.getLogger(__name__)

# Long enough that posting rides out a Redis outage of a few minutes (ids are minted
# locally; only renewal needs Redis), short enough that a crashed process's id returns.
LEASE_MS = 300_000
RENEW_EVERY_S = 10.0

class LeasedIds:
    """A SnowflakeGenerator whose worker id is leased and renewed in the background."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self.token = secrets.token_hex(8)
        self.generator: SnowflakeGenerator | None = None
        self._expires_ms = 0
        self._task: asyncio.Task | None = None
        # storage/lua/lease_*.lua; a lease and its high-water mark share a slot
        self._acquire = redis.register_script(scripts.source("lease_acquire"))
        self._renew = redis.register_script(scripts.source("lease_renew"))

    @staticmethod
    def _keys(worker_id: int) -> list[str]:
        return [keys.id_lease(worker_id), keys.id_lease_high_water(worker_id)]

    async def start(self) -> int:
        worker_id = await self._lease()
        self._task = asyncio.create_task(self._renew_forever())
        return worker_id

    async def _lease(self) -> int:
        start = secrets.randbelow(MAX_WORKER_ID + 1)  # spread processes over the id space
        for i in range(MAX_WORKER_ID + 1):
            worker_id = (start + i) % (MAX_WORKER_ID + 1)
            floor = await self._acquire(keys=self._keys(worker_id), args=[self.token, LEASE_MS])
            if floor is None:
                continue
            self.generator = SnowflakeGenerator(worker_id, floor_ms=int(floor))
            self._expires_ms = wall_clock_ms() + LEASE_MS
            await self._renew_once()
            return worker_id
        raise Unavailable("no free snowflake worker id")

    async def _renew_once(self, release: bool = False) -> bool:
        assert self.generator is not None
        hwm = max(self.generator.last_ms, wall_clock_ms())
        ok = await self._renew(
            keys=self._keys(self.generator.worker_id),
            args=[self.token, LEASE_MS, f"c{hwm}" if release else str(hwm)],
        )
        if ok:
            self._expires_ms = wall_clock_ms() + LEASE_MS
        return bool(ok)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                if not await self._renew_once():
                    # Lost (Redis restarted without it, or it expired): stop minting on it.
                    log.warning("snowflake lease %s lost", self.generator.worker_id)
                    self._expires_ms = 0
                    await self._lease()
            except Exception as e:  # Redis down: keep minting until the lease runs out
                log.warning("snowflake lease renewal failed: %s", e)

    def next_id(self) -> int:
        if self.generator is None:
            raise Unavailable("id generator not started")
        # Never mint on a lease that may have passed to another process.
        if wall_clock_ms() >= self._expires_ms - 1000:
            raise Unavailable("id lease expired; is Redis reachable?")
        return self.generator.next_id()

    async def close(self) -> None:
        await tasks.cancel(self._task)
        if self.generator is not None:
            with contextlib.suppress(Exception):
                await self._renew_once(release=True)
