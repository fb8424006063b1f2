"""Fan-out policy: who is pushed to, who is pulled from."""

from __future__ import annotations

FOLLOWER_PAGE = 1000  # followers read per query and pushed per Redis pipeline


def is_celebrity(followers_count: int, threshold: int) -> bool:
    """Authors at or above the threshold are pulled at read time, never pushed."""
    return followers_count >= threshold


def demoted(followers_before: int, followers_after: int, threshold: int) -> bool:
    """An unfollow that takes an author below the threshold: their pulled tweets must be
    merged into followers' cached timelines, since reads stop pulling them."""
    return is_celebrity(followers_before, threshold) and not is_celebrity(
        followers_after, threshold
    )


def follow_merge_count(timeline_max: int) -> int:
    """Tweets of a new followee merged into the follower's cached timeline.

    The whole window, not Mastodon's quarter: the cached timeline must stay exactly the
    newest `timeline_max` entries of the merge, or paging past it would skip tweets.
    """
    return timeline_max
