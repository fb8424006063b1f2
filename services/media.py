"""Media: uploads, processing, attachment to tweets, removal (docs/modules.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from core import imaging
from core import media as rules
from core.errors import BadInput, Conflict, NotFound, RateLimited, Unavailable
from core.media import FAILED, PENDING, READY, Media, Variant
from runtime import metrics
from storage.media import MediaRows
from storage.objects import ObjectNotFound, ObjectStore, PresignedPut
from storage.ratelimit import RateLimiter

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 60  # a complete racing another waits this long for it to settle
SWEEP_BATCH = 200


@dataclass(frozen=True)
class MediaConfig:
    max_bytes: int
    max_pixels: int
    uploads_per_hour: int
    orphan_hours: int
    public_url: str | None  # a CDN in front of the store; None: the store's own URLs
    workers: int


@dataclass(frozen=True)
class Upload:
    media: Media
    put: PresignedPut
    expires_at: dt.datetime


class MediaByTweet:
    """tweet id -> its media, most recently used kept; see the module's note."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[Media, ...]] = OrderedDict()

    def get(self, tweet_id: int) -> tuple[Media, ...] | None:
        found = self._entries.get(tweet_id)
        if found is not None:
            self._entries.move_to_end(tweet_id)
        return found

    def put(self, tweet_id: int, media: tuple[Media, ...]) -> None:
        self._entries[tweet_id] = media
        self._entries.move_to_end(tweet_id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, tweet_id: int) -> None:
        self._entries.pop(tweet_id, None)


