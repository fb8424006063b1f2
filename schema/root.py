"""The Query and Mutation roots."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers import media, timelines, tweets, users
from schema.media import HttpHeader, Media, MediaUpload
from schema.types import AuthPayload, Tweet, TweetConnection, User


@strawberry.type
class Query:
    @strawberry.field
    async def viewer(self, info: Info) -> User | None:
        m = await users.viewer(info.context)
        return User.of(m) if m else None

    @strawberry.field
    async def user(self, info: Info, handle: str) -> User | None:
        m = await users.by_handle(info.context, handle)
        return User.of(m) if m else None

    @strawberry.field
    async def tweet(self, info: Info, id: strawberry.ID) -> Tweet | None:
        m = await tweets.by_id(info.context, id)
        return Tweet.of(m) if m else None

    @strawberry.field
    async def media(self, info: Info, id: strawberry.ID) -> Media | None:
        m = await media.by_id(info.context, id)
        return Media.of(m, info.context.services.media) if m else None

    @strawberry.field
    async def home_timeline(
        self, info: Info, first: int = 20, after: str | None = None,
        since_id: strawberry.ID | None = None,
    ) -> TweetConnection:
        page = await timelines.home(info.context, first, after, since_id)
        return TweetConnection.of(page, after, info.context.services.caches)

    @strawberry.field
    async def user_timeline(
        self, info: Info, handle: str, first: int = 20, after: str | None = None
    ) -> TweetConnection:
        page = await timelines.of_handle(info.context, handle, first, after)
        return TweetConnection.of(page, after, info.context.services.caches)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def sign_up(
        self, info: Info, handle: str, password: str, display_name: str | None = None
    ) -> AuthPayload:
        token, m = await users.sign_up(info.context, handle, password, display_name)
        return AuthPayload(token=token, user=User.of(m))

    @strawberry.mutation
    async def log_in(self, info: Info, handle: str, password: str) -> AuthPayload:
        token, m = await users.log_in(info.context, handle, password)
        return AuthPayload(token=token, user=User.of(m))

    @strawberry.mutation(description="Revoke the token this request carries; with "
                                     "everywhere: true, every token of the account.")
    async def log_out(self, info: Info, everywhere: bool = False) -> bool:
        return await users.log_out(info.context, everywhere)

    @strawberry.mutation
    async def post_tweet(
        self, info: Info, text: str, idempotency_key: str | None = None,
        media_ids: list[strawberry.ID] | None = None,
    ) -> Tweet:
        return Tweet.of(await tweets.post(info.context, text, idempotency_key, media_ids))

    @strawberry.mutation
    async def create_media_upload(
        self, info: Info, content_type: str, byte_size: int, alt_text: str | None = None
    ) -> MediaUpload:
        up = await media.create_upload(info.context, content_type, byte_size, alt_text)
        return MediaUpload(
            media=Media.of(up.media, info.context.services.media), upload_url=up.put.url,
            upload_headers=[HttpHeader(name=k, value=v) for k, v in up.put.headers.items()],
            expires_at=up.expires_at.isoformat().replace("+00:00", "Z"),
        )

    @strawberry.mutation
    async def complete_media_upload(self, info: Info, media_id: strawberry.ID) -> Media:
        return Media.of(await media.complete(info.context, media_id),
                        info.context.services.media)

    @strawberry.mutation
    async def delete_tweet(self, info: Info, id: strawberry.ID) -> bool:
        return await tweets.delete(info.context, id)

    @strawberry.mutation
    async def follow(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.follow(info.context, user_id))

    @strawberry.mutation
    async def unfollow(self, info: Info, user_id: strawberry.ID) -> User:
        return User.of(await users.unfollow(info.context, user_id))
