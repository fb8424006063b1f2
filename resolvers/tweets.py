"""Single tweets: read, post, delete."""

from __future__ import annotations

from core.errors import NotFound
from core.models import Tweet, User
from resolvers import args, media
from resolvers.context import Context


async def by_id(ctx: Context, raw_id: str) -> Tweet | None:
    return await ctx.loaders.tweets.load(args.snowflake(raw_id, "id"))


async def author(ctx: Context, tweet: Tweet) -> User:
    user = await ctx.loaders.users.load(tweet.author_id)
    if user is None:  # the schema promises an author; a missing one is a data error
        raise NotFound(f"author {tweet.author_id} of tweet {tweet.id} not found")
    return user


async def post(ctx: Context, text: str, idempotency_key: str | None,
               media_ids: list[object] | None = None) -> Tweet:
    viewer_id = ctx.require_viewer()
    return await ctx.services.tweeting.post(viewer_id, text, idempotency_key,
                                            media.ids(media_ids))


async def delete(ctx: Context, raw_id: str) -> bool:
    viewer_id = ctx.require_viewer()
    return await ctx.services.tweeting.delete(viewer_id, args.snowflake(raw_id, "id"))