class MediaLibrary:
    def __init__(self, pool: asyncpg.Pool, store: ObjectStore, limiter: RateLimiter,
                 next_id: Callable[[], int], config: MediaConfig) -> None:
        self.rows = MediaRows(pool)
        self.store = store
        self.limiter = limiter
        self.next_id = next_id
        self.config = config
        self.by_tweet = MediaByTweet()
        # At most `workers` pictures at a time, in threads (Pillow releases the GIL).
        self._slots = asyncio.Semaphore(config.workers)
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="media")

    def url_of(self, key: str) -> str:
        base = self.config.public_url
        return f"{base}/{key}" if base else self.store.url(key)

    def main_url(self, m: Media) -> str | None:
        for v in m.variants:
            if v.name == rules.MAIN_VARIANT:
                return self.url_of(v.key)
        return None

    async def create_upload(self, owner_id: int, content_type: str, byte_size: int,
                            alt_text: str | None) -> Upload:
        content_type = rules.content_type(content_type)
        byte_size = rules.byte_size(byte_size, self.config.max_bytes)
        alt_text = rules.alt_text(alt_text)
        await self._check_rate(owner_id)
        m = Media(self.next_id(), owner_id, PENDING, content_type, byte_size,
                  secrets.token_urlsafe(12), alt_text)
        await self.rows.insert(m)
        put = self.store.presign_put(m.upload_key, content_type, byte_size,
                                     rules.UPLOAD_URL_TTL_S)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=rules.UPLOAD_URL_TTL_S)
        metrics.MEDIA_UPLOADS.labels("created").inc()
        return Upload(m, put, expires.replace(microsecond=0))

    async def _check_rate(self, owner_id: int) -> None:
        per_hour = self.config.uploads_per_hour
        try:
            wait = await self.limiter.take(f"media:{owner_id}", per_hour, 3600,
                                           int(time.time() * 1000))
        except RedisError as e:
            log.warning("rate limiter unavailable, allowing upload: %s", e)
            return
        if wait:
            raise RateLimited(f"at most {per_hour} uploads per hour; retry in {wait} s", wait)

    async def complete(self, owner_id: int, media_id: int) -> Media:
        """READY or FAILED; BadInput if the bytes were never uploaded (it stays PENDING)."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            m = await self.rows.claim(media_id, owner_id)
            if m is not None:
                break
            current = await self.visible(owner_id, media_id)
            if current is None or current.owner_id != owner_id:
                raise NotFound(f"no media {media_id}", field="mediaId")
            if current.state != PENDING:
                return current
            if time.monotonic() > deadline:
                raise Unavailable("this media is still being processed; retry")
            await asyncio.sleep(0.1)
        try:
            return await self._process(m)
        except BaseException:
            await asyncio.shield(self.rows.release(m.id))
            raise

    async def _process(self, m: Media) -> Media:
        t0 = time.perf_counter()
        async with self._slots:
            try:
                # The store took at most the signed length, so this read is bounded.
                data = await self.store.get(m.upload_key)
            except ObjectNotFound:
                raise BadInput("nothing was uploaded for this media: PUT the bytes to its "
                               "uploadUrl first", field="mediaId") from None
            try:
                if len(data) != m.byte_size:
                    raise imaging.ImageRejected(
                        f"{len(data)} bytes were uploaded; {m.byte_size} were declared")
                loop = asyncio.get_running_loop()
                done = await loop.run_in_executor(
                    self._pool, imaging.process, data, m.content_type, self.config.max_pixels)
            except imaging.ImageRejected as e:
                await self.store.delete(m.upload_key)
                settled = await self.rows.settle(m.id, FAILED, error=str(e))
                metrics.MEDIA_UPLOADS.labels("failed").inc()
                return settled or m
        variants = tuple(
            Variant(o.name, rules.variant_key(m.id, m.token, o.name, o.extension), o.width,
                    o.height, o.content_type, len(o.data))
            for o in done.outputs
        )
        await asyncio.gather(*(self.store.put(v.key, o.data, o.content_type)
                               for v, o in zip(variants, done.outputs, strict=True)))
        settled = await self.rows.settle(m.id, READY, width=done.width, height=done.height,
                                         variants=variants)
        await self.store.delete(m.upload_key)
        if settled is None:
            await self.store.delete_many(v.key for v in variants)
            raise NotFound(f"no media {m.id}", field="mediaId")
        metrics.MEDIA_UPLOADS.labels("ready").inc()
        metrics.MEDIA_PROCESSING_SECONDS.observe(time.perf_counter() - t0)
        return settled

    async def visible(self, viewer_id: int | None, media_id: int) -> Media | None:
        """The media if the viewer may see it: their own, or attached to a tweet."""
        m = (await self.rows.get_many([media_id])).get(media_id)
        if m is None or (m.owner_id != viewer_id and m.tweet_id is None):
            return None
        return m

    async def for_tweets(self, tweet_ids: Sequence[int]) -> list[tuple[Media, ...]]:
        """Each tweet's media in order, in one query for all the tweets not cached."""
        cache = self.by_tweet
        found = {t: m for t in tweet_ids if (m := cache.get(t)) is not None}
        missing = [t for t in dict.fromkeys(tweet_ids) if t not in found]
        if missing:
            loaded = await self.rows.for_tweets(missing)
            for t in missing:
                found[t] = media = tuple(loaded.get(t, ()))
                cache.put(t, media)
        return [found[t] for t in tweet_ids]

    async def check_attachable(self, owner_id: int, media_ids: Sequence[int]) -> None:
        """Every error a post with these media would meet, before it commits anything."""
        if len(media_ids) > rules.MAX_PER_TWEET:
            raise BadInput(f"a tweet has at most {rules.MAX_PER_TWEET} media",
                           field="mediaIds")
        if len(set(media_ids)) != len(media_ids):
            raise BadInput("the same media is listed twice", field="mediaIds")
        found = await self.rows.get_many(media_ids)
        for i in media_ids:
            m = found.get(i)
            if m is None or m.owner_id != owner_id:
                raise NotFound(f"no media {i}", field="mediaIds")
            if m.state != READY:
                raise BadInput(f"media {i} is {m.state}, not READY: complete its upload",
                               field="mediaIds")
            if m.tweet_id is not None:
                raise Conflict(f"media {i} is already attached to a tweet", field="mediaIds")

    async def attach(self, tx: asyncpg.Connection, tweet_id: int, owner_id: int,
                     media_ids: Sequence[int]) -> None:
        if await MediaRows.attach(tx, tweet_id, owner_id, media_ids) != len(media_ids):
            # check_attachable passed: another post took one meanwhile (or a sweep).
            raise Conflict("a media was attached to another tweet meanwhile",
                           field="mediaIds")

    async def on_posted(self, tweet_id: int, media_ids: Sequence[int]) -> None:
        if not media_ids:
            self.by_tweet.put(tweet_id, ())
            return
        found = await self.rows.get_many(media_ids)
        self.by_tweet.put(tweet_id, tuple(found[i] for i in media_ids if i in found))

    @staticmethod
    async def mark_deleted(tx: asyncpg.Connection, tweet_id: int) -> list[int]:
        return [m.id for m in await MediaRows.mark_deleted(tx, tweet_id)]

    async def remove(self, media_ids: Sequence[int]) -> int:
        """Delete these media if removable; how many were. A failure leaves them to the sweep."""
        if not media_ids:
            return 0
        async with self.rows.pool.acquire() as tx, tx.transaction():
            taken = await MediaRows.take_for_removal(tx, media_ids, self.config.orphan_hours)
            keys = [k for m in taken for k in (m.upload_key, *(v.key for v in m.variants))]
            await self.store.delete_many(keys)
        for m in taken:
            if m.tweet_id is not None:
                self.by_tweet.forget(m.tweet_id)
        return len(taken)

    async def after_tweet_deleted(self, tweet_id: int, media_ids: Sequence[int]) -> None:
        self.by_tweet.forget(tweet_id)
        try:
            await self.remove(media_ids)
        except Exception as e:  # the tweet is gone; the sweep removes what is left
            log.warning("media of deleted tweet %s left for the sweep: %s", tweet_id, e)

    async def sweep(self) -> int:
        """Remove deleted tweets' media and orphaned uploads; how many were removed."""
        removed = 0
        while True:
            ids = await self.rows.sweepable(self.config.orphan_hours, SWEEP_BATCH)
            if not ids:
                return removed
            n = await self.remove(ids)
            removed += n
            metrics.MEDIA_SWEPT.inc(n)
            if n == 0:
                return removed

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self.store.close()
