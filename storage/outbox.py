"""The transactional outbox: events committed with their change, relayed to the bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from core.models import Event

CHANNEL = "chirp_outbox"  # NOTIFY wakes the relay at once instead of on its next poll


async def add(tx: asyncpg.Connection, event: Event) -> None:
    await tx.execute(
        "INSERT INTO outbox (kind, tweet_id, author_id, text) VALUES ($1, $2, $3, $4)",
        event.kind, event.tweet_id, event.author_id, event.text,
    )
    await tx.execute(f"NOTIFY {CHANNEL}")


async def relay_batch(
    pool: asyncpg.Pool, publish: Callable[[list[Event]], Awaitable[None]], limit: int = 500
) -> int:
    """The oldest pending events to `publish`, removed only if it succeeds (SKIP LOCKED)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, kind, tweet_id, author_id, text FROM outbox ORDER BY id LIMIT $1 "
            "FOR UPDATE SKIP LOCKED",
            limit,
        )
        if not rows:
            return 0
        await publish([Event(r[1], r[2], r[3], r[4]) for r in rows])
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        return len(rows)


async def pending(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox")
