"""The process's garbage-collection policy, in one place (docs/modules.md)."""

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
