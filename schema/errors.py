"""Every GraphQL error leaves with an `extensions.code`; only unexpected ones are logged
and their details masked."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError

from core.errors import ChirpError, Unavailable
from runtime.failures import is_transient

log = logging.getLogger("chirp.graphql")


def classify(error: GraphQLError) -> tuple[str, str, dict[str, Any]]:
    """(code, client-facing message, extra extensions) for one error."""
    original = error.original_error
    if isinstance(original, GraphQLError):
        return classify(original)
    if isinstance(original, ChirpError):
        return original.code, original.message, original.extensions
    if original is None:
        # Parse, validation, limiter and argument-coercion errors: the client's query.
        return "BAD_USER_INPUT", error.message, {}
    if is_transient(original):
        return Unavailable.code, "a backend is unavailable; retry shortly", {}
    return "INTERNAL_SERVER_ERROR", "internal error", {}


def formatted(error: GraphQLError) -> dict[str, Any]:
    code, message, extra = classify(error)
    out: dict[str, Any] = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = error.path
    out["extensions"] = {"code": code, **extra}
    return out


class ChirpSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        for error in errors:
            code, _, _ = classify(error)
            if code == "INTERNAL_SERVER_ERROR":
                log.error("unexpected error", exc_info=error.original_error or error)
            elif code == "UNAVAILABLE":
                log.warning("backend unavailable: %r", error.original_error)
