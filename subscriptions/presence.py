"""Presence of this process's live sessions, renewed in batches.

From a session's start, this process renews its marks (its presence field for this hub,
its cached home timeline's TTL, the presence keys of the celebrities it follows) and moves
its channels when it follows or unfollows a celebrity. One task does it for all sessions,
a slice per second, so each comes round every `HEARTBEAT_S` with one query and one
round trip per slice rather than per session.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from runtime.container import Services
from storage import keys, notices
from subscriptions.hub import Hub, Subscriber

log = logging.getLogger("chirp.live")

TICK_S = 1.0
BATCH = 500  # sessions per Redis round trip


def celebrity_channels(celebs: Iterable[int]) -> set[str]:
    return {keys.author_channel(c) for c in celebs}


class Presence:
    def __init__(self, services: Services, hub: Hub) -> None:
        self.services = services
        self.hub = hub
        # session -> the authors whose channels it listens to: the celebrities a home
        # timeline's viewer follows, or a userTweets session's author
        self.sessions: dict[Subscriber, set[int]] = {}
        self._cursor = 0

    @classmethod
    def of(cls, services: Services, hub: Hub) -> Presence:
        """The process's one instance, kept by its hub, started on first use."""
        presence = hub.presence
        if presence is None:
            presence = hub.presence = cls(services, hub)
            hub.spawn(presence._run())  # stopped with the hub
        return presence

    def add(self, sub: Subscriber, authors: set[int]) -> None:
        self.sessions[sub] = authors

    def discard(self, sub: Subscriber) -> None:
        self.sessions.pop(sub, None)

    async def mark(self, viewers: Iterable[int], authors: Iterable[int]) -> set[int]:
        """Present now: these viewers' sessions on this hub, and these authors' channels.
        Returns the viewers whose cached home timeline was missing: fan-out skips those,
        so their sessions may have missed tweets (see `heal`)."""
        home = self.services.home
        hub_id, ttl_ms = self.hub.id, notices.PRESENCE_TTL_S * 1000
        viewers, authors = list(viewers), list(authors)
        batches: list[list[int]] = []

        def build(pipe) -> None:
            # keeps the cached timeline alive as long as someone watches it
            batches[:] = home.queue_present(pipe, viewers, hub_id, ttl_ms)
            for a in authors:
                pipe.set(keys.author_presence(a), 1, ex=notices.PRESENCE_TTL_S)

        replies = await home.run(build)
        # an empty timeline is cached as '', so a missing one is truly gone
        return {v for batch, found in zip(batches, replies, strict=False)
                for v, ok in zip(batch, found, strict=True) if not ok}

    def heal(self, viewers: set[int]) -> None:
        """Sessions whose cached timeline vanished (Redis restarted or evicted it, or the
        session's first read fell back to the database) missed what fan-out skipped:
        resync them; their streams re-cache the timeline and refetch (subscriptions/streams.py)."""
        for viewer in viewers:
            for sub in self.hub.viewer_sessions(viewer):
                if sub in self.sessions:
                    sub.resync()

    async def renew(self, subs: list[Subscriber]) -> None:
        homes = [s for s in subs if s.viewer is not None and s in self.sessions]
        if homes:
            followed = await self.services.graph.celebrity_followees(
                sorted({s.viewer for s in homes}),
                self.services.settings.celebrity_threshold,
            )
            for sub in homes:
                now = followed.get(sub.viewer, set())
                if sub in self.sessions and self.sessions[sub] != now:
                    self.sessions[sub] = now
                    await sub.set_channels(celebrity_channels(now))
        for start in range(0, len(subs), BATCH):
            part = [s for s in subs[start:start + BATCH] if s in self.sessions]
            authors = set().union(*(self.sessions.get(s, ()) for s in part))
            missing = await self.mark({s.viewer for s in part if s.viewer is not None}, authors)
            if missing:
                log.warning("live: %d cached home timelines missing; resyncing their "
                            "sessions", len(missing))
                self.heal(missing)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            subs = list(self.sessions)
            if not subs:
                continue
            per_tick = math.ceil(len(subs) * TICK_S / notices.HEARTBEAT_S)
            start = self._cursor % len(subs)
            due = subs[start:start + per_tick]
            if len(due) < per_tick:
                due += subs[:per_tick - len(due)]
            self._cursor = start + per_tick
            try:
                await self.renew(due)
            except Exception as e:  # Redis or the database blinked: their turn comes again
                log.warning("live presence renewal failed: %s", e)
