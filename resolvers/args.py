"""Argument parsing shared by resolvers and the REST adapter."""

from __future__ import annotations

from core import cursor
from core.errors import BadInput
from core.ids import parse_id
from core.timeline import NEWEST

MAX_PAGE = 100


def page_size(first: int | None, field: str = "first") -> int:
    if first is None:
        return 20
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
        raise BadInput(f"{field} must be between 1 and {MAX_PAGE}", field=field)
    return first


def before_tweet(after: str | None) -> int:
    return NEWEST if after is None else cursor.decode(cursor.TWEET, after)


def before_follow(after: str | None) -> int:
    return NEWEST if after is None else cursor.decode(cursor.FOLLOW, after)


def snowflake(raw: object, field: str) -> int:
    value = parse_id(raw)
    if value is None:
        raise BadInput(f"{field} is not a valid id", field=field)
    return value


def since(raw: object | None, field: str = "sinceId") -> int:
    return 0 if raw is None else snowflake(raw, field)
