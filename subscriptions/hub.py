"""The per-process pub/sub hub: one Redis connection for every live session in this process,
handing each event to the sessions it concerns.

Home timelines arrive on the hub's own channel (`storage.keys.hub_channel(hub.id)`): the
fan-out scripts publish one message per hub per page of followers, naming the viewers, and
the hub hands it to its local sessions of those viewers. Authors' channels (celebrities,
`userTweets`) are subscribed once per process however many local sessions want them. On a
Redis Cluster every channel is a shard channel (subscriptions/sharded.py): the hub
subscribes to each local viewer's own channel (`keys.home_channel`) instead of its own.

The reader only parses; a dispatcher task takes notices in order, loads each event once
(`EventHydrator`), keeps a celebrity's tweet from sessions whose viewer no longer follows
them (one query per tweet, not one per session), and then for each session either writes
the event's frame to its socket directly (an idle session whose selection can be shared,
see subscriptions/wire.py) or puts the event in its bounded queue for its own task.

A slow subscriber's queue overflows into a RESYNC; a lost connection is re-established
with every channel re-subscribed, then every subscriber is told to RESYNC, since what was
published meanwhile is gone (docs/live.md, "Why redis-py and not broadcaster").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.models import LiveKind
from runtime import collector, metrics, tasks
from storage import keys, notices
from storage.redis_client import is_cluster
from subscriptions.hydrate import EventHydrator, LiveEvent
from subscriptions.sharded import ShardedPubSub
from subscriptions.wire import send_eagerly

log = logging.getLogger("chirp.hub")

RESYNC = "resync"  # queued instead of events when the subscriber may have missed some
QUEUE_SIZE = 256
INBOX_MAX = 10_000  # notices read but not yet dispatched; beyond this everyone resyncs
YIELD_EVERY = 256  # sessions served per event before letting the loop run other work
PING_EVERY_S = 5.0
DEAD_AFTER_S = 15.0

# A parsed message: (author channel, or None when routed to viewers' home timelines,
# kind, tweet id, the viewers it is routed to)
Notice = tuple[str | None, LiveKind, int, list[int]]

_ADDED_COUNT = metrics.LIVE_DELIVERED.labels(LiveKind.TWEET_ADDED)
_DELETED_COUNT = metrics.LIVE_DELIVERED.labels(LiveKind.TWEET_DELETED)


class Seen:
    """Tweet ids a session has sent, to drop a second copy (the backlog and the live stream
    overlap when a session starts). Keeps the newest `size` / 2 to `size` ids, sorted in an
    array of 8 bytes an id, so its memory is bounded however long the stream runs; past
    `size` it forgets the older half at once. Ids are Snowflakes, so the
    newest are the ones a duplicate can still be of; an id no newer than one forgotten is
    let through. Live ids mostly arrive newest last: that case is one comparison with `top`
    and an append, no search (docs/live.md, "Direct delivery")."""

    __slots__ = ("ids", "size", "top", "floor")

    def __init__(self, size: int = 2048) -> None:
        self.ids = array("q")
        self.size = size
        self.top = -1  # the newest id remembered
        self.floor = -1  # the newest id forgotten

    def __contains__(self, tweet_id: int) -> bool:
        if tweet_id > self.top or tweet_id <= self.floor:
            return False
        ids = self.ids
        i = bisect_left(ids, tweet_id)
        return i < len(ids) and ids[i] == tweet_id

    def add(self, tweet_id: int) -> bool:
        """False if it was already there."""
        ids = self.ids
        if tweet_id > self.top:
            ids.append(tweet_id)
            self.top = tweet_id
        elif tweet_id <= self.floor:
            return True  # it may have been sent and forgotten: let through
        else:
            i = bisect_left(ids, tweet_id)
            if i < len(ids) and ids[i] == tweet_id:
                return False
            ids.insert(i, tweet_id)
        if len(ids) > self.size:
            half = len(ids) // 2
            self.floor = ids[half - 1]
            del ids[:half]
        return True


class Direct(Protocol):
    """What a session offers for direct delivery (made by schema/subscription.py)."""

    def send(self, event: LiveEvent) -> Coroutine[Any, Any, None] | None:
        """The write of the event's frame to the socket, or None to decline."""


