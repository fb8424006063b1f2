"""Home and user timelines."""

from __future__ import annotations

import dataclasses

from core.errors import NotFound
from core.models import User
from resolvers import args
from resolvers.context import Context
from services.feed import Page


async def _with_authors(ctx: Context, page: Page) -> Page:
    """Load every author of the page in one batch up front, so `author` fields resolve
    synchronously instead of one awaitable per tweet."""
    ids = list({t.author_id for t in page.tweets})
    users = await ctx.loaders.users_many(ids)
    return dataclasses.replace(
        page, authors={i: u for i, u in zip(ids, users, strict=True) if u is not None}
    )


async def home(ctx: Context, first: int | None, after: str | None, since_id: str | None) -> Page:
    viewer = ctx.require_viewer()
    page = await ctx.services.feed.home_page(
        viewer, args.page_size(first), args.before_tweet(after), args.since(since_id),
        ctx.loaders.tweets_many, ctx.loaders.fence,
    )
    if page.degraded:
        ctx.mark_degraded()
    return await _with_authors(ctx, page)


async def of_user(
    ctx: Context, user: User, first: int | None, after: str | None, since_id: str | None = None
) -> Page:
    page = await ctx.services.feed.user_page(
        user.id, args.page_size(first), args.before_tweet(after), args.since(since_id),
        ctx.loaders.tweets_many, ctx.loaders.fence,
    )
    if page.degraded:
        ctx.mark_degraded()
    return await _with_authors(ctx, page)


async def of_handle(ctx: Context, handle: str, first: int | None, after: str | None) -> Page:
    user = await ctx.loaders.users_by_handle.load(handle)
    if user is None:
        raise NotFound(f"no user @{handle}")
    return await of_user(ctx, user, first, after)
