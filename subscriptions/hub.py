"""The per-process pub/sub hub: one Redis connection subscribed to every channel some
WebSocket in this process needs, fanning messages in to bounded per-subscriber queues.

Why redis-py directly and not broadcaster: broadcaster 0.3.1 gives every subscriber an
unbounded queue and its Redis listener has no error handling (it hangs after a disconnect,
encode/broadcaster#144). Here a slow subscriber's queue is bounded and overflows into a
RESYNC, and a lost connection is detected (errors, or no PONG to our pings), re-established
with every channel re-subscribed, and then every subscriber is told to RESYNC, since what
was published meanwhile is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime import metrics

log = logging.getLogger("chirp.hub")

RESYNC = "resync"  # queued instead of messages when the subscriber may have missed some
QUEUE_SIZE = 256
PING_EVERY_S = 5.0
DEAD_AFTER_S = 15.0


class Subscriber:
    """One WebSocket subscription's view of the hub."""

    def __init__(self, hub: Hub, channels: set[str]) -> None:
        self.hub = hub
        self.channels = channels
        self.queue: asyncio.Queue[tuple[str, bytes] | str] = asyncio.Queue(QUEUE_SIZE)

    def deliver(self, channel: str, data: bytes) -> None:
        try:
            self.queue.put_nowait((channel, data))
        except asyncio.QueueFull:
            # Too slow to keep up: drop what is queued and ask for a refetch instead of
            # letting memory grow.
            metrics.LIVE_OVERFLOWS.inc()
            self.resync()

    def resync(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(RESYNC)

    async def get(self) -> tuple[str, bytes] | str:
        return await self.queue.get()

    async def set_channels(self, channels: set[str]) -> None:
        await self.hub.change(self, channels)

    async def close(self) -> None:
        await self.hub.leave(self)


class Hub:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._refs: dict[str, set[Subscriber]] = {}
        self._pubsub: PubSub | None = None
        self._client: Redis | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._last_pong = 0.0
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._disconnect()

    # -- membership

    async def join(self, channels: Iterable[str]) -> Subscriber:
        sub = Subscriber(self, set())
        await self.change(sub, set(channels))
        return sub

    async def change(self, sub: Subscriber, channels: set[str]) -> None:
        async with self._lock:
            added, removed = channels - sub.channels, sub.channels - channels
            sub.channels = set(channels)
            fresh = [c for c in added if not self._refs.get(c)]
            for c in added:
                self._refs.setdefault(c, set()).add(sub)
            stale = []
            for c in removed:
                members = self._refs.get(c, set())
                members.discard(sub)
                if not members:
                    self._refs.pop(c, None)
                    stale.append(c)
            metrics.LIVE_CHANNELS.set(len(self._refs))
            if self._pubsub is not None:
                try:
                    if fresh:
                        await self._pubsub.subscribe(*fresh)
                    if stale:
                        await self._pubsub.unsubscribe(*stale)
                except Exception as e:  # the reader notices too, reconnects, resubscribes
                    log.warning("pub/sub (un)subscribe failed: %s", e)

    async def leave(self, sub: Subscriber) -> None:
        await self.change(sub, set())

    # -- the connection

    async def _connect(self) -> None:
        # No silent retries: a reconnect must be seen, so subscribers can resync.
        self._client = Redis.from_url(
            self.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0,
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        async with self._lock:
            channels = list(self._refs)
            if channels:
                await self._pubsub.subscribe(*channels)
            else:
                # A pub/sub connection with nothing subscribed has nothing to read.
                await self._pubsub.subscribe("chirp:live:hub")
        self._last_pong = asyncio.get_running_loop().time()
        self.connected.set()

    async def _disconnect(self) -> None:
        self.connected.clear()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._pubsub = self._client = None

    async def _run(self) -> None:
        first = True
        backoff = 0.1
        while True:
            try:
                await self._connect()
                if not first:
                    log.info("pub/sub reconnected; telling %d subscribers to resync",
                             sum(len(s) for s in self._refs.values()))
                    metrics.LIVE_RECONNECTS.inc()
                    for sub in {s for members in self._refs.values() for s in members}:
                        sub.resync()
                first = False
                backoff = 0.1
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("pub/sub connection lost: %r", e)
            await self._disconnect()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + PING_EVERY_S
        assert self._pubsub is not None
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is not None:
                if message["type"] == "message":
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    for sub in list(self._refs.get(channel, ())):
                        sub.deliver(channel, message["data"])
                elif message["type"] == "pong":
                    self._last_pong = now
            if now >= next_ping:
                await self._pubsub.ping()
                next_ping = now + PING_EVERY_S
            if now - self._last_pong > DEAD_AFTER_S:
                raise ConnectionError("no PONG from Redis: connection presumed dead")
