"""Bulk seeding for benchmarks: rows written straight to the tables with COPY."""

from __future__ import annotations

from runtime.container import Services


async def author_with_followers(svc: Services, n: int) -> tuple[int, list[int]]:
    """A new author and n new users who follow them, counters exact."""
    author = svc.ids.next_id()
    ids = [svc.ids.next_id() for _ in range(n)]
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash"],
            records=[(u, f"s{u % 10**13}", "seeded", "x") for u in [author, *ids]],
        )
        await conn.copy_records_to_table(
            "follows", columns=["follower_id", "followee_id", "seq"],
            records=[(u, author, svc.ids.next_id()) for u in ids],
        )
        await conn.execute("UPDATE users SET followers_count = $2 WHERE id = $1", author, n)
        await conn.execute(
            "UPDATE users SET following_count = 1 WHERE id = ANY($1::bigint[])", ids
        )
    return author, ids