class Subscriber:
    """One WebSocket subscription's view of the hub: its author channels, for a home
    timeline session the viewer whose routed notices it receives, what it has sent, and
    whether the hub may write to its socket directly right now."""

    __slots__ = ("hub", "viewer", "channels", "queue", "seen", "direct", "pending")

    def __init__(self, hub: Hub, viewer: int | None) -> None:
        self.hub = hub
        self.viewer = viewer
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[LiveEvent | str] = asyncio.Queue(QUEUE_SIZE)
        self.seen = Seen()
        self.direct: Direct | None = None  # set by the session when it is idle
        self.pending: asyncio.Future | None = None  # a direct send waiting on the socket

    def deliver(self, event: LiveEvent) -> None:
        """Through the queue: the session's own task sends it."""
        self.direct = None  # it catches up in order before going direct again
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what is queued and ask for a refetch instead of
            # letting memory grow.
            metrics.LIVE_OVERFLOWS.inc()
            self.resync()

    def hand(self, event: LiveEvent, added: bool) -> bool:
        """Send directly if the session allows it and the socket is free; otherwise queue.
        True if sent here. `added`: the event is a TWEET_ADDED (not sent twice)."""
        direct = self.direct
        if direct is not None:
            tweet_id = event.tweet_id
            seen = self.seen
            if added and tweet_id in seen:
                return False  # already sent
            pending = self.pending
            if pending is None or pending.done():
                sending = direct.send(event)
                if sending is not None:
                    try:
                        self.pending = send_eagerly(sending)
                    except Exception as e:  # gone: its operation's task will find out
                        log.debug("direct live send failed: %r", e)
                    else:
                        if added:
                            seen.add(tweet_id)
                        return True
        self.deliver(event)
        return False

    def resync(self) -> None:
        self.direct = None
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(RESYNC)

    async def get(self) -> LiveEvent | str:
        item = await self.queue.get()
        pending = self.pending
        if pending is not None and not pending.done():
            await asyncio.wait([pending])  # a direct send first: order is kept
        return item

    async def set_channels(self, channels: set[str]) -> None:
        await self.hub.change(self, channels)

    async def close(self) -> None:
        self.direct = None
        await self.hub.leave(self)


