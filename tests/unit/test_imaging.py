"""core/imaging.py on pictures made here: sizes, decoding scale, metadata, refusals."""

import io

import pytest
from PIL import Image, ImageCms

from core.imaging import ImageRejected, process
from core.media import sniff


def _jpeg(w: int, h: int, **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (30, 60, 90)).save(out, "JPEG", **save)
    return out.getvalue()


def test_a_big_jpeg_is_decoded_at_half_scale_and_sized_within_its_boxes():
    done = process(_jpeg(4000, 3000), "image/jpeg", 50_000_000)
    sizes = {o.name: (o.width, o.height) for o in done.outputs}
    assert (done.width, done.height) == (4000, 3000)  # the original's size
    assert sizes["large"] == sizes["large_fallback"] == (2000, 1500)  # DCT half scale
    assert sizes["timeline"] == (1200, 900) and sizes["thumbnail"] == (150, 150)
    for o in done.outputs:
        im = Image.open(io.BytesIO(o.data))
        assert (im.width, im.height) == (o.width, o.height)
        assert max(o.width, o.height) <= 4096


def test_a_small_picture_is_encoded_once_per_size():
    done = process(_jpeg(640, 480), "image/jpeg", 50_000_000)
    by = {o.name: o for o in done.outputs}
    assert by["large"].data == by["timeline"].data
    assert by["large_fallback"].data == by["timeline_fallback"].data
    assert (by["large"].width, by["large"].height) == (640, 480)


def test_no_profile_or_comment_goes_out():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = _jpeg(300, 200, icc_profile=icc, comment=b"secret")
    assert b"secret" in data
    for o in process(data, "image/jpeg", 50_000_000).outputs:
        im = Image.open(io.BytesIO(o.data))
        assert "icc_profile" not in im.info and "comment" not in im.info
        assert b"secret" not in o.data


def test_refusals():
    with pytest.raises(ImageRejected, match="not the declared"):
        process(_jpeg(10, 10), "image/png", 50_000_000)
    with pytest.raises(ImageRejected, match="more than 100000 pixels"):
        process(_jpeg(400, 300), "image/jpeg", 100_000)
    with pytest.raises(ImageRejected, match="could not be decoded"):
        process(_jpeg(400, 300)[:200], "image/jpeg", 50_000_000)
    with pytest.raises(ImageRejected, match="not a JPEG"):
        process(b"BM" + b"\0" * 100, "image/jpeg", 50_000_000)
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff(b"GIF89a") == "image/gif"
