"""Configuration from the environment. A bad value fails start-up naming the variable."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.fanout import Bounds


class ConfigError(Exception):
    pass


ACTIVE_MARK_SECONDS = 3600  # a reader's last_active_at is written at most this often


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    postgres_url: str | None
    redis_url: str | None
    host: str
    port: int
    jwt_secret: str
    jwt_ttl_seconds: int
    celebrity_threshold: int
    timeline_max: int
    timeline_ttl_seconds: int
    active_days: int
    tweet_rate_per_hour: int
    event_bus: str
    tweet_store: str
    cassandra_consistency: str
    cassandra_replication: int
    kafka_partitions: int
    kafka_topic: str
    fanout_chunk: int
    worker_claim_idle_ms: int
    dev_pg_port: int
    dev_redis_port: int
    fault_exit_before_ack: bool
    max_query_depth: int
    max_query_tokens: int
    max_query_aliases: int
    pg_pool_size: int
    cache_mb: int
    archive_after_days: int
    archive_store: str
    archive_interval_hours: int
    archive_object_tweets: int
    archive_fault_after: str | None
    public_url: str | None
    media_store: str
    s3_endpoint_url: str | None
    s3_access_key_id: str | None
    s3_secret_access_key: str | None
    s3_region: str
    media_public_url: str | None
    media_max_bytes: int
    media_max_pixels: int
    media_uploads_per_hour: int
    media_orphan_hours: int
    media_workers: int
    # Hardening (docs/security.md): every limit, with its default.
    max_query_cost: int = 5000
    query_timeout_ms: int = 5000
    max_body_bytes: int = 1 << 20
    max_query_bytes: int = 16 * 1024
    max_ws_message_bytes: int = 64 * 1024
    document_cache_bytes: int = 32 << 20
    login_rate_per_minute: int = 10
    login_ip_rate_per_minute: int = 60
    signup_rate_per_hour: int = 20
    follow_rate_per_hour: int = 400
    read_rate_per_minute: int = 1200
    trusted_proxies: tuple[str, ...] = ()
    argon2_threads: int = 2
    idempotency_retention_hours: int = 24
    cors_origins: tuple[str, ...] = ()
    trusted_documents: Path | None = None
    graphiql: bool = True
    metrics_token: str | None = None
    internal_host: str = "127.0.0.1"
    internal_port: int | None = None  # /metrics and /readyz's detail, no token; None: off
    celebrity_demote_threshold: int = 9000
    celebrity_demote_quiet_seconds: int = 3600
    worker_timeout_retries: int = 5

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def celebrity(self) -> Bounds:
        return Bounds(self.celebrity_threshold, self.celebrity_demote_threshold,
                      self.celebrity_demote_quiet_seconds)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} must be between {lo} and {hi}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in ("true", "false", "1", "0"):
        raise ConfigError(f"{name}={raw!r} must be true or false (or 1 or 0)")
    return raw in ("true", "1")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in (env.get(name) or "").split(",") if p.strip())


def _proxies(env: Mapping[str, str]) -> tuple[str, ...]:
    found = _list(env, "CHIRP_TRUSTED_PROXIES")
    for p in found:
        try:
            ipaddress.ip_network(p, strict=False)
        except ValueError:
            raise ConfigError(
                f"CHIRP_TRUSTED_PROXIES: {p!r} is not an IP address or network") from None
    return found


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    found = _list(env, "CHIRP_CORS_ORIGINS")
    for o in found:
        if o != "*" and not (o.startswith(("http://", "https://")) and "/" not in o[8:]):
            raise ConfigError(
                f"CHIRP_CORS_ORIGINS: {o!r} must be an origin like https://app.example.com")
    return found


def _trusted_documents(env: Mapping[str, str]) -> Path | None:
    raw = env.get("CHIRP_TRUSTED_DOCUMENTS")
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"CHIRP_TRUSTED_DOCUMENTS={raw!r} is not a readable file")
    return path


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(tuple(s + "://" for s in schemes)):
        raise ConfigError(f"{name}={raw!r} must start with one of {', '.join(schemes)}://")
    return raw


def _redis_url(env: Mapping[str, str]) -> str | None:
    from storage.redis_client import cluster_seeds, is_cluster

    url = _url(env, "CHIRP_REDIS_URL", ("redis", "rediss", "unix", "redis+cluster"))
    if url is not None and is_cluster(url):
        try:
            cluster_seeds(url)
        except ValueError as e:
            raise ConfigError(
                f"CHIRP_REDIS_URL={url!r} must be redis+cluster://host:port[,host:port] ({e})"
            ) from None
    return url


def _jwt_secret(env: Mapping[str, str], envname: str, data_dir: Path) -> str:
    secret = env.get("CHIRP_JWT_SECRET")
    if secret:
        if len(secret) < 32:
            raise ConfigError("CHIRP_JWT_SECRET must be at least 32 characters")
        return secret
    if envname == "production":
        raise ConfigError("CHIRP_JWT_SECRET is required when CHIRP_ENV=production")
    # Development: generate once and keep it, so tokens survive a restart.
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


_CONSISTENCY_LEVELS = (
    "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE",
)


def _topic(name: str) -> str:
    if len(name) > 200 or not all(c.isalnum() or c in "._-" for c in name):
        raise ConfigError(f"CHIRP_KAFKA_TOPIC={name!r} must be letters, digits, '.', '_', '-'")
    return name


def _cassandra_url(url: str) -> None:
    # Imported here: the driver is only needed when Cassandra is configured.
    from storage.cassandra_tweets import parse_url

    parse_url(url)


def _object_store(env: Mapping[str, str], name: str) -> str:
    """`file` or `s3://bucket[/prefix]` (storage/objects.py)."""
    from storage.objects import parse_s3_url

    spec = env.get(name) or "file"
    if spec != "file":
        try:
            parse_s3_url(spec)
        except ValueError as e:
            raise ConfigError(f"{name}={spec!r} must be 'file' or s3://bucket[/prefix] ({e})") \
                from None
    return spec


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is None:
        return None
    if not raw.startswith(("http://", "https://")) or "?" in raw or "#" in raw:
        raise ConfigError(f"{name}={raw!r} must be an http(s):// base URL")
    return raw.rstrip("/")


def _archive_fault(raw: str | None) -> str | None:
    if raw is not None and not re.fullmatch(r"(written|indexed|deleted)(:[1-9][0-9]*)?", raw):
        raise ConfigError(
            f"CHIRP_ARCHIVE_FAULT_AFTER={raw!r} must be written, indexed or deleted[:n]"
        )
    return raw


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    envname = env.get("CHIRP_ENV", "development")
    if envname not in ("development", "test", "production"):
        raise ConfigError(f"CHIRP_ENV={envname!r} must be development, test or production")
    data_dir = Path(env.get("CHIRP_DATA_DIR") or ".chirp").resolve()
    event_bus = env.get("CHIRP_EVENT_BUS") or "redis"
    if event_bus != "redis" and not (event_bus.startswith("kafka://") and event_bus[8:]):
        raise ConfigError(
            f"CHIRP_EVENT_BUS={event_bus!r} must be 'redis' or kafka://host:port[,host:port]"
        )
    tweet_store = env.get("CHIRP_TWEET_STORE") or "postgres"
    if tweet_store != "postgres":
        try:
            _cassandra_url(tweet_store)
        except ValueError as e:
            raise ConfigError(
                f"CHIRP_TWEET_STORE={tweet_store!r} must be 'postgres' or "
                f"cassandra://host[,host][:port]/keyspace ({e})"
            ) from None
    consistency = (env.get("CHIRP_CASSANDRA_CONSISTENCY") or "LOCAL_QUORUM").upper()
    if consistency not in _CONSISTENCY_LEVELS:
        raise ConfigError(
            f"CHIRP_CASSANDRA_CONSISTENCY={consistency!r} must be one of "
            + ", ".join(_CONSISTENCY_LEVELS)
        )
    celebrity_threshold = _int(env, "CHIRP_CELEBRITY_THRESHOLD", 10_000, 1, 10**9)
    settings = Settings(
        env=envname,
        data_dir=data_dir,
        postgres_url=_url(env, "CHIRP_POSTGRES_URL", ("postgresql", "postgres")),
        redis_url=_redis_url(env),
        host=env.get("CHIRP_HOST") or "127.0.0.1",
        port=_int(env, "CHIRP_PORT", 8000, 1, 65535),
        jwt_secret=_jwt_secret(env, envname, data_dir),
        jwt_ttl_seconds=_int(env, "CHIRP_JWT_TTL_SECONDS", 7 * 24 * 3600, 60, 365 * 24 * 3600),
        celebrity_threshold=celebrity_threshold,
        timeline_max=_int(env, "CHIRP_TIMELINE_MAX", 800, 10, 100_000),
        timeline_ttl_seconds=_int(env, "CHIRP_TIMELINE_TTL_SECONDS", 72 * 3600, 60, 10**8),
        active_days=_int(env, "CHIRP_ACTIVE_DAYS", 30, 1, 3650),
        tweet_rate_per_hour=_int(env, "CHIRP_TWEET_RATE_PER_HOUR", 100, 1, 10**6),
        event_bus=event_bus,
        tweet_store=tweet_store,
        cassandra_consistency=consistency,
        cassandra_replication=_int(env, "CHIRP_CASSANDRA_REPLICATION", 1, 1, 9),
        kafka_partitions=_int(env, "CHIRP_KAFKA_PARTITIONS", 12, 1, 10_000),
        kafka_topic=_topic(env.get("CHIRP_KAFKA_TOPIC") or "chirp.events"),
        fanout_chunk=_int(env, "CHIRP_FANOUT_CHUNK", 20_000, 1000, 10**7),
        worker_claim_idle_ms=_int(env, "CHIRP_WORKER_CLAIM_IDLE_MS", 30_000, 100, 86_400_000),
        dev_pg_port=_int(env, "CHIRP_DEV_PG_PORT", 54329, 1, 65535),
        dev_redis_port=_int(env, "CHIRP_DEV_REDIS_PORT", 63799, 1, 65535),
        fault_exit_before_ack=_bool(env, "CHIRP_FAULT_EXIT_BEFORE_ACK", False),
        max_query_depth=_int(env, "CHIRP_MAX_QUERY_DEPTH", 10, 2, 100),
        max_query_tokens=_int(env, "CHIRP_MAX_QUERY_TOKENS", 2000, 100, 100_000),
        max_query_aliases=_int(env, "CHIRP_MAX_QUERY_ALIASES", 30, 1, 1000),
        pg_pool_size=_int(env, "CHIRP_PG_POOL_SIZE", 10, 1, 500),
        cache_mb=_int(env, "CHIRP_CACHE_MB", 256, 0, 1_000_000),
        archive_after_days=_int(env, "CHIRP_ARCHIVE_AFTER_DAYS", 365, 1, 100 * 365),
        archive_store=_object_store(env, "CHIRP_ARCHIVE_STORE"),
        archive_interval_hours=_int(env, "CHIRP_ARCHIVE_INTERVAL_HOURS", 24, 0, 24 * 365),
        archive_object_tweets=_int(env, "CHIRP_ARCHIVE_OBJECT_TWEETS", 500, 2, 100_000),
        archive_fault_after=_archive_fault(env.get("CHIRP_ARCHIVE_FAULT_AFTER") or None),
        public_url=_base_url(env, "CHIRP_PUBLIC_URL"),
        media_store=_object_store(env, "CHIRP_MEDIA_STORE"),
        s3_endpoint_url=_url(env, "CHIRP_S3_ENDPOINT_URL", ("http", "https")),
        s3_access_key_id=env.get("CHIRP_S3_ACCESS_KEY_ID") or None,
        s3_secret_access_key=env.get("CHIRP_S3_SECRET_ACCESS_KEY") or None,
        s3_region=env.get("CHIRP_S3_REGION") or "us-east-1",
        media_public_url=_base_url(env, "CHIRP_MEDIA_PUBLIC_URL"),
        media_max_bytes=_int(env, "CHIRP_MEDIA_MAX_BYTES", 5 << 20, 1024, 100 << 20),
        media_max_pixels=_int(env, "CHIRP_MEDIA_MAX_PIXELS", 50_000_000, 10_000, 200_000_000),
        media_uploads_per_hour=_int(env, "CHIRP_MEDIA_UPLOADS_PER_HOUR", 100, 1, 10**6),
        media_orphan_hours=_int(env, "CHIRP_MEDIA_ORPHAN_HOURS", 24, 0, 24 * 365),
        media_workers=_int(env, "CHIRP_MEDIA_WORKERS", 2, 1, 64),
        max_query_cost=_int(env, "CHIRP_MAX_QUERY_COST", 5000, 10, 10**9),
        query_timeout_ms=_int(env, "CHIRP_QUERY_TIMEOUT_MS", 5000, 10, 600_000),
        max_body_bytes=_int(env, "CHIRP_MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30),
        max_query_bytes=_int(env, "CHIRP_MAX_QUERY_BYTES", 16 * 1024, 256, 1 << 24),
        max_ws_message_bytes=_int(env, "CHIRP_MAX_WS_MESSAGE_BYTES", 64 * 1024, 1024,
                                  1 << 24),
        document_cache_bytes=_int(env, "CHIRP_DOCUMENT_CACHE_BYTES", 32 << 20, 1 << 16,
                                  1 << 32),
        login_rate_per_minute=_int(env, "CHIRP_LOGIN_RATE_PER_MINUTE", 10, 1, 10**6),
        login_ip_rate_per_minute=_int(env, "CHIRP_LOGIN_IP_RATE_PER_MINUTE", 60, 1, 10**6),
        signup_rate_per_hour=_int(env, "CHIRP_SIGNUP_RATE_PER_HOUR", 20, 1, 10**6),
        follow_rate_per_hour=_int(env, "CHIRP_FOLLOW_RATE_PER_HOUR", 400, 1, 10**6),
        read_rate_per_minute=_int(env, "CHIRP_READ_RATE_PER_MINUTE", 1200, 1, 10**7),
        trusted_proxies=_proxies(env),
        argon2_threads=_int(env, "CHIRP_PASSWORD_HASH_THREADS", 2, 1, 256),
        idempotency_retention_hours=_int(env, "CHIRP_IDEMPOTENCY_RETENTION_HOURS", 24, 1,
                                         24 * 365),
        cors_origins=_origins(env),
        trusted_documents=_trusted_documents(env),
        graphiql=_bool(env, "CHIRP_GRAPHIQL", envname != "production"),
        metrics_token=env.get("CHIRP_METRICS_TOKEN") or None,
        internal_host=env.get("CHIRP_INTERNAL_HOST") or "127.0.0.1",
        internal_port=_int(env, "CHIRP_INTERNAL_PORT", 0, 0, 65535) or None,
        celebrity_demote_threshold=_int(
            env, "CHIRP_CELEBRITY_DEMOTE_THRESHOLD",
            celebrity_threshold * 9 // 10, 0, 10**9),
        celebrity_demote_quiet_seconds=_int(
            env, "CHIRP_CELEBRITY_DEMOTE_QUIET_SECONDS", 3600, 0, 30 * 86400),
        worker_timeout_retries=_int(env, "CHIRP_WORKER_TIMEOUT_RETRIES", 5, 0, 1000),
    )
    if bool(settings.s3_access_key_id) != bool(settings.s3_secret_access_key):
        raise ConfigError("CHIRP_S3_ACCESS_KEY_ID and CHIRP_S3_SECRET_ACCESS_KEY go together "
                          "(or set neither, for the default AWS credential chain)")
    if settings.internal_port is not None and settings.internal_port == settings.port:
        raise ConfigError(f"CHIRP_INTERNAL_PORT={settings.internal_port} must differ from "
                          "CHIRP_PORT: the internal port serves metrics without a token")
    if settings.celebrity_demote_threshold > settings.celebrity_threshold:
        raise ConfigError(
            f"CHIRP_CELEBRITY_DEMOTE_THRESHOLD={settings.celebrity_demote_threshold} must not "
            f"exceed CHIRP_CELEBRITY_THRESHOLD={settings.celebrity_threshold}")
    # Fan-out skips inactive followers. That is only safe if their cached timelines expire
    # before they count as inactive; otherwise a live cache would silently miss tweets.
    if settings.active_days * 86400 <= settings.timeline_ttl_seconds + ACTIVE_MARK_SECONDS:
        raise ConfigError(
            f"CHIRP_ACTIVE_DAYS={settings.active_days} must exceed "
            f"CHIRP_TIMELINE_TTL_SECONDS={settings.timeline_ttl_seconds} (plus an hour): "
            "a cached timeline must expire before its owner stops receiving fan-out"
        )
    return settings
