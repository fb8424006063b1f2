"""The tweet store on Apache Cassandra (docs/modules.md)."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cassandra import ConsistencyLevel, DriverException
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, tuple_factory

import migrations
from core.errors import Unavailable
from core.ids import id_timestamp_ms
from core.models import Tweet
from core.timeline import NEWEST
from storage.tweets import IdCollision

MIGRATIONS_DIR = migrations.CASSANDRA
BUCKET_MS = 7 * 24 * 3600 * 1000  # never change once data exists: reads derive buckets
READ_CONCURRENCY = 32  # in-flight reads per multi-key call
IN_BATCH = 64  # ids per IN query (Cassandra warns past 100 partition keys in one IN)

_COLUMNS = "id, author_id, text, created_at"


def parse_url(url: str) -> tuple[list[str], int, str]:
    """`cassandra://host1,host2:9042/keyspace` → (hosts, port, keyspace)."""
    parts = urlsplit(url)
    if parts.scheme != "cassandra":
        raise ValueError(f"{url!r} is not a cassandra:// URL")
    keyspace = parts.path.strip("/") or "chirp"
    if not keyspace.replace("_", "").isalnum():
        raise ValueError(f"{keyspace!r} is not a valid keyspace name")
    hosts, port = [], 9042
    for item in parts.netloc.split(","):
        host, _, p = item.strip().partition(":")
        if host:
            hosts.append(host)
        if p:
            port = int(p)
    if not hosts:
        raise ValueError(f"{url!r} names no Cassandra host")
    return hosts, port, keyspace


def bucket_of(tweet_id: int) -> int:
    # Far-future bounds (NEWEST) map to the current bucket, or the next for a fast clock.
    ms = min(id_timestamp_ms(tweet_id), int(time.time() * 1000) + BUCKET_MS)
    return ms // BUCKET_MS


def _micros(tweet_id: int) -> int:
    return id_timestamp_ms(tweet_id) * 1000


def _tweet(row: tuple) -> Tweet:
    created = row[3]
    if created.tzinfo is None:  # the driver returns naive UTC datetimes
        created = created.replace(tzinfo=UTC)
    return Tweet(row[0], row[1], row[2], created)


async def _aio(future: ResponseFuture) -> list:
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def ok(rows: Any) -> None:
        loop.call_soon_threadsafe(_settle, done, rows, None)

    def failed(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_settle, done, None, exc)

    future.add_callbacks(ok, failed)
    try:
        rows = await done
    except (DriverException, NoHostAvailable, OSError) as e:
        raise Unavailable(f"tweet store unavailable: {type(e).__name__}") from e
    return list(rows or ())


def _settle(done: asyncio.Future, rows: Any, exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(rows)


def connect_cluster(hosts: list[str], port: int) -> tuple[Cluster, Session]:
    """Blocking: run it in a thread."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        row_factory=tuple_factory,
        request_timeout=5,
    )
    cluster = Cluster(
        hosts, port=port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        # The default backs off to 10 minutes: reads stayed UNAVAILABLE long after an outage.
        reconnection_policy=ExponentialReconnectionPolicy(0.5, 5.0),
        connect_timeout=5, control_connection_timeout=5,
    )
    return cluster, cluster.connect()


