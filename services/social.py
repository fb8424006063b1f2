"""Follow and unfollow, and the demotion of celebrities (core/fanout.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg

from core import fanout
from core.errors import BadInput, NotFound
from core.models import AUTHOR_DEMOTED, Event, User
from runtime import metrics
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
    bounds: fanout.Bounds

    async def _target(self, follower: int, followee: int) -> None:
        if follower == followee:
            raise BadInput("you cannot follow yourself", field="userId")
        if followee not in await self.users.get_many([followee]):
            raise NotFound(f"no user {followee}")

    async def follow(self, follower: int, followee: int) -> User:
        await self._target(follower, followee)
        change = await self.graph.follow(follower, followee, self.next_id(), self.bounds)
        if change.changed:
            await self.feed.announce(self._changed(follower, followee, change))
            await self.feed.on_follow(follower, followee, change.pushed_after)
        return (await self.users.get_many([followee]))[followee]

    def _changed(self, follower: int, followee: int, change: FollowChange) -> list[str]:
        """What the read caches must forget after a follow or unfollow."""
        items = [f"f{follower}", f"u{follower}", f"u{followee}"]
        if change.celebrity_after != change.celebrity_before:
            items.append(f"c{followee}:{int(change.celebrity_after)}")
        return items

    async def unfollow(self, follower: int, followee: int) -> User:
        # Never a demotion: the flag outlives the count (demote_due decides, later).
        await self._target(follower, followee)
        change = await self.graph.unfollow(follower, followee, self.bounds)
        if change.changed:
            await self.feed.announce(self._changed(follower, followee, change))
            await self.feed.on_unfollow(follower, followee)
        return (await self.users.get_many([followee]))[followee]

    async def demote_due(self, now: datetime | None = None) -> list[int]:
        """Starts the demotions now due (core/fanout.py), one AUTHOR_DEMOTED event each;
        returns whose. The worker runs it periodically."""
        now = now or datetime.now(UTC)
        bounds = self.bounds
        demoted = []
        for user_id, count, since in await self.graph.flagged():
            below = fanout.below_since(True, count, bounds.demote_below, since, now)
            if below != since:
                await self.graph.mark_below(user_id, since, below)
            if not fanout.demotable(True, count, since, now, bounds):
                continue

            async def announce(tx: asyncpg.Connection, user_id: int = user_id) -> None:
                await outbox.add(tx, Event(AUTHOR_DEMOTED, 0, user_id))

            due = partial(fanout.demotable, True, now=now, bounds=bounds)
            if await self.graph.start_demotion(user_id, due, announce):
                demoted.append(user_id)
                metrics.CELEBRITY_DEMOTIONS.inc()
        return demoted
