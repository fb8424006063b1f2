from hypothesis import given
from hypothesis import strategies as st

from core.ids import (
    CHIRP_EPOCH_MS,
    MAX_SEQUENCE,
    SnowflakeGenerator,
    id_timestamp_ms,
    parse_id,
)

T0 = CHIRP_EPOCH_MS + 10**9


class FakeClock:
    def __init__(self, steps: list[int]) -> None:
        self.now = T0
        self.steps = iter(steps)

    def __call__(self) -> int:
        self.now += next(self.steps, 0)
        return self.now


@given(st.lists(st.integers(min_value=-5000, max_value=5000), min_size=1, max_size=3000))
def test_ids_strictly_increase_even_when_the_clock_steps_back(steps):
    gen = SnowflakeGenerator(7, FakeClock(steps))
    ids = [gen.next_id() for _ in steps]
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert all((i >> 12) & 0x3FF == 7 for i in ids)


def test_layout_and_timestamp():
    gen = SnowflakeGenerator(1023, lambda: T0)
    first = gen.next_id()
    assert id_timestamp_ms(first) == T0
    assert first & MAX_SEQUENCE == 0
    assert first.bit_length() <= 63


def test_sequence_overflow_borrows_the_next_millisecond():
    gen = SnowflakeGenerator(3, lambda: T0)
    ids = [gen.next_id() for _ in range(MAX_SEQUENCE + 3)]
    assert len(set(ids)) == len(ids)
    assert id_timestamp_ms(ids[-1]) == T0 + 1


def test_floor_makes_a_new_holder_start_after_the_previous_one():
    old = SnowflakeGenerator(5, lambda: T0)
    last = old.next_id()
    # The clock went back 10 s, but the lease said the old holder reached T0.
    new = SnowflakeGenerator(5, lambda: T0 - 10_000, floor_ms=T0 + 1)
    assert new.next_id() > last


def test_two_workers_never_collide():
    a = SnowflakeGenerator(1, lambda: T0)
    b = SnowflakeGenerator(2, lambda: T0)
    ids = {a.next_id() for _ in range(5000)} | {b.next_id() for _ in range(5000)}
    assert len(ids) == 10_000


def test_parse_id():
    assert parse_id("123") == 123
    assert parse_id(123) == 123
    for bad in ["", "-1", "0", "1e5", "٣", "12345678901234567890", None, True, 1.5, "9" * 19]:
        assert parse_id(bad) is None, bad
