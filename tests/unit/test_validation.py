import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import cursor, validation
from core.errors import BadInput
from resolvers import args


def test_tweet_text_counts_code_points_after_nfc():
    assert validation.tweet_text("e\u0301" * 280) == "\u00e9" * 280  # 560 -> 280 after NFC
    assert validation.tweet_text("🐦" * 280)
    with pytest.raises(BadInput):
        validation.tweet_text("a" * 281)
    for bad in ["", "   ", "\n\t", "a\x00b"]:
        with pytest.raises(BadInput):
            validation.tweet_text(bad)


@pytest.mark.parametrize("h", ["a", "A_b_9", "x" * 15])
def test_good_handles(h):
    assert validation.handle(h) == h


@pytest.mark.parametrize("h", ["", "x" * 16, "with space", "émile", "a-b", "a.b", "ａ"])
def test_bad_handles(h):
    with pytest.raises(BadInput):
        validation.handle(h)


def test_password_rules():
    validation.password("12345678")
    with pytest.raises(BadInput):
        validation.password("1234567")


# Property tests: whatever the input, a validator answers with its value or BadInput.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=400)  # surrogates too


def _answers(fn, value):
    try:
        return fn(value)
    except BadInput:
        return None


@given(ANY_TEXT)
def test_tweet_text_accepts_only_storable_visible_text(raw):
    text = _answers(validation.tweet_text, raw)
    if text is not None:
        text.encode()  # no lone surrogate
        assert 0 < len(text) <= validation.MAX_TWEET_CHARS
        assert not any(ch in validation.BIDI_CONTROLS for ch in text)
        assert all(ch == "\n" or ord(ch) >= 32 and not 0x7f <= ord(ch) < 0xa0 for ch in text)
        assert any(not ch.isspace() and ch not in validation.INVISIBLE for ch in text)


@given(ANY_TEXT)
def test_handles_and_passwords_never_crash(raw):
    h = _answers(validation.handle, raw)
    assert h is None or (h.isascii() and 1 <= len(h) <= 15)
    p = _answers(validation.password, raw)
    if p is not None:
        p.encode()
        assert "\x00" not in p
    lp = _answers(validation.login_password, raw)
    assert lp is None or lp.encode() is not None


@given(ANY_TEXT)
def test_cursors_and_ids_are_ascii_digits_only(raw):
    for kind in (cursor.TWEET, cursor.FOLLOW):
        position = _answers(lambda c, k=kind: cursor.decode(k, c), raw)
        assert position is None or 0 < position < 2**63
    value = _answers(lambda r: args.snowflake(r, "id"), raw)
    assert value is None or (raw.isascii() and raw.isdigit())


@given(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from("tf"))
def test_cursor_round_trip(position, kind):
    if position > 0:
        assert cursor.decode(kind, cursor.encode(kind, position)) == position
