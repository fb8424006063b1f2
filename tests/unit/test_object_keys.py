"""Object keys and S3 store URLs: what the object store accepts."""

import pytest

from storage.objects import check_key, parse_s3_url


def test_keys_and_urls_are_checked():
    for bad in ["", "/a", "a/", "a//b", "../a", "a/../b", "a b", "a\\b", "é", "x" * 513]:
        with pytest.raises(ValueError):
            check_key(bad)
    assert check_key("m/123/t-ok_1.webp") == "m/123/t-ok_1.webp"
    assert parse_s3_url("s3://chirp-media") == ("chirp-media", "")
    assert parse_s3_url("s3://chirp-media/a/b/") == ("chirp-media", "a/b/")
    for bad in ["chirp-media", "s3://", "s3://UPPER", "s3://b/../x"]:
        with pytest.raises(ValueError):
            parse_s3_url(bad)
