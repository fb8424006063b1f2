"""Invalidations of the API processes' read caches, numbered, over Redis pub/sub.

A mutation publishes what it changed ("t<id>" a deleted tweet, "u<id>" a user's profile
or counts, "f<id>" whom a user follows, "r<id>" an author's recent tweets, "c<id>:<0|1>"
an author crossing the celebrity threshold) with one script call that increments
`keys.CACHE_SEQ` and publishes "<seq> <item,item,...>" on `keys.CACHE_CHANNEL`, so messages
are numbered in the order they were published.

Every process applies them in order and remembers the last number applied. A reader GETs
the counter in the round trip it makes anyway (the fence): if the counter is ahead of what
this process has applied, something was published that the process has not seen yet, and
the reader waits for it (briefly) before trusting its caches. So a mutation acknowledged
before a read began is visible to that read in every process, not just eventually.

Whatever breaks the sequence empties the caches: a gap in the numbers, a counter that went
backwards (Redis restarted or failed over), a lost connection (messages published meanwhile
are gone). While the listener is not subscribed the caches are not used at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from runtime import metrics, tasks
from storage import keys
from storage.redis_client import node_url

log = logging.getLogger("chirp.invalidation")

# KEYS[1] the counter; ARGV[1] the channel, ARGV[2] the items, ARGV[3] a random start for
# a counter that does not exist (a Redis that lost its data starts far from the old
# numbers, so a reader can tell). Numbering and publishing in one script keeps the numbers
# in publish order.
PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[3]) end
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], string.format('%.0f', seq) .. ' ' .. ARGV[2])
return seq
"""

CATCH_UP_S = 0.5
# A counter this far below what was applied is another counter (Redis lost its data); less
# far, the listener is just ahead of a reader's GET.
AHEAD_MAX = 1 << 20  # how long a reader waits for messages the counter says were published
PING_EVERY_S = 5.0
DEAD_AFTER_S = 15.0


def queue_publish(pipe: Pipeline, items: list[str]) -> None:
    """Queue the numbered publish of `items` on a pipeline (EVAL: a mutation's path, not
    a read's, so the script text is sent rather than loaded and tracked by SHA)."""
    start = secrets.randbelow(1 << 44) << 8  # exact in Lua's doubles: below 2**53
    pipe.eval(PUBLISH, 1, keys.CACHE_SEQ, keys.CACHE_CHANNEL, ",".join(items), start)


def parse(data: bytes | str) -> tuple[int, list[str]]:
    text = data.decode() if isinstance(data, bytes) else data
    seq, _, items = text.partition(" ")
    return int(seq), items.split(",") if items else []


class Invalidations:
    """This process's listener: applies each message with `apply(item)`, empties every
    cache with `flush()` when the sequence breaks, and answers readers' fences."""

    def __init__(self, redis: Any, redis_url: str, apply: Callable[[str], None],
                 flush: Callable[[], None]) -> None:
        self.redis = redis  # the service's client: on a cluster it finds the counter's node
        self.redis_url = node_url(redis_url)  # classic PUBLISH reaches every cluster node
        self._apply = apply
        self._flush = flush
        self.seq = 0  # the last number applied
        self.live = False  # subscribed, and `seq` is meaningful
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: Redis | None = None
        self._kick = False  # a reader found the listener behind: reconnect
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        await tasks.cancel(self._task)
        self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None
        self.live = False

    # -- the fence

    def fresh(self, published: int) -> bool:
        """Everything numbered up to `published` has been applied here already."""
        return self.live and self.seq - AHEAD_MAX <= published <= self.seq

    async def settle(self, published: int) -> bool:
        """True when everything numbered up to `published` (the counter, as a reader just
        read it) has been applied here; False if the caches must not be used now."""
        if not self.live:
            return False
        if self.fresh(published):
            return True
        if published < self.seq:  # another counter: Redis lost its state
            self._reset(published, "the invalidation counter went backwards")
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S
        while self.seq < published:
            left = deadline - loop.time()
            if left <= 0 or not self.live:
                log.warning("invalidations behind (%s < %s): reconnecting", self.seq,
                            published)
                self._kick = True
                self.live = False
                self._flush()
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    # -- messages

    def receive(self, data: bytes | str) -> None:
        seq, items = parse(data)
        if seq > self.seq + 1:
            self._reset(seq, f"invalidations {self.seq + 1}..{seq - 1} were missed")
        else:
            for item in items:
                self._apply(item)
            self.seq = max(self.seq, seq)
        metrics.CACHE_INVALIDATIONS.inc(len(items))
        self._changed.set()
        self._changed = asyncio.Event()

    def _reset(self, seq: int, why: str) -> None:
        log.info("read caches emptied: %s", why)
        metrics.CACHE_FLUSHES.inc()
        self._flush()
        self.seq = seq
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the connection

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("invalidation listener lost its connection: %r", e)
            self.live = False
            self._flush()
            metrics.CACHE_FLUSHES.inc()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.aclose()
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _listen(self) -> None:
        self._client = Redis.from_url(
            self.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0,
        )
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(keys.CACHE_CHANNEL)
        # Subscribed first, then the counter: a message numbered above it arrives after.
        counter = int(await self.redis.get(keys.CACHE_SEQ) or 0)
        self._flush()  # what was published before we listened is unknown
        self.seq, self.live, self._kick = counter, True, False
        self._changed.set()
        self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        last_pong = loop.time()
        next_ping = last_pong + PING_EVERY_S
        while not self._kick and not self._stopping:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is not None:
                if message["type"] == "message":
                    self.receive(message["data"])
                elif message["type"] == "pong":
                    last_pong = now
            if now >= next_ping:
                await pubsub.ping()
                next_ping = now + PING_EVERY_S
            if now - last_pong > DEAD_AFTER_S:
                raise ConnectionError("no PONG from Redis: connection presumed dead")
        if self._kick:
            raise ConnectionError("a reader found the listener behind the counter")
