"""GraphQL types of live subscriptions, and the Subscription root."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from enum import Enum

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from schema.errors import classify
from schema.types import Tweet
from subscriptions import live


@strawberry.enum
class TimelineEventKind(Enum):
    TWEET_ADDED = "TWEET_ADDED"
    TWEET_DELETED = "TWEET_DELETED"
    RESYNC = "RESYNC"  # events may have been missed: refetch with sinceId


@strawberry.type
class TimelineEvent:
    kind: TimelineEventKind
    tweet_id: strawberry.ID | None
    tweet: Tweet | None

    @classmethod
    def of(cls, e: live.LiveEvent) -> TimelineEvent:
        return cls(
            kind=TimelineEventKind(e.kind),
            tweet_id=strawberry.ID(str(e.tweet_id)) if e.tweet_id is not None else None,
            tweet=Tweet.of(e.tweet, e.author) if e.tweet is not None else None,
        )


async def _coded(events: AsyncIterator[live.LiveEvent]) -> AsyncIterator[live.LiveEvent]:
    """WebSocket errors are formatted by the protocol handler, not by our HTTP view: give
    them their extensions.code here."""
    try:
        async for event in events:
            yield event
    except GraphQLError:
        raise
    except Exception as e:
        code, message, extra = classify(GraphQLError(str(e), original_error=e))
        raise GraphQLError(message, extensions={"code": code, **extra}) from e


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def home_timeline(
        self, info: Info, since_id: strawberry.ID | None = None
    ) -> AsyncGenerator[TimelineEvent, None]:
        """The viewer's home timeline, live: own tweets, followees' tweets (pushed by
        fan-out) and followed celebrities' tweets (from their channels), and deletes."""
        async for event in _coded(live.home_timeline(info.context, since_id)):
            yield TimelineEvent.of(event)

    @strawberry.subscription
    async def user_tweets(
        self, info: Info, handle: str
    ) -> AsyncGenerator[TimelineEvent, None]:
        """One author's new and deleted tweets."""
        async for event in _coded(live.user_tweets(info.context, handle)):
            yield TimelineEvent.of(event)
