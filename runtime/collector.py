"""The process's garbage-collection policy, in one place. Why and the measurements behind
it: docs/live.md, "Garbage collection".

What start-up built lives as long as the process, so it is frozen out of full collections.
A process holding live sessions also raises the young threshold, so that a delivery's
short-lived containers die by reference counting instead of being promoted.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD_LIVE = 50_000  # allocations between young collections; CPython's is 700


def freeze_startup() -> None:
    gc.collect()
    gc.freeze()


def for_live_sessions() -> None:
    freeze_startup()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD_LIVE, older, oldest)
