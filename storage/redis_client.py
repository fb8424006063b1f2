"""Redis clients: one server, or a Redis Cluster (docs/modules.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError, RedisClusterException

# (the AttributeError: see the module doc)
_CLUSTER_ERRORS = (RedisClusterException, AttributeError)

CLUSTER_SCHEME = "redis+cluster://"
T = TypeVar("T")


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The host:port pairs of a redis+cluster:// URL; ValueError if malformed."""
    rest = url[len(CLUSTER_SCHEME):].split("/", 1)[0]
    seeds = []
    for part in rest.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        seeds.append((host, int(port)))
    return seeds


class _Pipeline(ClusterPipeline):
    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        try:
            return await super().initialize(*args, **kwargs)
        except _CLUSTER_ERRORS as e:
            raise ConnectionError(f"Redis Cluster: {e}") from e

    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return await super().execute(*args, **kwargs)
        except _CLUSTER_ERRORS as e:
            raise ConnectionError(f"Redis Cluster: {e}") from e


class _Commands(AsyncCommandsParser):
    """COMMAND's table, read once: redis-py reads it again on every slot-map refresh, from
    the first primary, so one dead primary failed every refresh and every node's reads."""

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if node:
            self.node = node
        if not self.commands:
            await super().initialize()


class ChirpCluster(RedisCluster):
    """RedisCluster whose cluster-only exceptions are RedisErrors, and whose node errors
    refresh the slot map without cutting the other nodes' connections (docs/modules.md)."""

    _closing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser = _Commands()

    async def aclose(self) -> None:
        # redis-py calls this to refresh the slot map: keep the live nodes' connections.
        if self._closing:
            await super().aclose()
        else:
            self._initialize = True

    async def shutdown(self) -> None:
        self._closing = True
        await super().aclose()

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except _CLUSTER_ERRORS as e:
            raise ConnectionError(f"Redis Cluster: {e}") from e

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except _CLUSTER_ERRORS as e:
            raise ConnectionError(f"Redis Cluster: {e}") from e

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        return _Pipeline(self, transaction)


# Fail fast when Redis is down: reads then degrade to the database instead of hanging.
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.0


def connect(url: str, **overrides: Any) -> Redis | ChirpCluster:
    options: dict[str, Any] = dict(
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=READ_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        max_connections=256,
    )
    options.update(overrides)
    if not is_cluster(url):
        return Redis.from_url(url, **options)
    nodes = [ClusterNode(host, port) for host, port in cluster_seeds(url)]
    # A slot whose primary is failing over is refused by the client, not the whole cluster.
    return ChirpCluster(startup_nodes=nodes, require_full_coverage=False, **options)


def node_url(url: str) -> str:
    """A URL of one server for a plain connection: on a cluster, the first seed node (classic
    PUBLISH reaches every node of a cluster, so a rare channel can be heard on any one)."""
    if not is_cluster(url):
        return url
    host, port = cluster_seeds(url)[0]
    return f"redis://{host}:{port}"


async def close(redis: Redis | RedisCluster) -> None:
    if isinstance(redis, ChirpCluster):
        await redis.shutdown()
    else:
        await redis.aclose()


def by_slot(items: Iterable[T], key: Callable[[T], str]) -> list[list[T]]:
    """Items grouped by the hash slot of key(item), each group in its original order."""
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(key_slot(key(item).encode()), []).append(item)
    return list(groups.values())
