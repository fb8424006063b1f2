"""Capped, newest-first lists of tweet ids in Redis: home timelines and per-author recents.

Encoding (measured in docs/timelines.md): one Redis string per list holding 8-byte
big-endian tweet ids, newest first. About 8 bytes per entry, against ~20 for a listpack
sorted set and 60+ once a sorted set outgrows its listpack; and ids above 2**53 do not fit
a sorted-set score exactly. Byte order equals numeric order, so the Lua scripts below
binary-search the string directly.

A trailing all-zero entry is the truncation sentinel: the list was capped (or built from
a capped read), so nothing below its last real entry is known and reads must continue from
the tweet store. Without it, a capped list that later lost entries to deletes or unfollows
would pass for complete.

Free slots in front of a full list. Redis cannot prepend, and rewriting a full list (6.4 KB)
for every new head was most of fan-out's cost. So when a new head reaches a full list, the
list is rewritten once with 15 free slots (all-255 bytes, which sort above every id) before
its entries; each later new head is written into the last free slot, and the entry that
falls off the cap is overwritten with zeros, becoming padding after the sentinel: 16 bytes
written in place, the string never grown (Redis grows strings greedily when appended to).
When the free slots run out, or anything other than a new head arrives, the list is
rewritten plain. Reads see the same entries either way: a head read skips the free slots
(one `string.find`), a search passes them (they sort first), and the first zero entry ends
the list. Measured in docs/timelines.md (`python -m bench.timeline_scripts`): Valkey CPU
per delivery into full lists 28 -> 17 us, +1.5 % memory.

Every write is idempotent (insert skips a present id) so at-least-once fan-out is safe,
and writes only touch lists that exist: a missing list is rebuilt on its next read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ConnectionError, NoScriptError, RedisClusterException

from core.timeline import ENTRY_BYTES, NEWEST, pack, unpack
from storage import keys, scripts
from storage.redis_client import by_slot

T = TypeVar("T")

SENTINEL = bytes(ENTRY_BYTES)

NAMES = ["insert", "remove", "merge", "read", "home", "begin", "notify", "present"]
# The scripts over many lists, which a cluster runs once per node (`_per_node`, `Reads`).
BATCHED = ["insert", "remove", "merge", "read"]
# Read once at start-up; a cache uses one set or the other by its client.
SINGLE_SCRIPTS = scripts.load(NAMES, scripts.SINGLE)
CLUSTER_SCRIPTS = scripts.load(NAMES, scripts.CLUSTER)
NODE_SCRIPTS = scripts.load(BATCHED, scripts.NODE)


class ReadState(Enum):
    MISSING = 0
    BUILDING = 1
    OK = 2


@dataclass(frozen=True, slots=True)
class CachedSlice:
    state: ReadState
    ids: list[int]
    truncated: bool  # the read reached the sentinel: nothing known below ids[-1]


def _id8(i: int) -> bytes:
    return i.to_bytes(ENTRY_BYTES, "big")


@dataclass(eq=False)
class TimelineCache:
    """One family of capped id lists under a key prefix (`tl` home, `ut` author recents)."""

    LOCK_MS = 10_000
    # On a cluster, a batch of writes waits this long at most for a replica to have them,
    # so a failover right after loses no delivery the worker went on to acknowledge
    # (docs/production.md). Best effort: a shard without a live replica is not waited for.
    REPLICA_WAIT_MS = 200

    redis: Redis | RedisCluster
    prefix: str
    cap: int
    ttl_seconds: int
    # Home timelines tell their owner's live subscriptions about inserts and deletes,
    # inside the same script call (no extra round trip, only for owners online).
    live: bool = False
    # Full lists keep free slots for new heads (module docstring): for lists written
    # about as often as they are read (home timelines, by fan-out), not for lists read
    # far more often than written (an author's recents, read by every follower's home
    # read), as a read of a list with free slots costs Valkey more (docs/timelines.md).
    free_slots: bool = False
    cluster: bool = field(init=False)
    scripts: dict[str, scripts.Script] = field(init=False)
    # Lists a per-node call skipped (their slot had moved or was moving) and sent again
    # per slot, on a cluster.
    resent: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.cluster = isinstance(self.redis, RedisCluster)
        self.scripts = CLUSTER_SCRIPTS if self.cluster else SINGLE_SCRIPTS

    def key(self, owner: int) -> str:
        return keys.timeline(self.prefix, owner)

    def lock_key(self, owner: int) -> str:
        return keys.rebuild_lock(self.prefix, owner)

    # -- running scripts: one round trip per batch, reloading scripts on NOSCRIPT

    async def run(self, build: Callable[[Pipeline], None], transaction: bool = False) -> list:
        """Queue commands with `build(pipe)` and send them in one round trip (per node, all
        nodes at once, on a cluster). Every script here is idempotent, so a batch is simply
        re-sent after reloading on NOSCRIPT."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=transaction) as pipe:
                build(pipe)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
            await self.load_scripts()
        raise AssertionError("unreachable")

    async def load_scripts(self) -> None:
        if self.cluster:  # SCRIPT LOAD goes to every primary
            for script in [*self.scripts.values(), *NODE_SCRIPTS.values()]:
                await self.redis.script_load(script.source)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for script in self.scripts.values():
                pipe.script_load(script.source)
            await pipe.execute()

    def call(self, pipe: Pipeline, name: str, names: list[str], args: list) -> None:
        # execute_command: redis-py's cluster pipeline refuses its evalsha(), not EVALSHA
        pipe.execute_command("EVALSHA", self.scripts[name].sha, len(names), *names, *args)

    def queue_replica_wait(self, pipe: Pipeline, owners: list[int]) -> int:
        """On a cluster, queue a WAIT on each primary holding one of the owners' lists;
        how many were queued (their replies come last)."""
        if not self.cluster:
            return 0
        nodes = [node for node, _owners in self._by_node(owners, self.key)]
        for node in nodes:
            pipe.execute_command("WAIT", 1, self.REPLICA_WAIT_MS, target_nodes=node)
        return len(nodes)

    def queue_present(self, pipe: Pipeline, owners: list[int], hub: str, ttl_ms: int
                      ) -> list[list[int]]:
        """Queue marking `hub` present for the owners and renewing their lists' TTL
        (storage/lua/present.lua): one call per batch, per slot on a cluster. Returns the
        batches; each one's reply says per owner whether its list exists."""
        batches = self._batches(owners) if owners else []
        for batch in batches:
            names = [name for o in batch for name in (keys.presence(o), self.key(o))]
            self.call(pipe, "present", names, [hub, ttl_ms, self.ttl_seconds])
        return batches

    def _batches(self, owners: list[int]) -> list[list[int]]:
        """One script call's owners: all of them, or on a cluster one group per slot."""
        return by_slot(owners, self.key) if self.cluster else [owners]

    def _node_of(self, key: str) -> ClusterNode:
        """The primary serving `key`'s slot, by the client's slot map."""
        try:
            return self.redis.get_node_from_key(key)
        except RedisClusterException as e:  # no node for the slot: failing over
            raise ConnectionError(f"Redis Cluster: {e}") from e

    def _by_node(self, items: list[T], key: Callable[[T], str]
                 ) -> list[tuple[ClusterNode, list[T]]]:
        """Items grouped by the primary holding key(item), by the client's slot map."""
        groups: dict[str, tuple[ClusterNode, list[T]]] = {}
        for item in items:
            node = self._node_of(key(item))
            groups.setdefault(node.name, (node, []))[1].append(item)
        return list(groups.values())

    async def _per_node(self, name: str, owners: list[int], args: list, live: bool,
                        extra: Callable[[Pipeline], None] | None = None) -> int:
        """On a cluster, `name` over many lists: one call per node holding some (a page of
        1,000 followers spans ~1,000 slots but 3 nodes), all nodes at once, then `extra`
        queued and a replica wait. Lists a node did not serve are sent again per slot with
        declared keys (`_each`); every batched script skips such a list untouched, so the
        replies' sum counts each list once. `live`: the lists' owners get live notices."""
        groups = self._by_node(owners, self.key)
        sha = NODE_SCRIPTS[name].sha

        def build(pipe: Pipeline) -> None:
            for node, batch in groups:
                pipe.execute_command("EVALSHA", sha, 0, *args, *map(self.key, batch),
                                     target_nodes=node)
            if extra is not None:
                extra(pipe)
            for node, _batch in groups:
                pipe.execute_command("WAIT", 1, self.REPLICA_WAIT_MS, target_nodes=node)

        replies = await self.run(build)
        total, skipped = 0, []
        for (_node, batch), (done, *missed) in zip(groups, replies, strict=False):
            total += done
            skipped += [batch[i - 1] for i in missed]
        if skipped:
            self.resent += len(skipped)
            names = self._changed_keys if live else (lambda b: [self.key(o) for o in b])
            total += await self._each(name, skipped, names, args)
        return total

    async def _one(self, name: str, names: list[str], args: list):
        (reply,) = await self.run(lambda pipe: self.call(pipe, name, names, args))
        return reply

    async def _each(self, name: str, owners: list[int], names, args: list) -> int:
        """One call of `name` per batch of owners (`names(batch)` its keys); the replies'
        sum."""
        batches = self._batches(owners)

        def build(pipe: Pipeline) -> None:
            for batch in batches:
                self.call(pipe, name, names(batch), args)
            self.queue_replica_wait(pipe, owners)

        return sum((await self.run(build))[:len(batches)])

    # -- reads

    async def read(
        self, owner: int, before: int = NEWEST, since: int = 0, count: int = 20, renew: bool = True
    ) -> CachedSlice:
        reads = Reads([(self, owner)], before, since, count, renew)
        replies = await self.run(reads.queue)
        return self.parse(reads.collect(replies)[0])

    def parse(self, reply: list) -> CachedSlice:
        state, *rest = reply
        if state != ReadState.OK.value:
            return CachedSlice(ReadState(state), [], False)
        blob: bytes = rest[0]
        truncated = blob.endswith(SENTINEL)
        ids = unpack(blob[:-ENTRY_BYTES] if truncated else blob)
        return CachedSlice(ReadState.OK, ids, truncated)

    # -- writes (each touches only lists that exist)

    def _insert_args(self, tweet_id: int) -> list:
        return [_id8(tweet_id), self.cap, str(tweet_id) if self.live else "",
                "1" if self.free_slots else "0"]

    def _changed_keys(self, owners: list[int]) -> list[str]:
        """A writing script's keys: the lists, then on a cluster (live notices) their owners'
        presence keys, which the script reads (storage/lua/live_*.lua)."""
        lists = [self.key(o) for o in owners]
        return lists + [keys.presence(o) for o in owners] if self.live and self.cluster \
            else lists

    def queue_insert(self, pipe: Pipeline, owner: int, tweet_id: int) -> None:
        self.call(pipe, "insert", self._changed_keys([owner]), self._insert_args(tweet_id))

    async def insert(self, owner: int, tweet_id: int) -> bool:
        return bool(await self._one("insert", self._changed_keys([owner]),
                                    self._insert_args(tweet_id)))

    # Many lists are written by one script call over all their keys (per slot on a
    # cluster): one command and one reply per batch, not one per list (docs/timelines.md).

    async def insert_many(
        self, owners: list[int], tweet_id: int, count_into: str | None = None
    ) -> int:
        """Push one id into many lists in one round trip; returns lists inserted into.
        `count_into` names a counter to add the attempts to, in the same round trip."""
        if not owners:
            return 0
        args = self._insert_args(tweet_id)

        def count(pipe: Pipeline) -> None:
            if count_into:
                pipe.incrby(count_into, len(owners))

        if self.cluster:
            return await self._per_node("insert", owners, args, self.live, count)

        def build(pipe: Pipeline) -> None:
            self.call(pipe, "insert", self._changed_keys(owners), args)
            count(pipe)

        return (await self.run(build))[0]

    async def remove_many(
        self, owners: list[int], tweet_ids: list[int], deleted: bool = False
    ) -> int:
        """Remove ids from lists; `deleted` (one id) tells live owners it was deleted."""
        if not owners or not tweet_ids:
            return 0
        notice = str(tweet_ids[0]) if deleted and self.live and len(tweet_ids) == 1 else ""
        if self.cluster:
            return await self._per_node("remove", owners, [pack(tweet_ids), notice],
                                        bool(notice))

        def names(batch: list[int]) -> list[str]:
            return self._changed_keys(batch) if notice else [self.key(o) for o in batch]

        return await self._each("remove", owners, names, [pack(tweet_ids), notice])

    async def merge(self, owner: int, ids: list[int], truncated: bool) -> bool:
        """Merge newest-first `ids` into an existing list; False if there is none."""
        return await self.merge_many([owner], ids, truncated) == 1

    async def merge_many(self, owners: list[int], ids: list[int], truncated: bool) -> int:
        """Returns how many of the lists existed and were merged into."""
        if not owners:
            return 0
        args = [pack(ids), "1" if truncated else "0", self.cap, 0]
        if self.cluster:
            return await self._per_node("merge", owners, args, False)
        return await self._each("merge", owners, lambda b: [self.key(o) for o in b], args)

    def queue_notify(self, pipe: Pipeline, presence: str, channel: str, payload: str) -> None:
        """Queue a publish that happens only if `presence` exists (a session listens);
        `channel` is in `presence`'s slot."""
        self.call(pipe, "notify", [presence], [channel, payload])

    # -- rebuilds

    async def begin_rebuild(self, owner: int) -> str:
        reply = await self._one(
            "begin", [self.key(owner), self.lock_key(owner)], [self.LOCK_MS]
        )
        return reply.decode() if isinstance(reply, bytes) else reply

    async def finish_rebuild(self, owner: int, ids: list[int], truncated: bool) -> None:
        """Merge what the store returned with what fan-out pushed meanwhile, give the list
        its full TTL and release the lock, in one round trip."""
        args = [pack(ids), "1" if truncated else "0", self.cap, self.ttl_seconds * 1000]

        def build(pipe: Pipeline) -> None:
            self.call(pipe, "merge", [self.key(owner)], args)
            pipe.delete(self.lock_key(owner))

        await self.run(build, transaction=True)

    async def abandon_rebuild(self, owner: int) -> None:
        await self.redis.delete(self.key(owner), self.lock_key(owner))

    async def drop(self, owner: int) -> None:
        await self.redis.delete(self.key(owner))


