"""Archive objects, pure: which tweets, their key and their bytes (docs/modules.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import zstandard

from core.models import Tweet

FORMAT = 1
OBJECT_MAX = 500  # tweets per object: a 20-tweet page reads one object of <= ~40 KB
CONTENT_TYPE = "application/zstd"
_LEVEL = 9


@dataclass(frozen=True, slots=True)
class Packed:
    key: str
    author_id: int
    min_id: int
    max_id: int
    ids: list[int]
    data: bytes


def groups(tweets: list[Tweet], size: int = OBJECT_MAX) -> list[list[Tweet]]:
    """One author's tweets (any order) split into objects of `size`, counted from the
    oldest, so only the newest object is partly full; each newest first, the newest
    object first."""
    oldest_first = sorted(tweets, key=lambda t: t.id)
    chunks = [oldest_first[i:i + size] for i in range(0, len(oldest_first), size)]
    return [chunk[::-1] for chunk in reversed(chunks)]


def pack(prefix: str, tweets: list[Tweet]) -> Packed:
    """One group from `groups` as an object."""
    author = tweets[0].author_id
    rows = [[t.id, t.text, _micros(t.created_at)] for t in tweets]
    data = zstandard.ZstdCompressor(level=_LEVEL).compress(
        orjson.dumps({"v": FORMAT, "author": author, "tweets": rows})
    )
    digest = hashlib.sha256(data).hexdigest()[:16]
    hi, lo = tweets[0].id, tweets[-1].id
    key = f"{prefix}{author}/{hi}-{lo}-{digest}.json.zst"
    return Packed(key, author, lo, hi, [t.id for t in tweets], data)


def unpack(data: bytes) -> list[Tweet]:
    doc = orjson.loads(zstandard.ZstdDecompressor().decompress(data))
    if doc.get("v") != FORMAT:
        raise ValueError(f"unknown archive object format {doc.get('v')!r}")
    author = doc["author"]
    return [Tweet(i, author, text, _datetime(us)) for i, text, us in doc["tweets"]]


def _micros(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
