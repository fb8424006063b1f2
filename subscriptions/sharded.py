"""Sharded pub/sub on a Redis Cluster, shaped like redis-py's PubSub as the hub uses it.

Each shard channel is subscribed (SSUBSCRIBE, one slot per command) on the primary owning
its slot, over one connection per node; one reader task per node feeds a single queue.
Nothing is retried silently: a node's connection error, a node that stops answering PING,
or the server dropping a channel (its slot moved: an unasked `sunsubscribe`) is raised from
`get_message`, so the hub reconnects everything on the current slot map and tells every
session to resync, as it does on one server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError

from runtime import tasks
from storage.redis_client import ChirpCluster, connect


class ShardedPubSub:
    def __init__(self, url: str, dead_after_s: float) -> None:
        self.url = url
        self.dead_after_s = dead_after_s
        self.cluster: ChirpCluster | None = None
        self._nodes: dict[str, tuple[Redis, PubSub]] = {}
        self._owner: dict[str, str] = {}  # channel -> node name
        self._leaving: set[str] = set()  # channels we unsubscribed, until confirmed
        self._readers: dict[str, asyncio.Task] = {}
        self._closing: set[asyncio.Task] = set()
        self._queue: asyncio.Queue[dict | BaseException] = asyncio.Queue()
        self._pong: dict[str, float] = {}

    async def connect(self) -> None:
        cluster = connect(self.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0)
        assert isinstance(cluster, ChirpCluster)
        self.cluster = cluster
        await cluster.initialize()

    def _node_for(self, channel: str) -> str:
        assert self.cluster is not None
        node = self.cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        held = self._nodes.get(node.name)
        if held is not None and not held[1].subscribed:
            # An idle connection is not read, so its death (a node restarted) went unseen.
            self._drop(node.name)
        if node.name not in self._nodes:
            client = Redis(host=node.host, port=node.port, retry=Retry(NoBackoff(), 0),
                           socket_connect_timeout=2.0)
            pubsub = client.pubsub()
            self._nodes[node.name] = (client, pubsub)
            self._pong[node.name] = asyncio.get_running_loop().time()
            self._readers[node.name] = asyncio.create_task(self._read(node.name, pubsub))
        return node.name

    def _drop(self, name: str) -> None:
        self._readers.pop(name).cancel()
        client, pubsub = self._nodes.pop(name)
        task = asyncio.create_task(_close(client, pubsub))
        self._closing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._closing.discard)

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:
            name = self._node_for(channel)
            self._owner[channel] = name
            self._leaving.discard(channel)
            await self._nodes[name][1].ssubscribe(channel)

    async def unsubscribe(self, *channels: str) -> None:
        for channel in channels:
            name = self._owner.pop(channel, None)
            if name is not None and name in self._nodes:
                self._leaving.add(channel)
                await self._nodes[name][1].sunsubscribe(channel)

    async def _read(self, name: str, pubsub: PubSub) -> None:
        try:
            while True:
                if not pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "smessage":
                    self._queue.put_nowait({**message, "type": "message"})
                elif kind == "pong":
                    self._pong[name] = asyncio.get_running_loop().time()
                    self._queue.put_nowait(message)
                elif kind == "sunsubscribe":
                    channel = _text(message["channel"])
                    if channel in self._leaving:
                        self._leaving.discard(channel)
                    elif channel in self._owner:
                        raise ConnectionError(f"shard channel {channel} moved")
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # the hub reconnects on it
            self._queue.put_nowait(e)

    async def get_message(self, timeout: float) -> dict | None:  # noqa: ASYNC109 (PubSub's)
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def ping(self) -> None:
        now = asyncio.get_running_loop().time()
        for name, (_client, pubsub) in list(self._nodes.items()):
            if now - self._pong[name] > self.dead_after_s:
                raise ConnectionError(f"no PONG from {name}: connection presumed dead")
            if pubsub.subscribed:
                await pubsub.ping()
            else:
                self._pong[name] = now
        self._queue.put_nowait({"type": "pong", "data": None})  # the hub's own liveness

    async def aclose(self) -> None:
        await tasks.cancel(*self._readers.values())
        for client, pubsub in self._nodes.values():
            await _close(client, pubsub)
        self._readers.clear()
        self._nodes.clear()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.shutdown()


async def _close(client: Redis, pubsub: PubSub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
    with contextlib.suppress(Exception):
        await client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
