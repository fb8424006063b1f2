"""Picture processing, pure CPU on bytes (run it off the event loop) (docs/modules.md)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, replace

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from core.media import FALLBACK_SUFFIX, SIZES, sniff

_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                "image/gif": "GIF"}
_SRGB = ImageCms.createProfile("sRGB")
_ORIENTATION = 0x0112
DRAFT_SHARE = 0.95
WEBP_QUALITY = 80
WEBP_METHOD = 2  # libwebp's effort, 0-6 (docs/media.md)
JPEG_QUALITY = 85


class ImageRejected(ValueError):
    """The bytes are not a picture this service takes; the message says why."""


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    extension: str
    content_type: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Processed:
    width: int  # as displayed (after the EXIF orientation)
    height: int
    outputs: tuple[Output, ...]


def process(data: bytes, declared_type: str, max_pixels: int) -> Processed:
    found = sniff(data)
    if found is None:
        raise ImageRejected("the bytes are not a JPEG, PNG, WebP or GIF image")
    if found != declared_type:
        raise ImageRejected(f"the bytes are {found}, not the declared {declared_type}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[found]])
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(f"the image is {width}x{height}: more than "
                                    f"{max_pixels} pixels")
            return _process(image)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageRejected(f"the image could not be decoded ({type(e).__name__})") from None


def _process(image: Image.Image) -> Processed:
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animation keeps its first frame
    largest = max(spec.box for spec in SIZES)
    width, height = image.size
    if image.getexif().get(_ORIENTATION) in (5, 6, 7, 8):  # turned a quarter
        width, height = height, width
    if image.format == "JPEG":
        # The smallest DCT scale still giving DRAFT_SHARE of the largest box (docs/media.md).
        tw, th = _fit(image.size, largest)
        image.draft(image.mode if image.mode in ("RGB", "L") else None,
                    (max(1, int(tw * DRAFT_SHARE)), max(1, int(th * DRAFT_SHARE))))
    oriented = ImageOps.exif_transpose(image)
    oriented.load()
    icc = image.info.get("icc_profile")
    alpha = oriented.mode in ("RGBA", "LA", "PA") or (
        oriented.mode == "P" and "transparency" in oriented.info)
    base = oriented.convert("RGBA" if alpha else "RGB")
    if icc:
        base = _to_srgb(base, icc)
    outputs: list[Output] = []
    source = base
    previous: list[Output] = []
    for spec in sorted(SIZES, key=lambda s: -s.box):  # each size from the one above it
        if spec.square:  # from the full picture: a thin one still gets a full square
            variant = _square(base, spec.box)
        else:
            size = _fit(source.size, spec.box)
            if previous and size == source.size:  # a small picture: same pixels again
                outputs += [replace(o, name=o.name.replace(previous[0].name, spec.name, 1))
                            for o in previous]
                continue
            variant = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
            source = variant
        variant.info = {}  # nothing of the original's metadata goes out
        previous = [_encode(variant, spec.name, "webp", "image/webp", "WEBP",
                            quality=WEBP_QUALITY, method=WEBP_METHOD)]
        if alpha:
            previous.append(_encode(variant, spec.name + FALLBACK_SUFFIX, "png", "image/png",
                                    "PNG", optimize=False))
        else:
            previous.append(_encode(variant, spec.name + FALLBACK_SUFFIX, "jpg",
                                    "image/jpeg", "JPEG", quality=JPEG_QUALITY))
        outputs += previous
    return Processed(width, height, tuple(outputs))


def _square(image: Image.Image, box: int) -> Image.Image:
    """The centre square of `image`, scaled down to box x box (never up)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    out = min(box, side)
    return image.resize((out, out), Image.Resampling.LANCZOS,
                        box=(left, top, left + side, top + side), reducing_gap=2.0)


def _fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled down to fit a box x box square (never up), at least 1 x 1."""
    w, h = size
    scale = min(1.0, box / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: keep the pixels as they are


def _encode(image: Image.Image, name: str, extension: str, content_type: str, fmt: str,
            **options: object) -> Output:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return Output(name, extension, content_type, out.getvalue(), *image.size)
