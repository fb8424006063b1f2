"""The celebrity rule (core/fanout.py): hovering at either bound changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core import fanout

BOUNDS = fanout.Bounds(threshold=10, demote_below=8, quiet_seconds=60)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_celebrity_is_at_the_threshold_or_flagged():
    assert not fanout.is_celebrity(9, False, 10)
    assert fanout.is_celebrity(10, False, 10)
    assert fanout.is_celebrity(0, True, 10)


def test_the_flag_is_set_at_the_threshold_and_kept_by_follows_and_unfollows():
    assert fanout.flag_after(False, 9, 10, 10)  # promoted
    assert fanout.flag_after(False, 10, 9, 10)  # a celebrity by count keeps it
    assert not fanout.flag_after(False, 8, 9, 10)
    assert fanout.flag_after(True, 3, 2, 10)  # only the worker clears it


def test_below_since_keeps_the_first_time_and_resets_above_the_lower_bound():
    later = T0 + timedelta(seconds=30)
    assert fanout.below_since(True, 7, 8, None, T0) == T0
    assert fanout.below_since(True, 6, 8, T0, later) == T0
    assert fanout.below_since(True, 8, 8, T0, later) is None
    assert fanout.below_since(False, 1, 8, T0, later) is None


def test_demotable_after_the_quiet_period_under_the_lower_bound_only():
    assert not fanout.demotable(True, 7, T0, T0 + timedelta(seconds=59), BOUNDS)
    assert fanout.demotable(True, 7, T0, T0 + timedelta(seconds=60), BOUNDS)
    assert not fanout.demotable(True, 8, T0, T0 + timedelta(hours=1), BOUNDS)  # at the bound
    assert not fanout.demotable(False, 0, T0, T0 + timedelta(hours=1), BOUNDS)
    quiet0 = fanout.Bounds(10, 8, 0)
    assert fanout.demotable(True, 7, None, T0, quiet0)  # first seen under it, no wait


def _run(deltas: list[int], gap_s: int, bounds: fanout.Bounds) -> tuple[int, int, list[int]]:
    """Follows and unfollows every `gap_s`, swept after each: (demotions, count, counts)."""
    count, flagged, since = bounds.threshold, True, None
    demotions: list[int] = []
    for i, delta in enumerate(deltas):
        now = T0 + timedelta(seconds=i * gap_s)
        before, count = count, max(0, count + delta)
        flagged = fanout.flag_after(flagged, before, count, bounds.threshold)
        since = fanout.below_since(flagged, count, bounds.demote_below, since, now)
        if fanout.demotable(flagged, count, since, now, bounds):
            demotions.append(count)
            flagged, since = False, None
    return len(demotions), count, demotions


def test_hovering_at_either_bound_demotes_nothing():
    assert _run([-1, +1] * 100, 1, BOUNDS)[0] == 0  # around the threshold
    down = [-1, -1]  # to the lower bound, then hovering across it for an hour
    assert _run(down + [-1, +1] * 1800, 1, BOUNDS)[0] == 0


def test_a_real_drop_is_one_demotion():
    demotions, count, at = _run([-1] * 5 + [0] * 120, 1, BOUNDS)
    assert demotions == 1 and count == 5 and at == [5]


@given(st.lists(st.sampled_from([-1, 0, 1]), max_size=300), st.integers(1, 30))
def test_demotions_need_a_quiet_stretch_under_the_lower_bound(deltas, gap_s):
    """Demotions only after quiet_seconds under the bound, a promotion between any two."""
    count, flagged, since = BOUNDS.threshold, True, None
    below_from = None
    for i, delta in enumerate(deltas):
        now = T0 + timedelta(seconds=i * gap_s)
        before, count = count, max(0, count + delta)
        was = fanout.is_celebrity(before, flagged, BOUNDS.threshold)
        flagged = fanout.flag_after(flagged, before, count, BOUNDS.threshold)
        assert fanout.is_celebrity(count, flagged, BOUNDS.threshold) or not was
        since = fanout.below_since(flagged, count, BOUNDS.demote_below, since, now)
        below_from = (below_from or now) if count < BOUNDS.demote_below else None
        if fanout.demotable(flagged, count, since, now, BOUNDS):
            assert (now - below_from).total_seconds() >= BOUNDS.quiet_seconds
            flagged, since = False, None
