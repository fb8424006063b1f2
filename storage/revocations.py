"""Revoked tokens, in every API process's memory (docs/modules.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from runtime import tasks
from storage import keys
from storage.redis_client import node_url

log = logging.getLogger(__name__)


class Revocations:
    def __init__(self, redis: Redis, redis_url: str | None, ttl_s: int) -> None:
        self.redis = redis
        self.redis_url = redis_url
        self.ttl_s = ttl_s
        self.tokens: dict[str, float] = {}  # token id -> its expiry
        self.after: dict[int, float] = {}  # user -> tokens issued before this are refused
        self.ready = asyncio.Event()
        self.version = 0  # counts changes to this copy: unchanged, no token became revoked
        self._task: asyncio.Task | None = None

    def revoked(self, user: int, jti: str, issued_at: float) -> bool:
        return jti in self.tokens or issued_at < self.after.get(user, 0.0)

    async def revoked_in_redis(self, user: int, jti: str, issued_at: float) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(keys.REVOKED_TOKENS, jti)
            pipe.hget(keys.TOKENS_AFTER, str(user))
            score, after = await pipe.execute()
        return score is not None or (after is not None and issued_at < float(after))

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.REVOKED_TOKENS, {jti: expires_at})
            pipe.zremrangebyscore(keys.REVOKED_TOKENS, "-inf", time.time())
            await pipe.execute()
        await self.redis.publish(keys.REVOCATIONS, orjson.dumps({"jti": jti, "exp": expires_at}))
        self.tokens[jti] = expires_at
        self.version += 1

    async def revoke_user(self, user: int) -> None:
        now = time.time()
        await self.redis.hset(keys.TOKENS_AFTER, str(user), repr(now))
        await self.redis.publish(keys.REVOCATIONS, orjson.dumps({"user": user, "after": now}))
        self.after[user] = max(self.after.get(user, 0.0), now)
        self.version += 1

    def start(self) -> None:
        if self._task is None and self.redis_url:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        self._task = None

    async def _load(self) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.REVOKED_TOKENS, now, "+inf", withscores=True)
            pipe.hgetall(keys.TOKENS_AFTER)
            tokens, after = await pipe.execute()
        self.tokens = {t.decode(): float(exp) for t, exp in tokens}
        self.after = {int(u): float(a) for u, a in after.items()
                      if float(a) > now - self.ttl_s}  # older ones outlived every token
        self.version += 1

    def _apply(self, message: bytes) -> None:
        data = orjson.loads(message)
        if "jti" in data:
            self.tokens[data["jti"]] = float(data["exp"])
        else:
            user = int(data["user"])
            self.after[user] = max(self.after.get(user, 0.0), float(data["after"]))
        self.version += 1
        if len(self.tokens) > 100_000:  # drop the expired
            now = time.time()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            client = Redis.from_url(node_url(self.redis_url), retry=Retry(NoBackoff(), 0),
                                    socket_connect_timeout=2.0)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.REVOCATIONS)
                await self._load()  # after subscribing: nothing falls between the two
                self.ready.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=10.0)
                    if message is None:
                        await pubsub.ping()  # a dead connection fails here, not silently
                    elif message["type"] == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("revocation channel lost, asking Redis until it is back: %r", e)
            finally:
                # The copy stays in use while disconnected; it is reloaded on reconnecting.
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
