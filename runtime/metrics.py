"""Prometheus metrics; the worker's counters are read from Redis at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)


def _counter(name: str, doc: str, *labels: str) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, *labels: str) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY)


REQUEST_SECONDS = Histogram(
    "chirp_request_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
DEGRADED_READS = _counter(
    "chirp_degraded_reads_total",
    "Timeline reads answered from the database because Redis was unreachable",
)
CELEBRITY_DEMOTIONS = _counter(
    "chirp_celebrity_demotions_total",
    "Celebrity flags cleared by the worker's sweep, each announced by one AuthorDemoted event",
)
BACK_FILLS = _counter(
    "chirp_back_fills_total",
    "AuthorDemoted events applied: a demoted author's tweets merged into followers' timelines",
)
TIMELINE_REBUILDS = _counter(
    "chirp_timeline_rebuilds_total", "Cached timelines rebuilt from the store", "kind",
)
STORE_FALLBACK_READS = _counter(
    "chirp_timeline_store_pages_total",
    "Timeline pages continued from the store past the cached window",
)
FANOUT_LAG = _gauge(
    "chirp_fanout_lag_events", "Events on the bus not yet applied by fan-out workers",
)
OUTBOX_PENDING = _gauge(
    "chirp_outbox_pending_events", "Events committed but not yet relayed to the bus",
)
FANOUT_DELIVERIES = _gauge(
    "chirp_fanout_deliveries_total",
    "Tweet ids pushed into followers' cached timelines (all workers, since Redis start)",
)
DEAD_LETTERS = _gauge("chirp_dead_letter_events", "Events in the dead-letter stream")

LIVE_SUBSCRIPTIONS = _gauge("chirp_live_subscriptions", "Open live subscriptions in this process")
LIVE_CHANNELS = _gauge(
    "chirp_live_channels", "Redis pub/sub channels this process is subscribed to",
)
LIVE_OVERFLOWS = _counter(
    "chirp_live_overflows_total", "Slow subscribers whose queue overflowed into a RESYNC",
)
LIVE_RECONNECTS = _counter(
    "chirp_live_reconnects_total", "Pub/sub reconnections (each resyncs every subscriber)",
)
LIVE_DELIVERED = _counter("chirp_live_events_total", "Events sent to live subscribers", "kind")
MEDIA_UPLOADS = _counter(
    "chirp_media_uploads_total", "Media uploads created, made READY or FAILED", "outcome",
)
MEDIA_PROCESSING_SECONDS = Histogram(
    "chirp_media_processing_seconds", "completeMediaUpload: read, check, process and store",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16), registry=REGISTRY,
)
MEDIA_SWEPT = _counter(
    "chirp_media_swept_total", "Media removed by the sweep (deleted tweets', orphans)",
)

ARCHIVED_TWEETS = _gauge(
    "chirp_archived_tweets", "Tweets moved to the archive (all runs; read at scrape time)",
)
ARCHIVE_OBJECTS = _gauge("chirp_archive_objects", "Archive objects written and indexed (all runs)")
ARCHIVE_READS = _counter(
    "chirp_archive_reads_total",
    "Archive objects read by this process, from the object store or its decoded-object cache",
    "source",
)
ARCHIVE_READ_SECONDS = Histogram(
    "chirp_archive_read_seconds", "Fetching and decoding one archive object from the store",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)

# Read caches (storage/readcache.py)

CACHE_HITS = _counter(
    "chirp_cache_hits_total", "Read-cache lookups answered from this process's memory", "cache",
)
CACHE_MISSES = _counter(
    "chirp_cache_misses_total", "Read-cache lookups that went to Redis or PostgreSQL", "cache",
)
CACHE_BYTES = _gauge("chirp_cache_bytes", "Estimated memory held by each read cache", "cache")
CACHE_INVALIDATIONS = _counter(
    "chirp_cache_invalidations_total", "Invalidation items applied to the read caches",
)
CACHE_FLUSHES = _counter(
    "chirp_cache_flushes_total",
    "Read caches emptied (a gap in invalidations, a lost connection, a Redis restart)",
)
CACHE_BYPASSED = _counter(
    "chirp_cache_bypassed_total",
    "Requests that read the stores because the invalidations could not be trusted",
)
