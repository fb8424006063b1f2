"""Open subscriptions' tokens, checked together: one sweep a second for the whole process,
not a timer per subscription, and only when the revocations changed or a token is new
(docs/live.md, "Token checks")."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from runtime import tasks

if TYPE_CHECKING:
    from services.accounts import Accounts, Claims

CHECK_SECONDS = 1.0


class TokenWatch:
    def __init__(self, accounts: Accounts, check_seconds: float = CHECK_SECONDS) -> None:
        self.accounts = accounts
        self.check_seconds = check_seconds
        self._watched: dict[asyncio.Future, tuple[Claims, asyncio.TimerHandle]] = {}
        self._task: asyncio.Task | None = None
        self._unchecked = False  # a token watched since the last sweep

    def watch(self, claims: Claims) -> asyncio.Future:
        """A future done when the token expires (at its expiry) or is found logged out (at
        the next sweep)."""
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        timer = loop.call_at(loop.time() + claims.expires_at - time.time(), _end, ended)
        self._watched[ended] = (claims, timer)
        self._unchecked = True
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._sweep())
        return ended

    def unwatch(self, ended: asyncio.Future) -> None:
        found = self._watched.pop(ended, None)
        if found is not None:
            found[1].cancel()
        ended.cancel()

    async def _sweep(self) -> None:
        swept = None  # the revocations' version the last whole sweep checked against
        while self._watched:
            await asyncio.sleep(self.check_seconds)
            version = self.accounts.revocations_version()
            if version is not None and version == swept and not self._unchecked:
                continue  # nothing revoked since: every token still stands
            self._unchecked = False
            unknown = []
            for ended, (claims, _timer) in list(self._watched.items()):
                live = self.accounts.still_live(claims)
                if live is None:
                    unknown.append((ended, claims))
                elif not live:
                    _end(ended)
            if unknown:  # this process's copy of the revocations is not loaded: ask Redis
                found = await asyncio.gather(
                    *(self.accounts.live(claims, check_user=False) for _, claims in unknown))
                for (ended, _claims), live in zip(unknown, found, strict=True):
                    if live is False:
                        _end(ended)
            swept = version

    async def close(self) -> None:
        await tasks.cancel(self._task)
        self._task = None


def _end(ended: asyncio.Future) -> None:
    if not ended.done():
        ended.set_result(None)
