"""GraphQL types of media (services/media.py): pictures, their variants, upload tickets."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from core import media as rules


@strawberry.enum
class MediaState(Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


@strawberry.type
class MediaVariant:
    name: str
    url: str
    width: int
    height: int
    content_type: str
    byte_size: int


@strawberry.type
class Media:
    id: strawberry.ID
    state: MediaState
    content_type: str
    width: int | None
    height: int | None
    alt_text: str | None
    url: str | None
    variants: list[MediaVariant]
    error: str | None

    @classmethod
    def of(cls, m: rules.Media, library: Any) -> Media:
        """`library`: the MediaLibrary, which knows where objects are served from."""
        url_of = library.url_of
        return cls(
            id=strawberry.ID(str(m.id)), state=MediaState(m.state),
            content_type=m.content_type, width=m.width, height=m.height,
            alt_text=m.alt_text, url=library.main_url(m),
            variants=[MediaVariant(name=v.name, url=url_of(v.key), width=v.width,
                                   height=v.height, content_type=v.content_type,
                                   byte_size=v.byte_size) for v in m.variants],
            error=m.error,
        )


@strawberry.type
class HttpHeader:
    name: str
    value: str


@strawberry.type
class MediaUpload:
    media: Media
    upload_url: str
    upload_headers: list[HttpHeader]
    expires_at: str  # ISO 8601, UTC
