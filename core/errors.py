"""Domain errors. Each carries the GraphQL `extensions.code` a client sees."""

from __future__ import annotations

from typing import Any


class ChirpError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class BadInput(ChirpError):
    code = "BAD_USER_INPUT"


class Unauthenticated(ChirpError):
    code = "UNAUTHENTICATED"


class Forbidden(ChirpError):
    code = "FORBIDDEN"


class NotFound(ChirpError):
    code = "NOT_FOUND"


class RateLimited(ChirpError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)
        self.retry_after = retry_after


class Conflict(ChirpError):
    code = "CONFLICT"


class Unavailable(ChirpError):
    code = "UNAVAILABLE"
