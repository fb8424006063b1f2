"""Opaque keyset cursors (docs/modules.md)."""

from __future__ import annotations

import base64
import binascii

from core.errors import BadInput
from core.ids import MAX_ID

TWEET = "t"
FOLLOW = "f"


def encode(kind: str, position: int) -> str:
    raw = f"{kind}:{position}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(kind: str, cursor: str) -> int:
    """The position a cursor of `kind` names; BadInput for anything else."""
    if not isinstance(cursor, str) or not 0 < len(cursor) <= 64 or not cursor.isascii():
        raise BadInput("malformed cursor", field="after")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("malformed cursor", field="after") from None
    prefix, sep, digits = raw.partition(":")
    if prefix != kind or not sep or not digits.isascii() or not digits.isdigit() \
            or len(digits) > 19:
        raise BadInput("malformed cursor", field="after")
    position = int(digits)
    if not 0 < position <= MAX_ID:
        raise BadInput("malformed cursor", field="after")
    return position
