"""Prometheus metrics. Counters the worker process owns are kept in Redis and read at
scrape time, so one /metrics on the API shows the whole deployment."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "chirp_request_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
DEGRADED_READS = Counter(
    "chirp_degraded_reads_total",
    "Timeline reads answered from the database because Redis was unreachable",
    registry=REGISTRY,
)
CELEBRITY_DEMOTIONS = Counter(
    "chirp_celebrity_demotions_total",
    "Celebrity flags cleared by the worker's sweep, each announced by one AuthorDemoted event",
    registry=REGISTRY,
)
BACK_FILLS = Counter(
    "chirp_back_fills_total",
    "AuthorDemoted events applied: a demoted author's tweets merged into followers' timelines",
    registry=REGISTRY,
)
TIMELINE_REBUILDS = Counter(
    "chirp_timeline_rebuilds_total", "Cached timelines rebuilt from the store", ["kind"],
    registry=REGISTRY,
)
STORE_FALLBACK_READS = Counter(
    "chirp_timeline_store_pages_total",
    "Timeline pages continued from the store past the cached window",
    registry=REGISTRY,
)
FANOUT_LAG = Gauge(
    "chirp_fanout_lag_events", "Events on the bus not yet applied by fan-out workers",
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "chirp_outbox_pending_events", "Events committed but not yet relayed to the bus",
    registry=REGISTRY,
)
FANOUT_DELIVERIES = Gauge(
    "chirp_fanout_deliveries_total",
    "Tweet ids pushed into followers' cached timelines (all workers, since Redis start)",
    registry=REGISTRY,
)
DEAD_LETTERS = Gauge(
    "chirp_dead_letter_events", "Events in the dead-letter stream", registry=REGISTRY
)

LIVE_SUBSCRIPTIONS = Gauge(
    "chirp_live_subscriptions", "Open live subscriptions in this process", registry=REGISTRY
)
LIVE_CHANNELS = Gauge(
    "chirp_live_channels", "Redis pub/sub channels this process is subscribed to",
    registry=REGISTRY,
)
LIVE_OVERFLOWS = Counter(
    "chirp_live_overflows_total", "Slow subscribers whose queue overflowed into a RESYNC",
    registry=REGISTRY,
)
LIVE_RECONNECTS = Counter(
    "chirp_live_reconnects_total", "Pub/sub reconnections (each resyncs every subscriber)",
    registry=REGISTRY,
)
LIVE_DELIVERED = Counter(
    "chirp_live_events_total", "Events sent to live subscribers", ["kind"], registry=REGISTRY
)
MEDIA_UPLOADS = Counter(
    "chirp_media_uploads_total", "Media uploads created, made READY or FAILED", ["outcome"],
    registry=REGISTRY,
)
MEDIA_PROCESSING_SECONDS = Histogram(
    "chirp_media_processing_seconds", "completeMediaUpload: read, check, process and store",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16), registry=REGISTRY,
)
MEDIA_SWEPT = Counter(
    "chirp_media_swept_total", "Media removed by the sweep (deleted tweets', orphans)",
    registry=REGISTRY,
)

ARCHIVED_TWEETS = Gauge(
    "chirp_archived_tweets", "Tweets moved to the archive (all runs; read at scrape time)",
    registry=REGISTRY,
)
ARCHIVE_OBJECTS = Gauge(
    "chirp_archive_objects", "Archive objects written and indexed (all runs)", registry=REGISTRY
)
ARCHIVE_READS = Counter(
    "chirp_archive_reads_total",
    "Archive objects read by this process, from the object store or its decoded-object cache",
    ["source"], registry=REGISTRY,
)
ARCHIVE_READ_SECONDS = Histogram(
    "chirp_archive_read_seconds", "Fetching and decoding one archive object from the store",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)

# Read caches (storage/readcache.py)

CACHE_HITS = Counter(
    "chirp_cache_hits_total", "Read-cache lookups answered from this process's memory",
    ["cache"], registry=REGISTRY,
)
CACHE_MISSES = Counter(
    "chirp_cache_misses_total", "Read-cache lookups that went to Redis or PostgreSQL",
    ["cache"], registry=REGISTRY,
)
CACHE_BYTES = Gauge(
    "chirp_cache_bytes", "Estimated memory held by each read cache", ["cache"],
    registry=REGISTRY,
)
CACHE_INVALIDATIONS = Counter(
    "chirp_cache_invalidations_total", "Invalidation items applied to the read caches",
    registry=REGISTRY,
)
CACHE_FLUSHES = Counter(
    "chirp_cache_flushes_total",
    "Read caches emptied (a gap in invalidations, a lost connection, a Redis restart)",
    registry=REGISTRY,
)
CACHE_BYPASSED = Counter(
    "chirp_cache_bypassed_total",
    "Requests that read the stores because the invalidations could not be trusted",
    registry=REGISTRY,
)
