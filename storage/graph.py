"""The social graph in PostgreSQL, counts kept exact (docs/modules.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from core import fanout


@dataclass(frozen=True, slots=True)
class FollowChange:
    changed: bool  # False: already following (follow) / not following (unfollow)
    followers_before: int
    followers_after: int
    celebrity_before: bool = False  # core.fanout.is_celebrity, before and after
    celebrity_after: bool = False
    pushed_after: bool = True  # core.fanout.pushed, after


class SocialGraph:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def follow(self, follower: int, followee: int, seq: int,
                     bounds: fanout.Bounds) -> FollowChange:
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO follows (follower_id, followee_id, seq) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING true",
                follower, followee, seq,
            )
            if not inserted:
                return await self._unchanged(conn, followee, bounds)
            return await self._bump(conn, follower, followee, +1, bounds)

    async def unfollow(
        self, follower: int, followee: int, bounds: fanout.Bounds,
    ) -> FollowChange:
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING true",
                follower, followee,
            )
            if not deleted:
                return await self._unchanged(conn, followee, bounds)
            return await self._bump(conn, follower, followee, -1, bounds)

    @staticmethod
    async def _unchanged(conn: asyncpg.Connection, followee: int,
                         bounds: fanout.Bounds) -> FollowChange:
        row = await conn.fetchrow(
            "SELECT followers_count, celebrity, celebrity_demoting FROM users WHERE id = $1",
            followee)
        now = fanout.is_celebrity(row[0], row[1], bounds.threshold)
        return FollowChange(False, row[0], row[0], now, now,
                            fanout.pushed(row[0], row[1], row[2], bounds.threshold))

    @staticmethod
    async def _bump(conn: asyncpg.Connection, follower: int, followee: int, delta: int,
                    bounds: fanout.Bounds) -> FollowChange:
        """Both counts, then the followee's celebrity flag by core.fanout's rules (its row
        is locked by then; written only when it changes)."""
        # Lock order by id avoids deadlocks between A->B and B->A follows.
        rows = await conn.fetch(
            "UPDATE users SET "
            " following_count = following_count + CASE WHEN id = $1 THEN $3 ELSE 0 END,"
            " followers_count = followers_count + CASE WHEN id = $2 THEN $3 ELSE 0 END "
            "WHERE id IN (SELECT unnest(ARRAY[$1::bigint, $2::bigint]) ORDER BY 1) "
            "RETURNING id, followers_count, celebrity, celebrity_below_since, celebrity_demoting",
            follower, followee, delta,
        )
        row = next(r for r in rows if r["id"] == followee)
        after, flagged, since, demoting = row[1], row[2], row[3], row[4]
        before = after - delta
        flag = fanout.flag_after(flagged, before, after, bounds.threshold)
        below = fanout.below_since(flag, after, bounds.demote_below, since,
                                   datetime.now(UTC))
        if (flag, below) != (flagged, since):
            await conn.execute(
                "UPDATE users SET celebrity = $2, celebrity_below_since = $3 WHERE id = $1",
                followee, flag, below)
        return FollowChange(True, before, after,
                            fanout.is_celebrity(before, flagged, bounds.threshold),
                            fanout.is_celebrity(after, flag, bounds.threshold),
                            fanout.pushed(after, flag, demoting, bounds.threshold))

    async def flagged(self) -> list[tuple[int, int, datetime | None]]:
        """(id, followers, below since) of every flagged account not being demoted."""
        rows = await self.pool.fetch(
            "SELECT id, followers_count, celebrity_below_since FROM users "
            "WHERE celebrity AND NOT celebrity_demoting")
        return [(r[0], r[1], r[2]) for r in rows]

    async def mark_below(self, user_id: int, was: datetime | None,
                         since: datetime | None) -> None:
        """When a flagged account went under the lower bound, unless changed meanwhile."""
        await self.pool.execute(
            "UPDATE users SET celebrity_below_since = $3 WHERE id = $1 AND celebrity "
            "AND celebrity_below_since IS NOT DISTINCT FROM $2", user_id, was, since)

    async def start_demotion(
        self, user_id: int, due: Callable[[int, datetime | None], bool],
        on_demote: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> bool:
        """Marks a demotion if `due` holds on the locked row, `on_demote(conn)` (its outbox
        event) in the same transaction: each demotion is announced exactly once."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT followers_count, celebrity_below_since FROM users "
                "WHERE id = $1 AND celebrity AND NOT celebrity_demoting FOR UPDATE", user_id)
            if row is None or not due(row[0], row[1]):
                return False
            await conn.execute(
                "UPDATE users SET celebrity_demoting = true WHERE id = $1", user_id)
            await on_demote(conn)
            return True

    async def end_demotion(self, user_id: int, demoted: bool) -> bool:
        """Ends a demotion, the flag cleared (`demoted`) or kept; False if none was under way."""
        return bool(await self.pool.fetchval(
            "UPDATE users SET celebrity_demoting = false, celebrity = celebrity AND NOT $2,"
            " celebrity_below_since = CASE WHEN $2 THEN NULL ELSE celebrity_below_since END "
            "WHERE id = $1 AND celebrity_demoting RETURNING true", user_id, demoted))

    async def followees(self, user_id: int) -> tuple[list[int], list[int], list[bool]]:
        """Everyone `user_id` follows, their follower counts and celebrity flags, as parallel
        lists; the query's shape is measured (docs/modules.md)."""
        row = await self.pool.fetchrow(
            "SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(followers_count), '{}'),"
            " coalesce(array_agg(celebrity), '{}') "
            "FROM users WHERE id = ANY(ARRAY("
            "  SELECT followee_id FROM follows WHERE follower_id = $1))",
            user_id,
        )
        return row[0], row[1], row[2]

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
        """(seq, follower id) newest first, floor_seq <= seq < before_seq, maybe active only."""
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
        """The follow seq of every `every`-th follower, newest first: a fan-out's chunks."""
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
        """The celebrities each viewer follows, in one query for a batch of live sessions."""
        rows = await self.pool.fetch(
            "SELECT f.follower_id, f.followee_id FROM follows f "
            "JOIN users u ON u.id = f.followee_id "
            f"WHERE f.follower_id = ANY($1::bigint[]) AND {fanout.celebrity_sql('u', '$2')}",
            viewers, threshold,
        )
        out: dict[int, set[int]] = {}
        for r in rows:
            out.setdefault(r["follower_id"], set()).add(r["followee_id"])
        return out

    async def followers_among(self, author: int, viewers: list[int]) -> set[int]:
        """Which of `viewers` follow `author`, in one query."""
        rows = await self.pool.fetch(
            "SELECT follower_id FROM follows WHERE followee_id = $1 "
            "AND follower_id = ANY($2::bigint[])",
            author, viewers,
        )
        return {r["follower_id"] for r in rows}
