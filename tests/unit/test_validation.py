import pytest

from core import validation
from core.errors import BadInput


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
