"""Users, follows and accounts."""

from __future__ import annotations

from dataclasses import dataclass

from core import validation
from core.errors import Unauthenticated
from core.models import User
from resolvers import args
from resolvers.context import Context, issued


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
    target = args.snowflake(user_id, "userId")
    ctx.note(await ctx.services.limits.follow(viewer_id))
    return await ctx.services.social.follow(viewer_id, target)


async def unfollow(ctx: Context, user_id: str) -> User:
    viewer_id = ctx.require_viewer()
    target = args.snowflake(user_id, "userId")
    ctx.note(await ctx.services.limits.follow(viewer_id))
    return await ctx.services.social.unfollow(viewer_id, target)


async def sign_up(ctx: Context, handle: str, password: str, display_name: str | None):
    accounts = ctx.services.accounts
    validation.handle(handle)
    validation.password(password)
    ctx.note(await ctx.services.limits.sign_up(ctx.address))
    user = await accounts.sign_up(handle, password, display_name)
    token = accounts.token_for(user)
    issued(ctx.services, token)
    return token, user


async def log_in(ctx: Context, handle: str, password: str):
    accounts = ctx.services.accounts
    validation.login_handle(handle)
    validation.login_password(password)
    ctx.note(await ctx.services.limits.log_in(handle, ctx.address))
    user = await accounts.log_in(handle, password)
    token = accounts.token_for(user)
    issued(ctx.services, token)
    return token, user


async def log_out(ctx: Context, everywhere: bool) -> bool:
    ctx.require_viewer()
    if ctx.claims is None:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>")
    await ctx.services.accounts.log_out(ctx.claims, everywhere)
    ctx.forget_token(everywhere)
    return True
