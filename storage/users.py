"""Users in PostgreSQL, and the batched writer of readers' activity marks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import asyncpg

from core.errors import Conflict, Unavailable
from core.models import User
from runtime import tasks

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, handle, display_name, bio, created_at, followers_count, following_count, tweets_count,"
    " celebrity, celebrity_demoting"
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

    async def mark_active(self, user_ids: list[int]) -> None:
        await self.pool.execute(
            "UPDATE users SET last_active_at = now() WHERE id = ANY($1::bigint[])", user_ids
        )


class ActivityMarks:
    """Readers to mark active (CHIRP_ACTIVE_DAYS), one UPDATE per batch, off the read path."""

    DELAY_S = 0.05

    def __init__(self, users: UserStore) -> None:
        self.users = users
        self._pending: set[int] = set()
        self._task: asyncio.Task | None = None

    def add(self, user_id: int) -> None:
        self._pending.add(user_id)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_soon())

    async def _write_soon(self) -> None:
        # The task stays set while its batch is written, so `idle` can wait for it.
        try:
            await asyncio.sleep(self.DELAY_S)
            await self.flush()
        finally:
            self._task = None
        if self._pending:  # readers who came back while the batch was being written
            self._task = asyncio.get_running_loop().create_task(self._write_soon())

    async def idle(self) -> None:
        """Every mark queued so far written, none in flight."""
        await self.flush()
        while (task := self._task) is not None:
            await task

    async def flush(self) -> None:
        batch, self._pending = list(self._pending), set()
        if not batch:
            return
        try:
            await self.users.mark_active(batch)
        except Exception as e:  # activity is advisory; the next hour's read marks again
            log.warning("could not mark %d readers active: %s", len(batch), e)

    async def close(self) -> None:
        await tasks.cancel(self._task)
        await self.flush()
