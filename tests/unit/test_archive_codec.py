from datetime import UTC, datetime

from core import archive
from core.ids import min_id_for_ms
from core.models import Tweet


def _at(year: int, month: int, day: int, n: int = 0) -> Tweet:
    when = datetime(year, month, day, 12, tzinfo=UTC)
    tid = min_id_for_ms(int(when.timestamp() * 1000)) + n
    return Tweet(tid, 42, f"tweet {n} ✓", when.replace(microsecond=123456))


def test_groups_fill_from_the_oldest_newest_first():
    tweets = [_at(2025, 1, 3, n) for n in range(2 * archive.OBJECT_MAX + 3)] + [
        _at(2025, 2, 1), _at(2024, 12, 31)]
    groups = archive.groups(list(reversed(tweets)))
    assert [len(g) for g in groups] == [5, archive.OBJECT_MAX, archive.OBJECT_MAX]
    for g in groups:
        assert [t.id for t in g] == sorted((t.id for t in g), reverse=True)
    assert [t.id for g in groups for t in g] == sorted((t.id for t in tweets), reverse=True)
    assert [len(g) for g in archive.groups(tweets[:7], 3)] == [1, 3, 3]


def test_pack_round_trips_and_names_its_contents():
    group = archive.groups([_at(2025, 3, 9, n) for n in range(5)])[0]
    packed = archive.pack("tweets/", group)
    assert archive.unpack(packed.data) == group
    assert packed.key.startswith(f"tweets/42/{group[0].id}-{group[-1].id}-")
    assert (packed.min_id, packed.max_id, packed.ids) == (
        group[-1].id, group[0].id, [t.id for t in group])
    assert archive.pack("tweets/", group).key == packed.key
    other = archive.pack("tweets/", [Tweet(group[0].id, 42, "edited", group[0].created_at),
                                     *group[1:]])
    assert other.key != packed.key
