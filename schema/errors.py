"""Every GraphQL error leaves with an `extensions.code`; only unexpected ones are logged
and their details masked."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, execute
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.types import ExecutionResult
from strawberry.utils.await_maybe import await_maybe

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


VALIDATED_MAX = 1024  # like the parser and validation caches


class ChirpSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Query text -> its document, for every query that passed parsing, the token limit
        # and validation (all of which depend on the text alone): the HTTP view answers
        # repeats of these without the extension pipeline (app.py, GraphQLApp).
        self.validated: dict[str, DocumentNode] = {}

    def remember_validated(self, query: str, document: DocumentNode) -> None:
        if query not in self.validated:
            if len(self.validated) >= VALIDATED_MAX:
                self.validated.clear()
            self.validated[query] = document

    async def execute_validated(
        self, document: DocumentNode, variable_values: dict[str, Any] | None,
        context_value: Any, root_value: Any, operation_name: str | None,
    ) -> ExecutionResult:
        """`execute` for a document known to be valid: what Strawberry does after its
        parsing and validation steps, without the per-request extension hooks (none of
        ours acts on execution or adds results)."""
        try:
            result = await await_maybe(execute(
                self._schema, document, root_value=root_value,
                variable_values=variable_values, operation_name=operation_name,
                context_value=context_value, is_awaitable=optimized_is_awaitable,
                executor_class=self.execution_context_class, operation_extensions=None,
            ))
        except Exception as exc:  # as Strawberry: an error result, not an exception
            error = exc if isinstance(exc, GraphQLError) else GraphQLError(
                str(exc), original_error=exc)
            self._process_errors([error])
            return ExecutionResult(data=None, errors=[error], extensions={})
        if result.errors:
            self._process_errors(result.errors)
        return ExecutionResult(data=result.data, errors=result.errors, extensions={})

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        for error in errors:
            code, _, _ = classify(error)
            if code == "INTERNAL_SERVER_ERROR":
                log.error("unexpected error", exc_info=error.original_error or error)
            elif code == "UNAVAILABLE":
                log.warning("backend unavailable: %r", error.original_error)
