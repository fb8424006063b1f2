"""Users in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from core.errors import Conflict, Unavailable
from core.models import User

_COLUMNS = (
    "id, handle, display_name, bio, created_at, followers_count, following_count, tweets_count"
)


def _user(row: asyncpg.Record) -> User:
    return User(*row.values())


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self, user_id: int, handle: str, display_name: str, password_hash: str
    ) -> User:
        try:
            row = await self.pool.fetchrow(
                f"INSERT INTO users (id, handle, display_name, password_hash) "
                f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
                user_id, handle, display_name, password_hash,
            )
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == "users_pkey":  # two processes on one worker id
                raise Unavailable("user id collision; retry") from None
            raise Conflict(f"handle {handle!r} is already taken", field="handle") from None
        return _user(row)

    async def get_many(self, ids: Iterable[int]) -> dict[int, User]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", list(ids)
        )
        return {r["id"]: _user(r) for r in rows}

    async def by_handles(self, handles: Iterable[str]) -> dict[str, User]:
        """Keyed by lower-cased handle."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM users WHERE lower(handle) = ANY($1::text[])",
            [h.lower() for h in handles],
        )
        return {r["handle"].lower(): _user(r) for r in rows}

    async def credentials(self, handle: str) -> tuple[User, str] | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS}, password_hash FROM users WHERE lower(handle) = lower($1)", handle
        )
        if row is None:
            return None
        values = list(row.values())
        return User(*values[:-1]), values[-1]

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self.pool.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )

    async def mark_active(self, user_id: int) -> None:
        await self.pool.execute(
            "UPDATE users SET last_active_at = now() WHERE id = $1", user_id
        )
