"""PostgreSQL connection pool and the migrations the app applies at start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg

import migrations

MIGRATIONS_DIR = migrations.POSTGRES
_MIGRATION_LOCK = 0x43484952  # "CHIR": one migrator at a time across processes


async def connect(
    url: str, size: int = 10, on_query: Callable[[object], None] | None = None
) -> asyncpg.Pool:
    """A pool; `on_query` (if given) sees every query run, e.g. to count them."""

    async def init(conn: asyncpg.Connection) -> None:
        if on_query is not None:
            conn.add_query_logger(on_query)

    async def reset(conn: asyncpg.Connection) -> None:
        # No reset round trip per pooled query: pooled connections hold no session state.
        return None

    return await asyncpg.create_pool(
        url,
        init=init,
        reset=reset,
        min_size=min(2, size),
        max_size=size,
        command_timeout=10,
        # Statements are prepared per connection; a large cache keeps hot ones prepared.
        statement_cache_size=256,
    )


async def migrate(pool: asyncpg.Pool, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, sql in migrations.pending(directory, ".sql", done):
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
