"""The tweet store: a small interface, and its PostgreSQL adapter (docs/modules.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import asyncpg

from core.errors import Unavailable
from core.models import Tweet
from core.timeline import NEWEST


class IdCollision(Unavailable):
    """Another tweet has this id (two processes held one worker id): never overwritten."""

    def __init__(self, tweet_id: int) -> None:
        super().__init__(f"tweet id {tweet_id} is taken; retry the post")


class TweetStore(Protocol):
    # Whether writes join the caller's PostgreSQL transaction (`tx`).
    transactional: bool

    async def put(self, tweet: Tweet, tx: Any = None) -> None:
        """Idempotent; IdCollision if the id holds a different tweet."""

    async def delete(self, tweet_id: int, tx: Any = None) -> Tweet | None:
        """Remove a tweet; the removed tweet, or None if there was none."""

    async def delete_many(self, ids: Sequence[int], tx: Any = None) -> set[int]:
        """Remove tweets; the ids that were there."""

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]: ...

    async def authors_before(self, before: int) -> list[int]:
        """Every author with a tweet whose id is below `before` (for the archive)."""

    async def ping(self) -> None:
        """Raise if the store cannot answer (for /readyz)."""

    async def close(self) -> None:
        """Release what the store holds of its own (not a pool it was given)."""

    async def by_author(
        self, author_id: int, before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        """One author's tweets with since < id < before, newest first."""

    async def by_authors(
        self, author_ids: Sequence[int], before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        """The newest-first merge of several authors' tweets, since < id < before."""


def _tweet(row: asyncpg.Record) -> Tweet:
    return Tweet(row[0], row[1], row[2], row[3])


class PostgresTweetStore:
    transactional = True

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, tweet: Tweet, tx: asyncpg.Connection | None = None) -> None:
        conn = tx or self.pool
        stored = await conn.fetchval(
            "INSERT INTO tweets (id, author_id, text, created_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (id) DO NOTHING RETURNING true",
            tweet.id, tweet.author_id, tweet.text, tweet.created_at,
        )
        if not stored:
            existing = await conn.fetchrow(
                "SELECT author_id, text FROM tweets WHERE id = $1", tweet.id
            )
            if existing is None or tuple(existing) != (tweet.author_id, tweet.text):
                raise IdCollision(tweet.id)

    async def delete(self, tweet_id: int, tx: asyncpg.Connection | None = None) -> Tweet | None:
        row = await (tx or self.pool).fetchrow(
            "DELETE FROM tweets WHERE id = $1 RETURNING id, author_id, text, created_at", tweet_id
        )
        return _tweet(row) if row else None

    async def delete_many(self, ids: Sequence[int],
                          tx: asyncpg.Connection | None = None) -> set[int]:
        rows = await (tx or self.pool).fetch(
            "DELETE FROM tweets WHERE id = ANY($1::bigint[]) RETURNING id", list(ids)
        )
        return {r[0] for r in rows}

    async def authors_before(self, before: int) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT author_id FROM tweets WHERE id < $1 ORDER BY author_id", before
        )
        return [r[0] for r in rows]

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def close(self) -> None:
        """The pool belongs to the caller."""

    async def get_many(self, ids: Iterable[int]) -> dict[int, Tweet]:
        rows = await self.pool.fetch(
            "SELECT id, author_id, text, created_at FROM tweets WHERE id = ANY($1::bigint[])",
            list(ids),
        )
        return {r[0]: _tweet(r) for r in rows}

    async def by_author(
        self, author_id: int, before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        rows = await self.pool.fetch(
            "SELECT id, author_id, text, created_at FROM tweets "
            "WHERE author_id = $1 AND id < $2 AND id > $3 ORDER BY id DESC LIMIT $4",
            author_id, before, since, limit,
        )
        return [_tweet(r) for r in rows]

    async def by_authors(
        self, author_ids: Sequence[int], before: int = NEWEST, since: int = 0, limit: int = 20
    ) -> list[Tweet]:
        if not author_ids:
            return []
        # An index range scan per author, each of at most `limit` rows, then a merge.
        rows = await self.pool.fetch(
            "SELECT t.id, t.author_id, t.text, t.created_at "
            "FROM unnest($1::bigint[]) AS a(author_id) "
            "CROSS JOIN LATERAL ("
            "  SELECT id, author_id, text, created_at FROM tweets "
            "  WHERE author_id = a.author_id AND id < $2 AND id > $3 "
            "  ORDER BY id DESC LIMIT $4) t "
            "ORDER BY t.id DESC LIMIT $4",
            list(author_ids), before, since, limit,
        )
        return [_tweet(r) for r in rows]
