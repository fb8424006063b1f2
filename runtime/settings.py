"""Configuration from the environment. A bad value fails start-up naming the variable."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


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
    max_query_depth: int
    max_query_tokens: int
    max_query_aliases: int
    pg_pool_size: int
    cache_mb: int

    @property
    def production(self) -> bool:
        return self.env == "production"


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


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(tuple(s + "://" for s in schemes)):
        raise ConfigError(f"{name}={raw!r} must start with one of {', '.join(schemes)}://")
    return raw


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
    settings = Settings(
        env=envname,
        data_dir=data_dir,
        postgres_url=_url(env, "CHIRP_POSTGRES_URL", ("postgresql", "postgres")),
        redis_url=_url(env, "CHIRP_REDIS_URL", ("redis", "rediss", "unix")),
        host=env.get("CHIRP_HOST") or "127.0.0.1",
        port=_int(env, "CHIRP_PORT", 8000, 1, 65535),
        jwt_secret=_jwt_secret(env, envname, data_dir),
        jwt_ttl_seconds=_int(env, "CHIRP_JWT_TTL_SECONDS", 7 * 24 * 3600, 60, 365 * 24 * 3600),
        celebrity_threshold=_int(env, "CHIRP_CELEBRITY_THRESHOLD", 10_000, 1, 10**9),
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
        max_query_depth=_int(env, "CHIRP_MAX_QUERY_DEPTH", 10, 2, 100),
        max_query_tokens=_int(env, "CHIRP_MAX_QUERY_TOKENS", 2000, 100, 100_000),
        max_query_aliases=_int(env, "CHIRP_MAX_QUERY_ALIASES", 30, 1, 1000),
        pg_pool_size=_int(env, "CHIRP_PG_POOL_SIZE", 10, 1, 500),
        cache_mb=_int(env, "CHIRP_CACHE_MB", 256, 0, 1_000_000),
    )
    # Fan-out skips inactive followers. That is only safe if their cached timelines expire
    # before they count as inactive; otherwise a live cache would silently miss tweets.
    if settings.active_days * 86400 <= settings.timeline_ttl_seconds + ACTIVE_MARK_SECONDS:
        raise ConfigError(
            f"CHIRP_ACTIVE_DAYS={settings.active_days} must exceed "
            f"CHIRP_TIMELINE_TTL_SECONDS={settings.timeline_ttl_seconds} (plus an hour): "
            "a cached timeline must expire before its owner stops receiving fan-out"
        )
    return settings
