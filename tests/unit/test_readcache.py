"""The read caches' bounded map and invalidation parsing (pure rules, no servers)."""

from storage.invalidation import parse
from storage.readcache import MISSING, Memo


def test_a_memo_stays_within_its_bytes_dropping_the_least_recently_used():
    memo = Memo("test", max_bytes=100, size=lambda v: 30)
    for k in "abc":
        memo.put(k, k.upper())
    assert memo.get("a") == "A"  # now the most recently used
    memo.put("d", "D")
    assert memo.bytes == 90 and len(memo) == 3
    assert memo.get("b") is MISSING  # the least recently used went
    found, missing = memo.get_many(["a", "c", "d", "x"])
    assert found == {"a": "A", "c": "C", "d": "D"} and missing == ["x"]
    memo.put("big", "B", size=101)  # larger than the whole memo: not kept
    assert memo.get("big") is MISSING
    memo.pop("a")
    memo.put("c", "C2")
    assert memo.bytes == 60 and memo.get("c") == "C2"
    memo.clear()
    assert memo.bytes == 0 and len(memo) == 0


def test_invalidation_messages_parse():
    assert parse(b"42 t1,u2,c3:1") == (42, ["t1", "u2", "c3:1"])
    assert parse("7 ") == (7, [])
