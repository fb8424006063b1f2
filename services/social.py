"""Follow and unfollow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from core import fanout
from core.errors import BadInput, NotFound
from core.models import AUTHOR_DEMOTED, Event, User
from services.feed import FeedManager
from storage import outbox
from storage.graph import FollowChange, SocialGraph
from storage.users import UserStore


@dataclass(slots=True)
class Social:
    graph: SocialGraph
    users: UserStore
    feed: FeedManager
    next_id: Callable[[], int]
    threshold: int

    async def _target(self, follower: int, followee: int) -> None:
        if follower == followee:
            raise BadInput("you cannot follow yourself", field="userId")
        if followee not in await self.users.get_many([followee]):
            raise NotFound(f"no user {followee}")

    async def follow(self, follower: int, followee: int) -> User:
        await self._target(follower, followee)
        change = await self.graph.follow(follower, followee, self.next_id())
        if change.changed:
            await self.feed.announce(self._changed(follower, followee, change))
            await self.feed.on_follow(follower, followee, change.followers_after)
        return (await self.users.get_many([followee]))[followee]

    def _changed(self, follower: int, followee: int, change: FollowChange) -> list[str]:
        """What the read caches must forget: the follower's followees, both users' counts,
        and the followee's celebrity status if it just changed."""
        items = [f"f{follower}", f"u{follower}", f"u{followee}"]
        now = fanout.is_celebrity(change.followers_after, self.threshold)
        if now != fanout.is_celebrity(change.followers_before, self.threshold):
            items.append(f"c{followee}:{int(now)}")
        return items

    async def unfollow(self, follower: int, followee: int) -> User:
        await self._target(follower, followee)

        async def announce_demotion(tx: asyncpg.Connection, change: FollowChange) -> None:
            if fanout.demoted(change.followers_before, change.followers_after, self.threshold):
                await outbox.add(tx, Event(AUTHOR_DEMOTED, 0, followee))

        change = await self.graph.unfollow(follower, followee, on_change=announce_demotion)
        if change.changed:
            await self.feed.announce(self._changed(follower, followee, change))
            await self.feed.on_unfollow(follower, followee)
        return (await self.users.get_many([followee]))[followee]
