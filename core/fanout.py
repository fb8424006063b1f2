"""Fan-out policy: who is pushed to, who is pulled from."""

from __future__ import annotations

FOLLOWER_PAGE = 1000  # followers read per query and pushed per Redis pipeline


def celebrity_floor(threshold: int) -> int:
    """The fewest followers a celebrity has: the rule below, as a bound a query can use."""
    return threshold


def is_celebrity(followers_count: int, threshold: int) -> bool:
    """Authors at or above the threshold are pulled at read time, never pushed."""
    return followers_count >= celebrity_floor(threshold)


def demoted(followers_before: int, followers_after: int, threshold: int) -> bool:
    """An unfollow that takes an author below the threshold: their pulled tweets must be
    merged into followers' cached timelines, since reads stop pulling them."""
    return is_celebrity(followers_before, threshold) and not is_celebrity(
        followers_after, threshold
    )

