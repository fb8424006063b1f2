"""Pure timeline rules: entry encoding, merge of partial sources (docs/modules.md)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ENTRY_BYTES = 8  # one big-endian unsigned tweet id; byte order == numeric order

NEWEST = (1 << 63) - 1  # `before` bound meaning "from the head"


def pack(ids: Iterable[int]) -> bytes:
    """Entries newest first, as stored in Redis."""
    ids = list(ids)
    return struct.pack(f">{len(ids)}Q", *ids)


def unpack(blob: bytes) -> list[int]:
    # One C call for the whole slice: this runs on every cached read.
    n = len(blob) // ENTRY_BYTES
    return list(struct.unpack_from(f">{n}Q", blob))


@dataclass(frozen=True, slots=True)
class Slice:
    """Entries of one source strictly between (since, before), newest first.

    `floor` is the lowest id down to which the slice is complete: every entry of the
    source in [floor, before) is in `ids`. 0 means the slice holds everything down to
    `since`.
    """

    ids: Sequence[int]
    floor: int


def slice_of(ids: Sequence[int], wanted: int, source_complete: bool, before: int) -> Slice:
    """Describe a bounded read: `ids` is what a source returned when asked for `wanted`.

    A full answer may have more below its last entry; a short one from a complete source
    ends the source; a short one from a truncated source (a capped cache) knows nothing
    below its last entry, or below `before` if it returned nothing.
    """
    if len(ids) >= wanted:
        return Slice(ids, ids[-1])
    if source_complete:
        return Slice(ids, 0)
    return Slice(ids, ids[-1] if ids else before)


def merge_desc(sources: Iterable[Sequence[int]]) -> list[int]:
    """Union of newest-first id lists, newest first, without duplicates."""
    return sorted({i for ids in sources for i in ids}, reverse=True)


def exact_merge(slices: Sequence[Slice]) -> tuple[list[int], int]:
    """The merged ids every source agrees on, and the boundary below which none are known.

    Ids at or above the boundary are exact: no source can hold an unseen id there. When the
    boundary is 0 the merge is complete down to `since`.
    """
    boundary = max((s.floor for s in slices), default=0)
    merged = merge_desc(s.ids for s in slices)
    if boundary:
        merged = [i for i in merged if i >= boundary]
    return merged, boundary


def insert(entries: Sequence[int], tweet_id: int, cap: int) -> list[int]:
    """Reference model of the Redis insert script: ordered, idempotent, capped."""
    return merge_desc([entries, [tweet_id]])[:cap]


def remove(entries: Sequence[int], doomed: Iterable[int]) -> list[int]:
    """Reference model of the Redis remove script."""
    gone = set(doomed)
    return [i for i in entries if i not in gone]
