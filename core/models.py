"""Plain records passed between the core, the adapters and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    id: int
    handle: str
    display_name: str
    bio: str
    created_at: datetime
    followers_count: int
    following_count: int
    tweets_count: int


@dataclass(frozen=True, slots=True)
class Tweet:
    id: int
    author_id: int
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Followee:
    """One account a viewer follows, with what the home timeline needs to know of it."""

    user_id: int
    followers_count: int


@dataclass(frozen=True, slots=True)
class Event:
    """A domain event on the bus. `kind` is one of the EVENT_* names below."""

    kind: str
    tweet_id: int
    author_id: int


TWEET_CREATED = "TweetCreated"
TWEET_DELETED = "TweetDeleted"
# An author fell below the celebrity threshold: their tweets must now be pushed, and the
# ones posted while they were pulled must be merged into followers' cached timelines.
AUTHOR_DEMOTED = "AuthorDemoted"
