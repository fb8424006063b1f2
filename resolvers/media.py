"""Media uploads and reads."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import BadInput
from core.media import MAX_PER_TWEET, Media
from resolvers import args
from resolvers.context import Context
from services.media import Upload


async def create_upload(ctx: Context, content_type: str, byte_size: int,
                        alt_text: str | None) -> Upload:
    viewer_id = ctx.require_viewer()
    return await ctx.services.media.create_upload(viewer_id, content_type, byte_size, alt_text)


async def complete(ctx: Context, raw_id: str) -> Media:
    viewer_id = ctx.require_viewer()
    return await ctx.services.media.complete(viewer_id, args.snowflake(raw_id, "mediaId"))


async def by_id(ctx: Context, raw_id: str) -> Media | None:
    media_id = args.snowflake(raw_id, "id")
    return await ctx.services.media.visible(ctx.viewer_id, media_id)


def ids(raw: Sequence[object] | None, field: str = "mediaIds") -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise BadInput(f"{field} must be a list of media ids", field=field)
    if len(raw) > MAX_PER_TWEET:
        raise BadInput(f"a tweet has at most {MAX_PER_TWEET} media", field=field)
    return [args.snowflake(i, field) for i in raw]


async def of_tweets(ctx: Context, tweet_ids: Sequence[int]) -> list[tuple[Media, ...]]:
    return await ctx.loaders.tweet_media.load_many(tweet_ids)

