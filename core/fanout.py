"""Fan-out policy: who is pushed to, who is pulled from (docs/modules.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FOLLOWER_PAGE = 1000  # followers read per query and pushed per Redis pipeline


@dataclass(frozen=True, slots=True)
class Bounds:
    threshold: int  # CHIRP_CELEBRITY_THRESHOLD: a celebrity from here up
    demote_below: int  # CHIRP_CELEBRITY_DEMOTE_THRESHOLD: demotable under it
    quiet_seconds: int  # CHIRP_CELEBRITY_DEMOTE_QUIET_SECONDS: ... after this long there


def is_celebrity(followers_count: int, flagged: bool, threshold: int) -> bool:
    return flagged or followers_count >= threshold


def pushed(followers_count: int, flagged: bool, demoting: bool, threshold: int) -> bool:
    """Fan-out pushes the author's tweets (and follows merge them): any non-celebrity, and
    a celebrity being demoted, so that nothing posted meanwhile is missing afterwards."""
    return demoting or not is_celebrity(followers_count, flagged, threshold)


def celebrity_sql(users: str, threshold: str) -> str:
    """`is_celebrity` as a PostgreSQL condition on a users row (`users`: its alias,
    `threshold`: the parameter holding the threshold); twin-tested against it."""
    return f"({users}.celebrity OR {users}.followers_count >= {threshold})"


def flag_after(flagged: bool, followers_before: int, followers_after: int,
               threshold: int) -> bool:
    """The stored flag after a follow or unfollow: a celebrity before or after stays one."""
    return (is_celebrity(followers_before, flagged, threshold)
            or is_celebrity(followers_after, flagged, threshold))


def below_since(flagged: bool, followers_count: int, demote_below: int,
                since: datetime | None, now: datetime) -> datetime | None:
    """Since when a flagged account has been under the lower bound; None if it is not."""
    if not flagged or followers_count >= demote_below:
        return None
    return since if since is not None else now


def demotable(flagged: bool, followers_count: int, since: datetime | None, now: datetime,
              bounds: Bounds) -> bool:
    """The flag may be cleared: under the lower bound (hence the threshold), continuously
    for the quiet period."""
    since = below_since(flagged, followers_count, bounds.demote_below, since, now)
    return since is not None and (now - since).total_seconds() >= bounds.quiet_seconds
