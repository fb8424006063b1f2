"""Snowflake ids: ms since CHIRP_EPOCH, worker id, sequence (docs/modules.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

# 2024-01-01T00:00:00Z. 41 bits of milliseconds last ~69 years from here.
CHIRP_EPOCH_MS = 1_704_067_200_000
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER_ID = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
TIMESTAMP_SHIFT = WORKER_BITS + SEQUENCE_BITS
MAX_ID = (1 << 63) - 1


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SnowflakeGenerator:
    """Mints ids for one leased worker id; a clock step back neither duplicates nor reorders
    them, nor fails (docs/modules.md)."""

    def __init__(
        self,
        worker_id: int,
        clock_ms: Callable[[], int] = wall_clock_ms,
        floor_ms: int = 0,
    ) -> None:
        if not 0 <= worker_id <= MAX_WORKER_ID:
            raise ValueError(f"worker id {worker_id} outside 0..{MAX_WORKER_ID}")
        self.worker_id = worker_id
        self._clock_ms = clock_ms
        self._last_ms = max(floor_ms - CHIRP_EPOCH_MS, -1)
        self._sequence = MAX_SEQUENCE  # forces a fresh millisecond on first use

    @property
    def last_ms(self) -> int:
        """The highest wall-clock millisecond this generator has used."""
        return self._last_ms + CHIRP_EPOCH_MS

    def next_id(self) -> int:
        now = self._clock_ms() - CHIRP_EPOCH_MS
        if now > self._last_ms:
            self._last_ms = now
            self._sequence = 0
        elif self._sequence < MAX_SEQUENCE:
            # Same millisecond, or the clock went backwards: keep counting on the last one.
            self._sequence += 1
        else:
            # Sequence exhausted: move to the next millisecond without sleeping.
            self._last_ms += 1
            self._sequence = 0
        if self._last_ms >= 1 << 41:
            raise OverflowError("snowflake timestamp exhausted")
        return (
            (self._last_ms << TIMESTAMP_SHIFT) | (self.worker_id << SEQUENCE_BITS) | self._sequence
        )


def id_timestamp_ms(snowflake: int) -> int:
    """Wall-clock milliseconds at which an id was minted."""
    return (snowflake >> TIMESTAMP_SHIFT) + CHIRP_EPOCH_MS


def id_datetime(snowflake: int) -> datetime:
    """When an id was minted, as an aware UTC datetime (a tweet's created_at)."""
    return datetime.fromtimestamp(id_timestamp_ms(snowflake) / 1000, tz=UTC)


def min_id_for_ms(ms: int) -> int:
    """Smallest id that any worker can mint at wall-clock millisecond `ms` (for time ranges)."""
    return max(ms - CHIRP_EPOCH_MS, 0) << TIMESTAMP_SHIFT


def parse_id(raw: object) -> int | None:
    """A client-supplied id (decimal string or int) or None if it is not a valid snowflake."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
    else:
        return None
    return value if 0 < value <= MAX_ID else None