class Hub:
    def __init__(
        self, redis_url: str, hydrator: EventHydrator, tune_gc: bool = True
    ) -> None:
        self.redis_url = redis_url
        self.hydrator = hydrator
        self.tune_gc = tune_gc  # the process's GC policy (runtime/collector.py); off in tests
        # Names this process in presence hashes; a restarted process is a new hub.
        self.id = secrets.token_hex(8)
        self.cluster = is_cluster(redis_url)
        self.channel = keys.hub_channel(self.id)
        self._refs: dict[str, set[Subscriber]] = {}  # author channel -> sessions
        self._viewers: dict[int, set[Subscriber]] = {}  # viewer -> home sessions
        self._pubsub: PubSub | ShardedPubSub | None = None
        self._client: Redis | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._last_pong = 0.0
        self._background: set[asyncio.Task] = set()
        self._inbox: deque[Notice] = deque()
        self._wake = asyncio.Event()
        self.presence = None  # subscriptions.presence.Presence, made by the first session
        self.connected = asyncio.Event()

    async def start(self) -> None:
        if self.tune_gc:
            collector.for_live_sessions()
        self._task = asyncio.create_task(self._run())
        self.spawn(self._dispatch_loop())

    async def stop(self) -> None:
        await tasks.cancel(self._task, *self._background)
        await self._disconnect()

    def spawn(self, coro) -> asyncio.Task:
        """A task that lives as long as the hub (stopped with it)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- membership

    async def join(self, channels: Iterable[str], viewer: int | None = None) -> Subscriber:
        """A session receiving the given author channels and, with `viewer`, the notices
        routed to that viewer's home timeline. Registered before this returns, so anything
        published after the caller then marks itself present reaches it."""
        sub = Subscriber(self, viewer)
        if viewer is not None:
            if viewer not in self._viewers:
                await self._home_subscription(viewer, True)
            self._viewers.setdefault(viewer, set()).add(sub)
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
        if sub.viewer is not None:
            sessions = self._viewers.get(sub.viewer)
            if sessions is not None:
                sessions.discard(sub)
                if not sessions:
                    del self._viewers[sub.viewer]
                    await self._home_subscription(sub.viewer, False)
            # The viewer's presence field for this hub is left to expire: removing it
            # could race a new session of the same viewer here, and until it expires a
            # notice for them costs only a few bytes in a message this hub gets anyway.
        await self.change(sub, set())

    async def _home_subscription(self, viewer: int, on: bool) -> None:
        """On a cluster, the viewer's own channel while this hub holds a session of theirs
        (on one server the hub's channel carries every viewer's notices)."""
        if not self.cluster or self._pubsub is None:
            return  # (re)connecting subscribes every viewer's channel
        channel = keys.home_channel(viewer)
        try:
            async with self._lock:
                if on:
                    await self._pubsub.subscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)
        except Exception as e:  # the reader notices too, reconnects, resubscribes
            log.warning("pub/sub (un)subscribe failed: %s", e)

    def viewer_sessions(self, viewer: int) -> list[Subscriber]:
        return list(self._viewers.get(viewer, ()))

    def sessions(self) -> set[Subscriber]:
        return {s for members in (*self._refs.values(), *self._viewers.values())
                for s in members}

    # -- dispatch

    def _routed(self, channel: str) -> bool:
        """A channel carrying notices routed to viewers, rather than an author's."""
        if self.cluster:
            return channel.startswith(keys.HOME_CHANNEL_HEAD) and \
                channel.endswith(keys.HOME_CHANNEL_TAIL)
        return channel == self.channel

    def _receive(self, channel: str, data: bytes) -> None:
        """The reader's part: parse, queue for the dispatcher."""
        if self._routed(channel):
            routed = notices.parse_routed(data)
            if routed is None:
                return
            kind, tweet_id, viewers = routed
            notice: Notice = (None, kind, tweet_id, viewers)
        else:
            parsed = notices.parse(data)
            if parsed is None or not self._refs.get(channel):
                return
            notice = (channel, parsed[0], parsed[1], [])
        if len(self._inbox) >= INBOX_MAX:
            log.warning("live dispatch %d notices behind: everyone resyncs", len(self._inbox))
            self._inbox.clear()
            for sub in self.sessions():
                sub.resync()
            return
        self._inbox.append(notice)
        self._wake.set()
        if notice[1] is LiveKind.TWEET_ADDED:
            self.hydrator.prefetch(notice[2])  # loads while earlier notices are dispatched

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._inbox:
                notice = self._inbox.popleft()
                try:
                    await self._dispatch(*notice)
                except Exception as e:  # the database blinked: those sessions refetch
                    log.warning("live dispatch of %s failed: %r", notice[:3], e)
                    for sub in self._targets(notice[0], notice[3]):
                        sub.resync()

    def _targets(self, channel: str | None, viewers: list[int]) -> list[Subscriber]:
        if channel is not None:
            return list(self._refs.get(channel, ()))
        out: list[Subscriber] = []
        for viewer in viewers:
            out.extend(self._viewers.get(viewer, ()))
        return out

    async def _dispatch(
        self, channel: str | None, kind: LiveKind, tweet_id: int, viewers: list[int]
    ) -> None:
        targets = self._targets(channel, viewers)
        if not targets:
            return
        if kind is LiveKind.TWEET_DELETED:
            event = self.hydrator.deleted(tweet_id)
        else:
            event = await self.hydrator.added(tweet_id)  # once per process
            if event is None:
                return  # deleted before we got here
            author = event.tweet.author_id
            if channel is not None:  # a celebrity's channel: only for viewers still following
                asking = {s.viewer for s in targets if s.viewer not in (None, author)}
                if asking:
                    following = await self.hydrator.following(author, asking)
                    targets = [s for s in targets
                               if s.viewer in (None, author) or s.viewer in following]
        sent = 0
        added = kind is LiveKind.TWEET_ADDED
        for i, sub in enumerate(targets, 1):
            sent += sub.hand(event, added)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other work run between slices
        if sent:
            (_ADDED_COUNT if added else _DELETED_COUNT).inc(sent)

    # -- the connection

    async def _connect(self) -> None:
        if self.cluster:
            self._pubsub = ShardedPubSub(self.redis_url, DEAD_AFTER_S)
            await self._pubsub.connect()
            async with self._lock:
                await self._pubsub.subscribe(*self._refs,
                                             *(keys.home_channel(v) for v in self._viewers))
            self._last_pong = asyncio.get_running_loop().time()
            self.connected.set()
            return
        # No silent retries: a reconnect must be seen, so subscribers can resync.
        self._client = Redis.from_url(
            self.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0,
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        async with self._lock:
            await self._pubsub.subscribe(self.channel, *self._refs)
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
                    sessions = self.sessions()
                    log.info("pub/sub reconnected; telling %d subscribers to resync",
                             len(sessions))
                    metrics.LIVE_RECONNECTS.inc()
                    for sub in sessions:
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
                    self._receive(channel, message["data"])
                elif message["type"] == "pong":
                    self._last_pong = now
            if now >= next_ping:
                await self._pubsub.ping()
                next_ping = now + PING_EVERY_S
            if now - self._last_pong > DEAD_AFTER_S:
                raise ConnectionError("no PONG from Redis: connection presumed dead")
