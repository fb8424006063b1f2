"""Live events shared by every session in a process: the first session to ask for a tweet
loads it and the others await the same `LiveEvent`, on which the schema layer also shares
what it derives (`LiveEvent.memo`). Entries live a few seconds: the cache of one event,
not a second copy of the database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from core.media import Media
from core.models import LiveKind, Tweet, User
from runtime.container import Services

TTL_S = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class LiveEvent:
    kind: LiveKind
    tweet_id: int | None = None
    tweet: Tweet | None = None
    author: User | None = None
    media: tuple[Media, ...] | None = None
    # What other layers derive from this event, computed once for every session it
    # reaches (the GraphQL object, execution results per selection).
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)


RESYNC_EVENT = LiveEvent(LiveKind.RESYNC)


class EventHydrator:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._entries: dict[tuple[str, int], tuple[float, asyncio.Future]] = {}

    async def added(self, tweet_id: int) -> LiveEvent | None:
        """The tweet with its author, or None if it is gone."""
        now = time.monotonic()
        key = (LiveKind.TWEET_ADDED, tweet_id)
        entry = self._entries.get(key)
        if entry is not None and entry[0] >= now:
            future = entry[1]
            return future.result() if future.done() else await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + TTL_S, future)
        self._expire(now)
        try:
            future.set_result(await self._load(tweet_id))
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: whoever awaits it gets it raised
            self._entries.pop(key, None)
            raise
        return future.result()

    def prefetch(self, tweet_id: int) -> None:
        """Start loading a tweet that will be asked for soon."""
        entry = self._entries.get((LiveKind.TWEET_ADDED, tweet_id))
        if entry is None or entry[0] < time.monotonic():
            task = asyncio.ensure_future(self.added(tweet_id))
            task.add_done_callback(_quiet)

    def deleted(self, tweet_id: int) -> LiveEvent:
        now = time.monotonic()
        key = (LiveKind.TWEET_DELETED, tweet_id)
        entry = self._entries.get(key)
        if entry is None or entry[0] < now:
            future = asyncio.get_running_loop().create_future()
            future.set_result(LiveEvent(LiveKind.TWEET_DELETED, tweet_id))
            entry = self._entries[key] = (now + TTL_S, future)
            self._expire(now)
        return entry[1].result()

    async def following(self, author: int, viewers: set[int]) -> set[int]:
        """Which of these viewers follow the author now (one query for all the sessions a
        celebrity's tweet reaches in this process)."""
        return await self.services.graph.followers_among(author, sorted(viewers))

    async def _load(self, tweet_id: int) -> LiveEvent | None:
        tweet = (await self.services.tweets.get_many([tweet_id])).get(tweet_id)
        if tweet is None:
            return None
        authors, (media,) = await asyncio.gather(
            self.services.users.get_many([tweet.author_id]),
            self.services.media.for_tweets([tweet.id]),
        )
        author = authors.get(tweet.author_id)
        if author is None:
            return None
        return LiveEvent(LiveKind.TWEET_ADDED, tweet.id, tweet, author, media)

    def _expire(self, now: float) -> None:
        if len(self._entries) > 1024:
            for key in [k for k, (t, _f) in self._entries.items() if t < now]:
                del self._entries[key]


def _quiet(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the dispatcher's own call reports it
