"""Users, follows and accounts."""

from __future__ import annotations

from dataclasses import dataclass

from core.models import User
from resolvers import args
from resolvers.context import Context


@dataclass(frozen=True, slots=True)
class UserPage:
    edges: list[tuple[int, User]]  # (follow seq, user), newest follow first
    has_next: bool


async def viewer(ctx: Context) -> User | None:
    if ctx.auth_error is not None:
        raise ctx.auth_error
    if ctx.viewer_id is None:
        return None
    return await ctx.loaders.users.load(ctx.viewer_id)


async def by_handle(ctx: Context, handle: str) -> User | None:
    if not isinstance(handle, str) or not 1 <= len(handle) <= 15:
        return None
    return await ctx.loaders.users_by_handle.load(handle)


async def followers(ctx: Context, user: User, first: int | None, after: str | None) -> UserPage:
    n = args.page_size(first)
    rows = await ctx.services.graph.followers_page(user.id, args.before_follow(after), n + 1)
    return await _page(ctx, rows, n)


async def following(ctx: Context, user: User, first: int | None, after: str | None) -> UserPage:
    n = args.page_size(first)
    rows = await ctx.services.graph.following_page(user.id, args.before_follow(after), n + 1)
    return await _page(ctx, rows, n)


async def _page(ctx: Context, rows: list[tuple[int, int]], n: int) -> UserPage:
    users = await ctx.loaders.users.load_many([uid for _seq, uid in rows[:n]])
    edges = [(seq, u) for (seq, _uid), u in zip(rows[:n], users, strict=True) if u is not None]
    return UserPage(edges, len(rows) > n)


async def viewer_is_following(ctx: Context, user: User) -> bool:
    if ctx.viewer_id is None or ctx.viewer_id == user.id:
        return False
    return await ctx.loaders.viewer_follows.load(user.id)


async def follow(ctx: Context, user_id: str) -> User:
    viewer_id = ctx.require_viewer()
    return await ctx.services.social.follow(viewer_id, args.snowflake(user_id, "userId"))


async def unfollow(ctx: Context, user_id: str) -> User:
    viewer_id = ctx.require_viewer()
    return await ctx.services.social.unfollow(viewer_id, args.snowflake(user_id, "userId"))


async def sign_up(ctx: Context, handle: str, password: str, display_name: str | None):
    user = await ctx.services.accounts.sign_up(handle, password, display_name)
    return ctx.services.accounts.token_for(user), user


async def log_in(ctx: Context, handle: str, password: str):
    user = await ctx.services.accounts.log_in(handle, password)
    return ctx.services.accounts.token_for(user), user
