"""Media rows in PostgreSQL (migrations/0003_media.sql)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from core.media import PENDING, Media, Variant

_COLUMNS = ("id, owner_id, state, content_type, byte_size, token, alt_text, width, height, "
            "variants, error, tweet_id")
CLAIM_STALE_S = 300  # a claim this old belongs to a process that died mid-processing


def _media(row: asyncpg.Record) -> Media:
    variants = tuple(Variant(**v) for v in orjson.loads(row["variants"]))
    return Media(row["id"], row["owner_id"], row["state"], row["content_type"],
                 row["byte_size"], row["token"], row["alt_text"], row["width"], row["height"],
                 variants, row["error"], row["tweet_id"])


def _variants_json(variants: Sequence[Variant]) -> str:
    return orjson.dumps([
        {"name": v.name, "key": v.key, "width": v.width, "height": v.height,
         "content_type": v.content_type, "byte_size": v.byte_size} for v in variants
    ]).decode()


class MediaRows:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, m: Media) -> None:
        await self.pool.execute(
            "INSERT INTO media (id, owner_id, state, content_type, byte_size, token, alt_text) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            m.id, m.owner_id, m.state, m.content_type, m.byte_size, m.token, m.alt_text,
        )

    async def get_many(self, ids: Sequence[int]) -> dict[int, Media]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM media WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL",
            list(ids),
        )
        return {r["id"]: _media(r) for r in rows}

    async def claim(self, media_id: int, owner_id: int) -> Media | None:
        """The pending media, claimed by this caller; None if not pending or claimed."""
        row = await self.pool.fetchrow(
            f"UPDATE media SET claimed_at = now() WHERE id = $1 AND owner_id = $2 "
            f"AND state = '{PENDING}' AND deleted_at IS NULL AND (claimed_at IS NULL OR "
            f"claimed_at < now() - make_interval(secs => {CLAIM_STALE_S})) "
            f"RETURNING {_COLUMNS}",
            media_id, owner_id,
        )
        return _media(row) if row else None

    async def release(self, media_id: int) -> None:
        await self.pool.execute("UPDATE media SET claimed_at = NULL WHERE id = $1", media_id)

    async def settle(self, media_id: int, state: str, *, width: int | None = None,
                     height: int | None = None, variants: Sequence[Variant] = (),
                     error: str | None = None) -> Media | None:
        """READY or FAILED, from PENDING only; None if the row is gone or settled."""
        row = await self.pool.fetchrow(
            f"UPDATE media SET state = $2, width = $3, height = $4, variants = $5::jsonb, "
            f"error = $6, claimed_at = NULL WHERE id = $1 AND state = '{PENDING}' "
            f"AND deleted_at IS NULL RETURNING {_COLUMNS}",
            media_id, state, width, height, _variants_json(variants), error,
        )
        return _media(row) if row else None

    async def for_tweets(self, tweet_ids: Sequence[int]) -> dict[int, list[Media]]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM media WHERE tweet_id = ANY($1::bigint[]) "
            f"AND deleted_at IS NULL ORDER BY tweet_id, position",
            list(tweet_ids),
        )
        found: dict[int, list[Media]] = {}
        for r in rows:
            found.setdefault(r["tweet_id"], []).append(_media(r))
        return found

    @staticmethod
    async def attach(tx: asyncpg.Connection, tweet_id: int, owner_id: int,
                     media_ids: Sequence[int]) -> int:
        """Attach the owner's READY, unattached media in this order; how many were."""
        done = await tx.fetch(
            "UPDATE media SET tweet_id = $1, position = array_position($3::bigint[], id) "
            "WHERE id = ANY($3::bigint[]) AND owner_id = $2 AND state = 'READY' "
            "AND tweet_id IS NULL AND deleted_at IS NULL RETURNING id",
            tweet_id, owner_id, list(media_ids),
        )
        return len(done)

    @staticmethod
    async def mark_deleted(tx: asyncpg.Connection, tweet_id: int) -> list[Media]:
        rows = await tx.fetch(
            f"UPDATE media SET deleted_at = now() WHERE tweet_id = $1 AND deleted_at IS NULL "
            f"RETURNING {_COLUMNS}",
            tweet_id,
        )
        return [_media(r) for r in rows]

    async def sweepable(self, orphan_hours: int, limit: int) -> list[int]:
        """Ids of media deleted with their tweet, and of orphans past `orphan_hours`."""
        rows = await self.pool.fetch(
            "(SELECT id FROM media WHERE deleted_at IS NOT NULL LIMIT $2) UNION ALL "
            "(SELECT id FROM media WHERE tweet_id IS NULL AND deleted_at IS NULL "
            "AND created_at < now() - make_interval(hours => $1) LIMIT $2)",
            orphan_hours, limit,
        )
        return [r["id"] for r in rows]

    @staticmethod
    async def take_for_removal(tx: asyncpg.Connection, ids: Sequence[int],
                               orphan_hours: int) -> list[Media]:
        """Delete these rows if still removable; locked until `tx` ends against attaching."""
        rows = await tx.fetch(
            f"DELETE FROM media WHERE id = ANY($1::bigint[]) AND (deleted_at IS NOT NULL OR "
            f"(tweet_id IS NULL AND created_at < now() - make_interval(hours => $2))) "
            f"RETURNING {_COLUMNS}",
            list(ids), orphan_hours,
        )
        return [_media(r) for r in rows]
