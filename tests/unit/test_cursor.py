import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import cursor
from core.errors import BadInput
from core.ids import MAX_ID


@given(st.integers(min_value=1, max_value=MAX_ID), st.sampled_from([cursor.TWEET, cursor.FOLLOW]))
def test_round_trip(position, kind):
    encoded = cursor.encode(kind, position)
    assert encoded.isascii() and "=" not in encoded
    assert cursor.decode(kind, encoded) == position


@given(st.text(max_size=80))
def test_garbage_is_bad_input_never_a_crash(raw):
    try:
        value = cursor.decode(cursor.TWEET, raw)
    except BadInput:
        return
    assert 0 < value <= MAX_ID  # a garbage string that happens to be a valid cursor


def test_kind_is_checked():
    with pytest.raises(BadInput):
        cursor.decode(cursor.TWEET, cursor.encode(cursor.FOLLOW, 5))


def test_offset_like_cursors_are_rejected():
    import base64

    for raw in [b"arrayconnection:10", b"t:-5", b"t:0", b"t:", b"t:99999999999999999999"]:
        with pytest.raises(BadInput):
            cursor.decode(cursor.TWEET, base64.urlsafe_b64encode(raw).decode())
