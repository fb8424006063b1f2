"""Stopping background tasks."""

from __future__ import annotations

import asyncio

STOP_WAIT_S = 2.0


async def cancel(task: asyncio.Task | None, wait_s: float = STOP_WAIT_S) -> None:
    """Cancel `task` and wait for it, at most `wait_s`: redis-py can swallow a cancellation
    inside a read, and a loop around that read would otherwise keep a shutdown waiting."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task}, timeout=wait_s)