class Reads:
    """Script calls reading the same window of several lists (any families): one call on
    one server; on a cluster one per node holding some (storage/lua/reads_node.lua), or for
    a single list one call declaring its keys, so the client follows MOVED and ASK (a list
    a node no longer serves comes back as being rebuilt, and the caller's read of it on
    its own is that call). `queue(pipe)` queues them first in a pipeline;
    `collect(replies)` gives one reply per source, in order, each for that cache's
    `parse`. `renew_first` gives the first list its cache's full TTL again."""

    def __init__(self, sources: list[tuple[TimelineCache, int]], before: int, since: int,
                 count: int, renew_first: bool = False) -> None:
        first = sources[0][0]
        indexed = list(enumerate(sources))
        self.nodes: list[ClusterNode] = []  # each group's node, when one call per node
        if first.cluster and len(sources) > 1:
            by_node = first._by_node(indexed, lambda s: s[1][0].key(s[1][1]))
            self.nodes = [node for node, _group in by_node]
            self.groups = [group for _node, group in by_node]
        else:
            self.groups = [indexed]
        self.first = first
        self.args = [_id8(before), _id8(since), count]
        self.ttl = first.ttl_seconds if renew_first else 0

    @property
    def calls(self) -> int:
        return len(self.groups)

    def queue(self, pipe: Pipeline) -> None:
        for k, group in enumerate(self.groups):
            names: list[str] = []
            for _i, (cache, owner) in group:
                names += (cache.key(owner), cache.lock_key(owner))
            ttl = self.ttl if group[0][0] == 0 else 0
            if self.nodes:
                pipe.execute_command("EVALSHA", NODE_SCRIPTS["read"].sha, 0, *self.args, ttl,
                                     *names, target_nodes=self.nodes[k])
            else:
                self.first.call(pipe, "read", names, [*self.args, ttl])

    def collect(self, replies: list) -> list:
        out: list = [None] * sum(len(g) for g in self.groups)
        for group, reply in zip(self.groups, replies, strict=False):
            for (i, _source), one in zip(group, reply, strict=True):
                out[i] = one
        return out


def queue_reads(
    pipe: Pipeline, sources: list[tuple[TimelineCache, int]], before: int, since: int,
    count: int, renew_first: bool = False,
) -> Reads:
    """Queue the reads of `sources` (see Reads); their replies come first in the pipeline's,
    `Reads.calls` of them, for `Reads.collect`."""
    reads = Reads(sources, before, since, count, renew_first)
    reads.queue(pipe)
    return reads
