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


class QueryTooComplex(ChirpError):
    code = "QUERY_TOO_COMPLEX"


class PersistedQueryNotFound(ChirpError):
    """Apollo's automatic persisted queries: send the query text with its hash."""

    code = "PERSISTED_QUERY_NOT_FOUND"


# The HTTP status each code answers with where a transport has one (REST, refusals before
# GraphQL runs); a GraphQL answer over HTTP is 200 with the code in the error.
HTTP_STATUS = {
    "BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
    "CONFLICT": 409, "RATE_LIMITED": 429, "UNAVAILABLE": 503, "QUERY_TOO_COMPLEX": 400,
    "PERSISTED_QUERY_NOT_FOUND": 200, "INTERNAL_SERVER_ERROR": 500,
}


def error_body(error: ChirpError) -> dict[str, Any]:
    """A GraphQL-shaped answer for an error raised before any operation runs."""
    return {"errors": [{"message": error.message,
                        "extensions": {"code": error.code, **error.extensions}}]}