def migrate(session: Session, keyspace: str, replication: int = 1,
            directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Blocking. The keyspace, then pending CQL files in order (all IF NOT EXISTS)."""
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication}}}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(name text PRIMARY KEY, applied_at timestamp)"
    )
    done = {r[0] for r in session.execute(f"SELECT name FROM {keyspace}.schema_migrations")}
    session.set_keyspace(keyspace)
    applied = []
    for name, cql in migrations.pending(directory, ".cql", done):
        for statement in _statements(cql):
            session.execute(statement)
        session.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, toTimestamp(now()))",
            (name,),
        )
        applied.append(name)
    return applied


def _statements(cql: str) -> list[str]:
    lines = [line for line in cql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class CassandraTweetStore:
    # Writes cannot join a PostgreSQL transaction: the outbox event carries the text.
    transactional = False

    def __init__(self, cluster: Cluster, session: Session, keyspace: str,
                 consistency: str = "LOCAL_QUORUM") -> None:
        self.cluster = cluster
        self.session = session
        self.keyspace = keyspace
        level = getattr(ConsistencyLevel, consistency.upper(), None)
        if not isinstance(level, int):
            raise ValueError(f"unknown Cassandra consistency level {consistency!r}")
        self.consistency = level
        prepare = self._prepare
        self._get = prepare(f"SELECT {_COLUMNS} FROM tweets WHERE id = ?")
        self._get_in = prepare(f"SELECT {_COLUMNS} FROM tweets WHERE id IN ?")
        self._release = prepare("SELECT release_version FROM system.local")
        self._put_by_id = prepare(
            f"INSERT INTO tweets ({_COLUMNS}) VALUES (?, ?, ?, ?) USING TIMESTAMP ?")
        self._put_by_author = prepare(
            "INSERT INTO tweets_by_author (author_id, bucket, id, text, created_at) "
            "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?")
        self._put_bucket = prepare(
            "INSERT INTO author_buckets (author_id, bucket) VALUES (?, ?) USING TIMESTAMP ?")
        self._del_by_id = prepare("DELETE FROM tweets USING TIMESTAMP ? WHERE id = ?")
        self._del_by_author = prepare(
            "DELETE FROM tweets_by_author USING TIMESTAMP ? "
            "WHERE author_id = ? AND bucket = ? AND id = ?")
        self._buckets = prepare(
            "SELECT bucket FROM author_buckets WHERE author_id = ? AND bucket <= ? "
            "AND bucket >= ?")
        self._all_buckets = prepare("SELECT author_id, bucket FROM author_buckets")
        self._all_buckets.fetch_size = 5000
        self._in_bucket = prepare(
            f"SELECT {_COLUMNS} FROM tweets_by_author WHERE author_id = ? AND bucket = ? "
            "AND id < ? AND id > ? LIMIT ?")

    @classmethod
    def open(cls, url: str, consistency: str = "LOCAL_QUORUM",
             replication: int = 1) -> CassandraTweetStore:
        """Blocking: connect, migrate and prepare."""
        hosts, port, keyspace = parse_url(url)
        cluster, session = connect_cluster(hosts, port)
        try:
            migrate(session, keyspace, replication)
            return cls(cluster, session, keyspace, consistency)
        except BaseException:
            cluster.shutdown()
            raise

    @classmethod
    async def connect(cls, url: str, consistency: str = "LOCAL_QUORUM",
                      replication: int = 1) -> CassandraTweetStore:
        try:
            return await asyncio.to_thread(cls.open, url, consistency, replication)
        except (DriverException, NoHostAvailable, OSError) as e:
            raise Unavailable(f"Cassandra at {url} unavailable: {e}") from e

    def _prepare(self, cql: str):
        stmt = self.session.prepare(cql)
        stmt.consistency_level = self.consistency
        return stmt

    async def _run(self, stmt, params: Sequence[Any]) -> list:
        return await _aio(self.session.execute_async(stmt, params))

    def _batch(self) -> BatchStatement:
        # Logged: the rows of one tweet land together or not at all.
        return BatchStatement(BatchType.LOGGED, consistency_level=self.consistency)

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.shutdown)

    async def put(self, tweet: Tweet, tx: Any = None) -> None:
        existing = await self._one(tweet.id)
        if existing is not None:
            if (existing.author_id, existing.text) != (tweet.author_id, tweet.text):
                raise IdCollision(tweet.id)
            return
        ts = _micros(tweet.id)
        bucket = bucket_of(tweet.id)
        batch = self._batch()
        batch.add(self._put_by_id, (tweet.id, tweet.author_id, tweet.text, tweet.created_at, ts))
        batch.add(self._put_by_author, (tweet.author_id, bucket, tweet.id, tweet.text,
                                        tweet.created_at, ts))
        batch.add(self._put_bucket, (tweet.author_id, bucket, ts))
        await _aio(self.session.execute_async(batch))

    async def delete(self, tweet_id: int, tx: Any = None) -> Tweet | None:
        existing = await self._one(tweet_id)
        if existing is None:
            return None
        # Later than the write, whatever this host's clock says.
        ts = max(int(time.time() * 1_000_000), _micros(tweet_id) + 1)
        batch = self._batch()
        batch.add(self._del_by_id, (ts, tweet_id))
        batch.add(self._del_by_author, (ts, existing.author_id, bucket_of(tweet_id), tweet_id))
        await _aio(self.session.execute_async(batch))
        return existing

    async def delete_many(self, ids: Sequence[int], tx: Any = None) -> set[int]:
        gone = await self._gather([self.delete(i) for i in dict.fromkeys(ids)])
        return {t.id for t in gone if t is not None}

    async def authors_before(self, before: int) -> list[int]:
        # A scan of author_buckets (one small row per author-week), paged by the driver.
        last = bucket_of(before)
        rows = await asyncio.to_thread(
            lambda: [r for r in self.session.execute(self._all_buckets) if r[1] <= last]
        )
        return sorted({r[0] for r in rows})

    async def ping(self) -> None:
        await self._run(self._release, ())

    async def _one(self, tweet_id: int) -> Tweet | None:
        rows = await self._run(self._get, (tweet_id,))
        return _tweet(rows[0]) if rows else None

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]:
        # IN queries, not a read per id: the driver's per-request cost (docs/production.md).
        wanted = list(dict.fromkeys(ids))
        batches = [wanted[i:i + IN_BATCH] for i in range(0, len(wanted), IN_BATCH)]
        rows = await self._gather([self._run(self._get_in, (b,)) for b in batches])
        return {r[0]: _tweet(r) for got in rows for r in got}

    async def by_author(
        self, author_id: int, before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        if limit <= 0 or before <= since + 1:
            return []
        buckets = await self._run(
            self._buckets, (author_id, bucket_of(before), bucket_of(max(since, 0)))
        )
        out: list[Tweet] = []
        for (bucket,) in buckets:
            rows = await self._run(
                self._in_bucket, (author_id, bucket, before, since, limit - len(out))
            )
            out.extend(_tweet(r) for r in rows)
            if len(out) >= limit:
                break
        return out

    async def by_authors(
        self, author_ids: Sequence[int], before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        if not author_ids:
            return []
        per_author = await self._gather(
            [self.by_author(a, before, since, limit) for a in dict.fromkeys(author_ids)]
        )
        merged = heapq.merge(*per_author, key=lambda t: -t.id)
        return [t for t, _ in zip(merged, range(limit), strict=False)]

    @staticmethod
    async def _gather(calls: list) -> list:
        sem = asyncio.Semaphore(READ_CONCURRENCY)

        async def bounded(call):
            async with sem:
                return await call

        return await asyncio.gather(*(bounded(c) for c in calls))
