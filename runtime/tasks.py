"""Stopping background tasks."""

from __future__ import annotations

import asyncio

STOP_WAIT_S = 2.0


async def cancel(*running: asyncio.Task | None, wait_s: float = STOP_WAIT_S) -> None:
    """Cancel the tasks and wait for them, at most `wait_s` in all: redis-py can swallow a
    cancellation inside a read, and a loop around that read would keep a shutdown waiting."""
    live = {t for t in running if t is not None}
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live, timeout=wait_s)
