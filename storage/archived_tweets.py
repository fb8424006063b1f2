"""A TweetStore continuing from the live store into the archive (docs/modules.md)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

from core.models import Tweet
from core.timeline import NEWEST
from storage.archive import Archive
from storage.tweets import TweetStore


class ArchivedTweetStore:
    def __init__(self, live: TweetStore, archive: Archive) -> None:
        self.live = live
        self.archive = archive
        self.transactional = live.transactional

    async def put(self, tweet: Tweet, tx: Any = None) -> None:
        await self.live.put(tweet, tx)

    async def delete(self, tweet_id: int, tx: Any = None) -> Tweet | None:
        gone = await self.live.delete(tweet_id, tx)
        if gone is not None and tweet_id >= await self.archive.horizon():
            return gone  # newer than any cut-off: never archived
        archived = await self.archive.delete(tweet_id, tx if self.transactional else None)
        return gone or archived

    async def delete_many(self, ids: Sequence[int], tx: Any = None) -> set[int]:
        gone = await self.live.delete_many(ids, tx)
        for i in ids:
            if await self.archive.delete(i, tx if self.transactional else None):
                gone.add(i)
        return gone

    async def authors_before(self, before: int) -> list[int]:
        return await self.live.authors_before(before)

    async def ping(self) -> None:
        await self.live.ping()

    async def close(self) -> None:
        await self.live.close()

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]:
        wanted = list(ids)
        complete = await self.archive.complete_below()
        cold = [i for i in wanted if i < complete]  # only the archive can hold these
        found = await self.live.get_many([i for i in wanted if i >= complete]) \
            if len(cold) < len(wanted) else {}
        missing = [i for i in wanted if i not in found]
        if missing and min(missing) < await self.archive.horizon():
            found.update(await self.archive.get_many(missing))
        return found

    async def by_author(
        self, author_id: int, before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        if before <= await self.archive.complete_below():
            return await self.archive.by_authors([author_id], before, since, limit)
        live = await self.live.by_author(author_id, before, since, limit)
        return await self._continued(live, [author_id], before, since, limit)

    async def by_authors(
        self, author_ids: Sequence[int], before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        if before <= await self.archive.complete_below():
            return await self.archive.by_authors(author_ids, before, since, limit)
        live = await self.live.by_authors(author_ids, before, since, limit)
        return await self._continued(live, author_ids, before, since, limit)

    async def _continued(
        self, live: list[Tweet], authors: Sequence[int], before: int, since: int, limit: int
    ) -> list[Tweet]:
        horizon = await self.archive.horizon()
        if since >= horizon or not authors:
            return live
        if len(live) >= limit and live[-1].id >= horizon:
            return live  # the page ends above everything archived
        older = await self.archive.by_authors(authors, before, since, limit)
        seen: set[int] = set()
        out: list[Tweet] = []
        for t in heapq.merge(live, older, key=lambda t: -t.id):
            if t.id not in seen:
                seen.add(t.id)
                out.append(t)
                if len(out) == limit:
                    break
        return out
