"""Plain records passed between the core, the adapters and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
    celebrity: bool = False  # the stored flag; core.fanout decides
    demoting: bool = False  # a demotion under way: pulled and pushed (core.fanout.pushed)


@dataclass(frozen=True, slots=True)
class Tweet:
    id: int
    author_id: int
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """A domain event on the bus. `kind` is one of the names below.

    `text`: a new tweet's text when the store is not the outbox's database (Cassandra).
    `span`: one chunk of a big fan-out, follow seqs [floor, before)."""

    kind: str
    tweet_id: int
    author_id: int
    text: str | None = None
    span: tuple[int, int] | None = None

    @property
    def key(self) -> bytes:
        """The partitioning key: one author's events stay in order; chunks of one fan-out
        spread over partitions so several workers share it."""
        if self.span is not None:
            return f"{self.tweet_id}:{self.span[0]}".encode()
        return str(self.author_id).encode()


TWEET_CREATED = "TweetCreated"
TWEET_DELETED = "TweetDeleted"
# An author stopped being a celebrity (core/fanout.py): their tweets must now be pushed, and
# the ones posted while they were pulled must be merged into followers' cached timelines.
AUTHOR_DEMOTED = "AuthorDemoted"


class LiveKind(StrEnum):
    """What a live timeline event says: one type from a Redis notice (storage/notices.py)
    to the GraphQL enum `TimelineEventKind`."""

    TWEET_ADDED = "TWEET_ADDED"
    TWEET_DELETED = "TWEET_DELETED"
    RESYNC = "RESYNC"  # events may have been missed: refetch with sinceId
