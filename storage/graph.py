"""The social graph in PostgreSQL, counts kept exact (docs/modules.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from core import fanout


@dataclass(frozen=True, slots=True)
class FollowChange:
    changed: bool  # False: already following (follow) / not following (unfollow)
    followers_before: int
    followers_after: int


class SocialGraph:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def follow(self, follower: int, followee: int, seq: int) -> FollowChange:
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO follows (follower_id, followee_id, seq) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING true",
                follower, followee, seq,
            )
            if not inserted:
                count = await conn.fetchval(
                    "SELECT followers_count FROM users WHERE id = $1", followee
                )
                return FollowChange(False, count, count)
            # Lock order by id avoids deadlocks between A->B and B->A follows.
            after = await self._bump(conn, follower, followee, +1)
            return FollowChange(True, after - 1, after)

    async def unfollow(
        self, follower: int, followee: int, on_change=None
    ) -> FollowChange:
        """`on_change(conn, change)` runs inside the transaction (e.g. to add an outbox row)."""
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING true",
                follower, followee,
            )
            if not deleted:
                count = await conn.fetchval(
                    "SELECT followers_count FROM users WHERE id = $1", followee
                )
                return FollowChange(False, count, count)
            after = await self._bump(conn, follower, followee, -1)
            change = FollowChange(True, after + 1, after)
            if on_change is not None:
                await on_change(conn, change)
            return change

    @staticmethod
    async def _bump(conn: asyncpg.Connection, follower: int, followee: int, delta: int) -> int:
        rows = await conn.fetch(
            "UPDATE users SET "
            " following_count = following_count + CASE WHEN id = $1 THEN $3 ELSE 0 END,"
            " followers_count = followers_count + CASE WHEN id = $2 THEN $3 ELSE 0 END "
            "WHERE id IN (SELECT unnest(ARRAY[$1::bigint, $2::bigint]) ORDER BY 1) "
            "RETURNING id, followers_count",
            follower, followee, delta,
        )
        return next(r["followers_count"] for r in rows if r["id"] == followee)

    async def followees(self, user_id: int) -> tuple[list[int], list[int]]:
        """Everyone `user_id` follows and their follower counts, as two parallel lists; the
        query's shape is measured (docs/modules.md)."""
        row = await self.pool.fetchrow(
            "SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(followers_count), '{}') "
            "FROM users WHERE id = ANY(ARRAY("
            "  SELECT followee_id FROM follows WHERE follower_id = $1))",
            user_id,
        )
        return row[0], row[1]

    async def following_ids_among(self, follower: int, candidates: Iterable[int]) -> set[int]:
        rows = await self.pool.fetch(
            "SELECT followee_id FROM follows WHERE follower_id = $1 "
            "AND followee_id = ANY($2::bigint[])",
            follower, list(candidates),
        )
        return {r["followee_id"] for r in rows}

    async def followers_page(
        self, followee: int, before_seq: int, limit: int,
        active_within: timedelta | None = None, floor_seq: int = 0,
    ) -> list[tuple[int, int]]:
        """(seq, follower id) newest follow first, floor_seq <= seq < before_seq;
        optionally only followers active within the window (fan-out skips the rest)."""
        if active_within is None:
            rows = await self.pool.fetch(
                "SELECT seq, follower_id FROM follows WHERE followee_id = $1 AND seq < $2 "
                "AND seq >= $4 ORDER BY seq DESC LIMIT $3",
                followee, before_seq, limit, floor_seq,
            )
        else:
            rows = await self.pool.fetch(
                "SELECT f.seq, f.follower_id FROM follows f "
                "JOIN users u ON u.id = f.follower_id "
                "WHERE f.followee_id = $1 AND f.seq < $2 AND f.seq >= $5 "
                "AND u.last_active_at > now() - $4::interval "
                "ORDER BY f.seq DESC LIMIT $3",
                followee, before_seq, limit, active_within, floor_seq,
            )
        return [(r[0], r[1]) for r in rows]

    async def follower_marks(self, followee: int, every: int) -> list[int]:
        """The follow seq of every `every`-th follower, newest first: boundaries that cut
        a fan-out into chunks of `every` followers (one index-only scan)."""
        rows = await self.pool.fetch(
            "SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n "
            "FROM follows WHERE followee_id = $1) s WHERE n % $2 = 0 ORDER BY seq DESC",
            followee, every,
        )
        return [r[0] for r in rows]

    async def following_page(
        self, follower: int, before_seq: int, limit: int
    ) -> list[tuple[int, int]]:
        rows = await self.pool.fetch(
            "SELECT seq, followee_id FROM follows WHERE follower_id = $1 AND seq < $2 "
            "ORDER BY seq DESC LIMIT $3",
            follower, before_seq, limit,
        )
        return [(r[0], r[1]) for r in rows]

    async def celebrity_followees(
        self, viewers: list[int], threshold: int
    ) -> dict[int, set[int]]:
        """The celebrities each viewer follows (core.fanout's rule), in one query for a
        batch of live sessions: FeedManager.followed's `celebs`, for thousands of viewers."""
        rows = await self.pool.fetch(
            "SELECT f.follower_id, f.followee_id FROM follows f "
            "JOIN users u ON u.id = f.followee_id "
            "WHERE f.follower_id = ANY($1::bigint[]) AND u.followers_count >= $2",
            viewers, fanout.celebrity_floor(threshold),
        )
        out: dict[int, set[int]] = {}
        for r in rows:
            out.setdefault(r["follower_id"], set()).add(r["followee_id"])
        return out

    async def followers_among(self, author: int, viewers: list[int]) -> set[int]:
        """Which of `viewers` follow `author`: one query for all the live sessions of a
        process that a celebrity's tweet reaches."""
        rows = await self.pool.fetch(
            "SELECT follower_id FROM follows WHERE followee_id = $1 "
            "AND follower_id = ANY($2::bigint[])",
            author, viewers,
        )
        return {r["follower_id"] for r in rows}
