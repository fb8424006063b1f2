"""Media records and their input rules: what may be uploaded, what a picture becomes."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from core.errors import BadInput

PENDING, READY, FAILED = "PENDING", "READY", "FAILED"
TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
MAX_PER_TWEET = 4
MAX_ALT_TEXT_CHARS = 1000
UPLOAD_URL_TTL_S = 15 * 60


@dataclass(frozen=True, slots=True)
class VariantSpec:
    name: str
    box: int  # the longest side at most this (never enlarged)
    square: bool = False  # cropped to a box x box square around the centre


# None above 4,096 px. Each size is stored as WebP and as a fallback (JPEG, or PNG for a
# picture with transparency) named `{name}_fallback`.
SIZES = (
    VariantSpec("thumbnail", 150, square=True),
    VariantSpec("timeline", 1200),
    VariantSpec("large", 2048),
)
FALLBACK_SUFFIX = "_fallback"
MAIN_VARIANT = "large_fallback"  # Media.url: readable by any client


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    key: str  # object key in the media store
    width: int
    height: int
    content_type: str
    byte_size: int


@dataclass(frozen=True, slots=True)
class Media:
    id: int
    owner_id: int
    state: str
    content_type: str
    byte_size: int
    token: str  # random part of its object keys: a key cannot be guessed from the id
    alt_text: str | None = None
    width: int | None = None
    height: int | None = None
    variants: tuple[Variant, ...] = ()
    error: str | None = None
    tweet_id: int | None = None

    @property
    def upload_key(self) -> str:
        return upload_key(self.id, self.token)


def upload_key(media_id: int, token: str) -> str:
    return f"uploads/{media_id}-{token}"


def variant_key(media_id: int, token: str, name: str, extension: str) -> str:
    return f"m/{media_id}-{token}/{name}.{extension}"


def content_type(raw: str) -> str:
    value = raw.strip().lower() if isinstance(raw, str) else ""
    if value not in TYPES:
        raise BadInput(f"contentType must be one of {', '.join(TYPES)}", field="contentType")
    return value


def byte_size(raw: int, max_bytes: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= max_bytes:
        raise BadInput(f"byteSize must be between 1 and {max_bytes} bytes", field="byteSize")
    return raw


def alt_text(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", raw).strip()
    if len(text) > MAX_ALT_TEXT_CHARS or "\x00" in text:
        raise BadInput(f"altText must be at most {MAX_ALT_TEXT_CHARS} characters",
                       field="altText")
    return text or None


def sniff(data: bytes) -> str | None:
    """The image type the bytes' signature says, whatever was declared."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None
