"""Hydration shared by every live subscriber in a process.

One tweet published to 2,000 sessions in this process would otherwise be loaded 2,000
times (one DataLoader per event per session). Here the first session to ask loads it and
the others await the same result. Entries live a few seconds only, so this is the cache of
one event, not a second copy of the database: nothing is served stale across events.
"""

from __future__ import annotations

import asyncio
import time

from core.models import Tweet, User
from runtime.container import Services

TTL_S = 5.0


class EventHydrator:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._entries: dict[int, tuple[float, asyncio.Future]] = {}

    async def tweet(self, tweet_id: int) -> tuple[Tweet, User] | None:
        now = time.monotonic()
        entry = self._entries.get(tweet_id)
        if entry is None or entry[0] < now:
            future = asyncio.get_running_loop().create_future()
            self._entries[tweet_id] = (now + TTL_S, future)
            self._expire(now)
            try:
                future.set_result(await self._load(tweet_id))
            except BaseException as e:
                future.set_exception(e)
                self._entries.pop(tweet_id, None)
                raise
            return future.result()
        return await asyncio.shield(entry[1])

    async def _load(self, tweet_id: int) -> tuple[Tweet, User] | None:
        tweet = (await self.services.tweets.get_many([tweet_id])).get(tweet_id)
        if tweet is None:
            return None
        author = (await self.services.users.get_many([tweet.author_id])).get(tweet.author_id)
        return (tweet, author) if author is not None else None

    def _expire(self, now: float) -> None:
        if len(self._entries) > 1024:
            for key in [k for k, (t, _f) in self._entries.items() if t < now]:
                del self._entries[key]
