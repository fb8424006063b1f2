"""GraphQL object types over domain records; I/O goes through resolvers and loaders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from core import cursor
from core.media import Media as MediaModel
from core.models import Tweet as TweetModel
from core.models import User as UserModel
from resolvers import timelines, tweets, users
from resolvers.users import UserPage
from schema.media import Media
from services.feed import Page
from storage.readcache import MISSING, Memo, ReadCaches

# (type, field) -> getter(source, context) the compiled executor calls instead of the
# resolver (which runs on UNRESOLVED); it must return exactly what the resolver would.
UNRESOLVED = object()
DIRECT: dict[tuple[str, str], Callable[[Any, Any], Any]] = {}
# Getters above whose answer depends on the source object alone, not the request.
PURE: set[Callable[[Any, Any], Any]] = set()
# Types whose objects are never changed once built and may be shared by requests: the
# compiled executor may reuse a completion of the same object (schema/compiled.py).
SHARED = {"TweetEdge"}


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool
    start_cursor: str | None


@strawberry.type
class User:
    model: strawberry.Private[UserModel]
    id: strawberry.ID
    handle: str
    display_name: str
    bio: str
    created_at: datetime
    followers_count: int
    following_count: int
    tweets_count: int

    @classmethod
    def of(cls, m: UserModel) -> User:
        return cls(
            model=m, id=strawberry.ID(str(m.id)), handle=m.handle, display_name=m.display_name,
            bio=m.bio, created_at=m.created_at, followers_count=m.followers_count,
            following_count=m.following_count, tweets_count=m.tweets_count,
        )

    @strawberry.field
    def is_celebrity(self, info: Info) -> bool:
        return _is_celebrity(self, info.context)

    @strawberry.field
    async def viewer_is_following(self, info: Info) -> bool:
        return await users.viewer_is_following(info.context, self.model)

    @strawberry.field
    async def tweets(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> TweetConnection:
        page = await timelines.of_user(info.context, self.model, first, after)
        return TweetConnection.of(page, after, info.context.services.caches)

    @strawberry.field
    async def followers(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> UserConnection:
        return UserConnection.of(await users.followers(info.context, self.model, first, after),
                                 after)

    @strawberry.field
    async def following(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> UserConnection:
        return UserConnection.of(await users.following(info.context, self.model, first, after),
                                 after)


@strawberry.type
class Tweet:
    model: strawberry.Private[TweetModel]
    # Set when the author was loaded with the page: no awaitable per tweet.
    author_model: strawberry.Private[UserModel | None]
    id: strawberry.ID
    text: str
    created_at: datetime
    # Set when the tweet's media are known up front (a post, a live event).
    media_models: strawberry.Private[tuple[MediaModel, ...] | None] = None

    @classmethod
    def of(cls, m: TweetModel, author: UserModel | None = None,
           media: tuple[MediaModel, ...] | None = None) -> Tweet:
        return cls(model=m, author_model=author, id=strawberry.ID(str(m.id)), text=m.text,
                   created_at=m.created_at, media_models=media)

    @strawberry.field
    def author(self, info: Info) -> User:
        if self.author_model is not None:
            return User.of(self.author_model)
        return _load_author(info, self.model)  # type: ignore[return-value]  # awaited by graphql-core


    @strawberry.field
    def media(self, info: Info) -> list[Media]:
        known = _known_media(self, info.context)
        if known is not UNRESOLVED:
            return known
        return _load_media(info, self.model)  # type: ignore[return-value]  # awaited by graphql-core


async def _load_author(info: Info, tweet: TweetModel) -> User:
    return User.of(await tweets.author(info.context, tweet))


def _known_media(tweet: Tweet, context: Any) -> Any:
    """The tweet's media if known without I/O; UNRESOLVED otherwise (the loader batches)."""
    library = context.services.media
    found = tweet.media_models
    if found is None:
        found = library.by_tweet.get(tweet.model.id)
        if found is None:
            return UNRESOLVED
    return [Media.of(m, library) for m in found]


async def _load_media(info: Info, tweet: TweetModel) -> list[Media]:
    library = info.context.services.media
    return [Media.of(m, library) for m in await info.context.loaders.tweet_media.load(tweet.id)]


def _is_celebrity(user: User, context: Any) -> bool:
    return context.services.feed.celebrity(user.model)


def _preloaded_author(tweet: Tweet, context: Any) -> Any:
    return User.of(tweet.author_model) if tweet.author_model is not None else UNRESOLVED


DIRECT[("User", "isCelebrity")] = _is_celebrity
DIRECT[("Tweet", "author")] = _preloaded_author
DIRECT[("Tweet", "media")] = _known_media
PURE.add(_preloaded_author)


@strawberry.type
class TweetEdge:
    cursor: str
    node: Tweet


@strawberry.type
class TweetConnection:
    edges: list[TweetEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page, after: str | None, caches: ReadCaches | None) -> TweetConnection:
        authors = page.authors or {}
        if caches is None:
            edges = [_edge(t, authors.get(t.author_id)) for t in page.tweets]
        else:
            edges = [_kept_edge(caches.edges, t, authors.get(t.author_id))
                     for t in page.tweets]
        return cls(edges=edges, page_info=_page_info(edges, page.has_next, after))


def _edge(t: TweetModel, author: UserModel | None) -> TweetEdge:
    return TweetEdge(cursor=cursor.encode(cursor.TWEET, t.id), node=Tweet.of(t, author))


def _kept_edge(memo: Memo, t: TweetModel, author: UserModel | None) -> TweetEdge:
    """The same records give the same edge object, so that its completion can be reused.
    Keyed by id(tweet): the entry keeps the tweet, so the id stays its own."""
    found = memo.get(id(t))
    if found is not MISSING and found[0] is t and found[1] is author:
        return found[2]
    edge = _edge(t, author)
    memo.put(id(t), (t, author, edge))
    return edge


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, page: UserPage, after: str | None) -> UserConnection:
        edges = [UserEdge(cursor=cursor.encode(cursor.FOLLOW, seq), node=User.of(u))
                 for seq, u in page.edges]
        return cls(edges=edges, page_info=_page_info(edges, page.has_next, after))


def _page_info(edges: list, has_next: bool, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        end_cursor=edges[-1].cursor if edges else None,
        # Keyset pages only know there is something newer when they were reached by paging.
        has_previous_page=after is not None,
        start_cursor=edges[0].cursor if edges else None,
    )


@strawberry.type
class AuthPayload:
    token: str
    user: User
