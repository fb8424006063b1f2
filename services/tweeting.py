"""Posting and deleting tweets (docs/modules.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from redis.exceptions import RedisError

from core import validation
from core.errors import Conflict, Forbidden, NotFound, RateLimited, Unavailable
from core.ids import id_datetime
from core.models import TWEET_CREATED, TWEET_DELETED, Event, Tweet
from services.feed import FeedManager
from services.media import MediaLibrary
from storage import outbox
from storage.ratelimit import RateLimiter
from storage.tweets import IdCollision, TweetStore

log = logging.getLogger(__name__)

REPEAT_LOOKS = 40  # x 50 ms: how long a repeated post waits for the first to be stored


@dataclass(eq=False)
class Tweeting:
    pool: asyncpg.Pool
    store: TweetStore
    feed: FeedManager
    limiter: RateLimiter
    next_id: Callable[[], int]
    rate_per_hour: int
    key_retention_hours: int = 24
    media: MediaLibrary = field(kw_only=True)

    @property
    def key_retention_s(self) -> int:
        return self.key_retention_hours * 3600

    async def post(self, author_id: int, text: str, idempotency_key: str | None = None,
                   media_ids: Sequence[int] = ()) -> Tweet:
        text = validation.tweet_text(text) if not media_ids or text.strip() else ""
        key = validation.idempotency_key(idempotency_key)
        if key is not None:
            earlier = await self._by_key(author_id, key)
            if earlier is not None:
                return self._same(earlier, text)
        if media_ids:
            await self.media.check_attachable(author_id, media_ids)
        await self._check_rate(author_id)
        tweet_id = self.next_id()
        tweet = Tweet(
            tweet_id, author_id, text,
            id_datetime(tweet_id),
        )
        try:
            await self._commit(tweet, key, media_ids)
        except _Repeat:
            return self._same(await self._by_key(author_id, key), text)  # type: ignore[arg-type]
        if not self.store.transactional:
            await self._store_after_commit(tweet, key)
        await self.media.on_posted(tweet_id, media_ids)
        await self.feed.on_post(tweet)
        return tweet

    async def _store_after_commit(self, tweet: Tweet, key: str | None) -> None:
        try:
            await self.store.put(tweet)
        except IdCollision:
            # Only if two processes held one worker id: the worker drops the event too.
            async with self.pool.acquire() as tx, tx.transaction():
                await tx.execute("DELETE FROM outbox WHERE tweet_id = $1", tweet.id)
                await tx.execute("UPDATE media SET tweet_id = NULL, position = NULL "
                                 "WHERE tweet_id = $1", tweet.id)
                await tx.execute(
                    "UPDATE users SET tweets_count = tweets_count - 1 WHERE id = $1",
                    tweet.author_id,
                )
                if key is not None:
                    await tx.execute(
                        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2",
                        tweet.author_id, key,
                    )
            raise
        except Unavailable as e:
            log.warning("tweet %s committed; the worker will store it: %s", tweet.id, e)

    async def _commit(self, tweet: Tweet, key: str | None, media_ids: Sequence[int]) -> None:
        tweet_id, author_id = tweet.id, tweet.author_id
        async with self.pool.acquire() as tx, tx.transaction():
            if key is not None:
                claimed = await tx.fetchval(
                    "INSERT INTO idempotency_keys (user_id, key, tweet_id) VALUES ($1, $2, $3) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    author_id, key, tweet_id,
                )
                if not claimed:
                    raise _Repeat()
            if media_ids:  # after the key: a repeat is a _Repeat, not a CONFLICT
                await self.media.attach(tx, tweet_id, author_id, media_ids)
            if self.store.transactional:
                await self.store.put(tweet, tx=tx)
                event = Event(TWEET_CREATED, tweet_id, author_id)
            else:
                event = Event(TWEET_CREATED, tweet_id, author_id, tweet.text)
            await tx.execute(
                "UPDATE users SET tweets_count = tweets_count + 1 WHERE id = $1", author_id
            )
            await outbox.add(tx, event)

    async def purge_keys(self, batch: int = 10_000) -> int:
        """Forget idempotency keys past their retention (the worker calls this hourly)."""
        purged = 0
        while True:
            status = await self.pool.execute(
                "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
                "idempotency_keys WHERE created_at < now() - make_interval(secs => $1) "
                "LIMIT $2))", float(self.key_retention_s), batch)
            count = int(status.split()[-1])
            purged += count
            if count < batch:
                return purged

    @staticmethod
    def _same(earlier: Tweet | None, text: str) -> Tweet:
        if earlier is None or earlier.text != text:
            raise Conflict("this idempotency key was used for a different tweet",
                           field="idempotencyKey")
        return earlier

    async def _by_key(self, author_id: int, key: str) -> Tweet | None:
        # A key older than the retention is forgotten: deleted here, so it can be reused.
        tweet_id = await self.pool.fetchval(
            "WITH gone AS (DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 "
            "AND created_at < now() - make_interval(secs => $3) RETURNING 1) "
            "SELECT tweet_id FROM idempotency_keys WHERE user_id = $1 AND key = $2 "
            "AND NOT EXISTS (SELECT 1 FROM gone)",
            author_id, key, float(self.key_retention_s),
        )
        if tweet_id is None:
            return None
        # A store outside the transaction gets the tweet after the commit: look again briefly.
        for _ in range(REPEAT_LOOKS):
            found = await self.store.get_many([tweet_id])
            if tweet_id in found:
                return found[tweet_id]
            if self.store.transactional or await self._deleted(tweet_id):
                break
            await asyncio.sleep(0.05)
        else:
            raise Unavailable("the tweet first posted with this key is still being stored")
        raise NotFound("the tweet first posted with this idempotency key was deleted")

    async def _deleted(self, tweet_id: int) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT true FROM tweet_deletions WHERE tweet_id = $1", tweet_id
        ))

    async def _check_rate(self, author_id: int) -> None:
        try:
            wait = await self.limiter.take(
                f"tweet:{author_id}", self.rate_per_hour, 3600, int(time.time() * 1000)
            )
        except RedisError as e:
            # Fail open: a Redis outage must not stop people posting to PostgreSQL.
            log.warning("rate limiter unavailable, allowing post: %s", e)
            return
        if wait:
            raise RateLimited(
                f"at most {self.rate_per_hour} tweets per hour; retry in {wait} s", wait
            )

    async def delete(self, user_id: int, tweet_id: int) -> bool:
        # Outside the transaction: waiting for a second pooled connection could deadlock.
        tweet = (await self.store.get_many([tweet_id])).get(tweet_id)
        if tweet is None:
            raise NotFound(f"no tweet {tweet_id}")
        if tweet.author_id != user_id:
            raise Forbidden("you can only delete your own tweets")
        async with self.pool.acquire() as tx, tx.transaction():
            if self.store.transactional:
                won = await self.store.delete(tweet_id, tx=tx) is not None
            else:
                won = await tx.fetchval(
                    "INSERT INTO tweet_deletions (tweet_id) VALUES ($1) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    tweet_id,
                )
            if not won:
                raise NotFound(f"no tweet {tweet_id}")
            await tx.execute(
                "UPDATE users SET tweets_count = tweets_count - 1 WHERE id = $1", user_id
            )
            media_ids = await self.media.mark_deleted(tx, tweet_id)
            await outbox.add(tx, Event(TWEET_DELETED, tweet_id, user_id))
        await self.media.after_tweet_deleted(tweet_id, media_ids)
        if not self.store.transactional:
            try:
                await self.store.delete(tweet_id)
            except Unavailable as e:
                log.warning("tweet %s deletion committed; the worker will finish it: %s",
                            tweet_id, e)
        # Gone from every API process's caches before the delete is acknowledged.
        await self.feed.announce([f"t{tweet_id}", f"u{user_id}"])
        return True


class _Repeat(Exception):
    pass
