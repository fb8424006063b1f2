"""The pure merge rules, checked against a brute-force model."""

from hypothesis import given
from hypothesis import strategies as st

from core.timeline import NEWEST, exact_merge, insert, merge_desc, pack, remove, slice_of, unpack

ids = st.integers(min_value=1, max_value=2**63 - 1)
id_sets = st.sets(st.integers(min_value=1, max_value=500), max_size=60)


@given(st.lists(st.lists(ids, max_size=30), max_size=6))
def test_merge_desc_is_sorted_union(lists):
    sources = [sorted(set(x), reverse=True) for x in lists]
    assert merge_desc(sources) == sorted(set().union(*map(set, sources)), reverse=True)


@given(st.lists(ids, max_size=50))
def test_pack_round_trip(values):
    values = sorted(set(values), reverse=True)
    blob = pack(values)
    assert len(blob) == 8 * len(values)
    assert unpack(blob) == values
    # byte order is numeric order: what the Lua scripts rely on
    assert sorted((v.to_bytes(8, "big") for v in values), reverse=True) == [
        v.to_bytes(8, "big") for v in values
    ]


@given(
    st.lists(st.tuples(id_sets, st.booleans(), st.integers(1, 40)), min_size=1, max_size=5),
    st.integers(min_value=1, max_value=501),
)
def test_exact_merge_never_shows_a_gap(sources, before):
    """exact_merge of bounded, maybe truncated sources equals the true merge above its boundary."""
    truth: set[int] = set()
    slices = []
    for entries, truncated, wanted in sources:
        full = sorted(entries, reverse=True)
        truth |= set(full)
        # A truncated source holds only its newest few entries.
        held = full[: max(1, len(full) // 2)] if truncated and full else full
        below = [i for i in held if i < before]
        got = below[:wanted]
        slices.append(slice_of(got, wanted, not (truncated and held != full), before))
    merged, boundary = exact_merge(slices)
    expected = sorted((i for i in truth if boundary <= i < before), reverse=True)
    assert merged == expected


@given(st.lists(ids, max_size=40), ids, st.integers(min_value=1, max_value=30))
def test_insert_model(entries, new, cap):
    entries = sorted(set(entries), reverse=True)[:cap]
    out = insert(entries, new, cap)
    assert out == sorted(set(entries) | {new}, reverse=True)[:cap]
    assert insert(out, new, cap) == out  # idempotent


def test_remove_model():
    assert remove([5, 4, 3], [4, 9]) == [5, 3]


def test_slice_of():
    assert slice_of([9, 8], 2, True, NEWEST).floor == 8
    assert slice_of([9], 2, True, NEWEST).floor == 0
    assert slice_of([9], 2, False, NEWEST).floor == 9
    assert slice_of([], 2, False, 100).floor == 100
