"""Builds the object graph from Settings: connections, stores, caches and services."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis, RedisCluster

from runtime.settings import Settings
from services.accounts import Accounts
from services.feed import FeedManager
from services.limits import Limits
from services.media import MediaConfig, MediaLibrary
from services.social import Social
from services.tweeting import Tweeting
from storage import keys, postgres
from storage.archive import Archive
from storage.archived_tweets import ArchivedTweetStore
from storage.cassandra_tweets import CassandraTweetStore
from storage.eventbus import EventBus, RedisStreamBus
from storage.graph import SocialGraph
from storage.idlease import LeasedIds
from storage.kafka_bus import KafkaBus
from storage.kafka_bus import parse_url as parse_kafka_url
from storage.multiplexed import MultiplexedRedis
from storage.object_server import request_base_or
from storage.objects import ObjectStore, S3Config, open_store
from storage.ratelimit import RateLimiter
from storage.readcache import ReadCaches
from storage.redis_client import close as close_redis
from storage.redis_client import connect as redis_connect
from storage.revocations import Revocations
from storage.timeline_cache import TimelineCache
from storage.tweets import PostgresTweetStore, TweetStore
from storage.users import UserStore


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis | RedisCluster
    ids: LeasedIds
    users: UserStore
    graph: SocialGraph
    tweets: ArchivedTweetStore  # the live store, continued into the archive
    live_tweets: TweetStore  # the live store alone (the archive worker moves from it)
    archive: Archive
    home: TimelineCache
    recents: TimelineCache
    feed: FeedManager
    bus: EventBus
    accounts: Accounts
    tweeting: Tweeting
    social: Social
    media: MediaLibrary
    limits: Limits
    caches: ReadCaches | None = None  # None when CHIRP_CACHE_MB=0

    def probes(self) -> dict[str, Callable[[], Awaitable[object]]]:
        """One readiness check per backend in use."""
        found: dict[str, Callable[[], Awaitable[object]]] = {
            "postgres": lambda: self.pool.fetchval("SELECT 1"),
            "redis": self.redis.ping,
        }
        if self.settings.tweet_store != "postgres":
            found["cassandra"] = self.tweets.ping
        if self.settings.event_bus != "redis":
            found["kafka"] = self.bus.ping
        if self.settings.media_store != "file":
            found["s3"] = self.media.store.ping
        if self.settings.archive_store != "file":
            found["archive"] = self.archive.objects.ping
        return found

    async def close(self) -> None:
        await self.accounts.sessions.close()
        if self.accounts.revocations is not None:
            await self.accounts.revocations.stop()
        if self.caches is not None:
            await self.caches.close()
        await self.feed.activity.close()
        if self.feed.line is not None:
            await self.feed.line.aclose()
        await self.ids.close()
        with contextlib.suppress(Exception):
            await self.bus.close()
        await self.tweets.close()
        with contextlib.suppress(Exception):
            await self.media.close()
        with contextlib.suppress(Exception):
            await self.archive.objects.close()
        with contextlib.suppress(Exception):
            await close_redis(self.redis)
        await self.pool.close()


def redis_client(url: str) -> Redis | RedisCluster:
    """One server or a Redis Cluster, by the URL (storage/redis_client.py)."""
    return redis_connect(url)


async def tweet_store(settings: Settings, pool: asyncpg.Pool) -> TweetStore:
    if settings.tweet_store == "postgres":
        return PostgresTweetStore(pool)
    return await CassandraTweetStore.connect(
        settings.tweet_store, settings.cassandra_consistency, settings.cassandra_replication
    )


def archive_of(settings: Settings, pool: asyncpg.Pool) -> Archive:
    return Archive(pool, object_store(settings, settings.archive_store, "archive"),
                   object_max=settings.archive_object_tweets)


async def archive_parts(settings: Settings) -> tuple[asyncpg.Pool, TweetStore, Archive]:
    """What the archive command needs: PostgreSQL, the live tweet store and the archive."""
    from runtime.dev import dev_postgres_url

    # The run's lock holds one connection; each of its concurrent movers uses one at a time.
    pool = await postgres.connect(settings.postgres_url or dev_postgres_url(settings), 6)
    try:
        await postgres.migrate(pool)
        live = await tweet_store(settings, pool)
    except BaseException:
        await pool.close()
        raise
    return pool, live, archive_of(settings, pool)


def event_bus(settings: Settings, redis: Redis | RedisCluster, claim_idle_ms: int) -> EventBus:
    if settings.event_bus == "redis":
        return RedisStreamBus(redis, claim_idle_ms=claim_idle_ms)
    return KafkaBus(
        parse_kafka_url(settings.event_bus), topic=settings.kafka_topic,
        partitions=settings.kafka_partitions,
        claim_idle_ms=claim_idle_ms,
    )


def object_store(settings: Settings, spec: str, name: str) -> ObjectStore:
    """The store `spec` names: `file` (under CHIRP_DATA_DIR, served by the API) or `s3://…`."""
    s3 = S3Config(settings.s3_endpoint_url, settings.s3_access_key_id,
                  settings.s3_secret_access_key, settings.s3_region)
    base_url = settings.public_url or request_base_or(f"http://{settings.host}:{settings.port}")
    return open_store(spec, name=name, root=settings.data_dir / "objects" / name,
                      base_url=base_url, secret=settings.jwt_secret.encode(), s3=s3)


async def open_services(
    settings: Settings,
    *,
    migrate: bool = True,
    on_query: Callable[[object], None] | None = None,
    claim_idle_ms: int = 30_000,
) -> Services:
    if not settings.postgres_url or not settings.redis_url:
        raise RuntimeError("CHIRP_POSTGRES_URL and CHIRP_REDIS_URL must be set")
    pool = await postgres.connect(settings.postgres_url, settings.pg_pool_size, on_query)
    if migrate:
        await postgres.migrate(pool)
    redis = redis_client(settings.redis_url)
    ids = LeasedIds(redis)
    await ids.start()
    users = UserStore(pool)
    graph = SocialGraph(pool)
    try:
        live = await tweet_store(settings, pool)
        archive = archive_of(settings, pool)
    except BaseException:
        await ids.close()
        await close_redis(redis)
        await pool.close()
        raise
    home = TimelineCache(
        redis, keys.HOME, settings.timeline_max, settings.timeline_ttl_seconds, live=True,
        free_slots=True,
    )
    recents = TimelineCache(
        redis, keys.RECENTS, settings.timeline_max, settings.timeline_ttl_seconds
    )
    tweets = ArchivedTweetStore(live, archive)
    caches = (ReadCaches(redis, settings.redis_url, settings.cache_mb)
              if settings.cache_mb else None)
    feed = FeedManager(
        home, recents, tweets, graph, users, settings.celebrity_threshold, settings.active_days,
        settings.fanout_chunk, caches, MultiplexedRedis.from_url(settings.redis_url),
    )
    limiter = RateLimiter(redis)
    media = MediaLibrary(
        pool, object_store(settings, settings.media_store, "media"), limiter, ids.next_id,
        MediaConfig(
            max_bytes=settings.media_max_bytes, max_pixels=settings.media_max_pixels,
            uploads_per_hour=settings.media_uploads_per_hour,
            orphan_hours=settings.media_orphan_hours, public_url=settings.media_public_url,
            workers=settings.media_workers,
        ),
    )
    return Services(
        settings=settings,
        pool=pool,
        redis=redis,
        ids=ids,
        users=users,
        graph=graph,
        tweets=tweets,
        live_tweets=live,
        archive=archive,
        home=home,
        recents=recents,
        feed=feed,
        bus=event_bus(settings, redis, claim_idle_ms),
        accounts=Accounts(users, ids.next_id, settings.jwt_secret, settings.jwt_ttl_seconds,
                          Revocations(redis, settings.redis_url, settings.jwt_ttl_seconds),
                          settings.argon2_threads),
        tweeting=Tweeting(
            pool, tweets, feed, limiter, ids.next_id, settings.tweet_rate_per_hour,
            settings.idempotency_retention_hours, media=media,
        ),
        social=Social(graph, users, feed, ids.next_id, settings.celebrity),
        limits=Limits(settings, limiter),
        media=media,
        caches=caches,
    )
