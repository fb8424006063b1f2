"""Every GraphQL error leaves with an `extensions.code`; only unexpected ones are logged
and their details masked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import strawberry
from graphql import GraphQLError, execute
from strawberry.exceptions import MissingQueryError
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.exceptions import (
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)
from strawberry.types import ExecutionResult
from strawberry.utils.await_maybe import await_maybe

from core.errors import ChirpError, QueryTooComplex, Unavailable
from runtime.failures import is_transient
from schema.documents import DocumentCache, Entry
from schema.guard import BUDGETED, WATCHDOG, cost_of, introspection_allowance, timed_out

log = logging.getLogger("chirp.graphql")
CLIENT_ERRORS = (InvalidOperationTypeError, CannotGetOperationTypeError, MissingQueryError)


def classify(error: GraphQLError) -> tuple[str, str, dict[str, Any]]:
    """(code, client-facing message, extra extensions) for one error."""
    original = error.original_error
    if isinstance(original, GraphQLError):
        return classify(original)
    if isinstance(original, ChirpError):
        return original.code, original.message, original.extensions
    if isinstance(original, CLIENT_ERRORS):  # an operation type this transport refuses
        return "BAD_USER_INPUT", error.message, {}
    if original is None and error.extensions and "code" in error.extensions:
        # Already classified (process_errors ran on it, or a subscription's wrapper did).
        extra = {k: v for k, v in error.extensions.items() if k != "code"}
        return error.extensions["code"], error.message, extra
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
    def __init__(self, *args: Any, documents: DocumentCache, max_cost: int, timeout_ms: int,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Query text -> document, errors and cost formulas (schema/documents.py).
        self.documents = documents
        self.max_cost = max_cost
        self.timeout_ms = timeout_ms
        self.introspection_allowance = introspection_allowance(self._schema)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        # A query's Guard arms its time budget as it starts executing.
        token = BUDGETED.set(True)
        try:
            result = await super().execute(*args, **kwargs)
        except asyncio.CancelledError:
            if WATCHDOG.disarm():
                return self._timed_out()
            raise
        finally:
            BUDGETED.reset(token)
        # A cancellation surfacing as a field error is still the budget's answer.
        return self._timed_out() if WATCHDOG.disarm() else result

    async def _stream_non_subscription(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """A query or mutation over WebSocket, with the same time budget as over HTTP."""
        token = BUDGETED.set(True)
        source = super()._stream_non_subscription(*args, **kwargs)
        try:
            first = await source.__anext__()
        except asyncio.CancelledError:
            if not WATCHDOG.disarm():
                raise
            first = None
        finally:
            BUDGETED.reset(token)
        if WATCHDOG.disarm() or first is None:
            await source.aclose()
            yield self._timed_out()
            return
        yield first
        async for rest in source:  # incremental delivery's later frames
            yield rest

    def _timed_out(self) -> ExecutionResult:
        return self.refused(timed_out(self.timeout_ms))

    def refused(self, error: Exception) -> ExecutionResult:
        """The answer to an operation refused before it ran."""
        message = getattr(error, "message", str(error))
        graphql_error = GraphQLError(message, original_error=error)
        self._process_errors([graphql_error])
        return ExecutionResult(data=None, errors=[graphql_error], extensions={})

    async def execute_validated(
        self, entry: Entry, variable_values: dict[str, Any] | None,
        context_value: Any, root_value: Any, operation_name: str | None,
    ) -> ExecutionResult:
        """Strawberry's `execute` after parsing and validation, without the extension hooks
        but with the Guard's cost check and time budget."""
        document = entry.document
        try:
            requested = cost_of(self._schema, entry, document, operation_name,
                                variable_values, self.max_cost, self.introspection_allowance)
        except QueryTooComplex as e:
            return self.refused(e)
        extensions = {"cost": {"requested": requested, "maximum": self.max_cost}}
        WATCHDOG.arm(self.timeout_ms / 1000)
        try:
            result = await await_maybe(execute(
                self._schema, document, root_value=root_value,
                variable_values=variable_values, operation_name=operation_name,
                context_value=context_value, is_awaitable=optimized_is_awaitable,
                executor_class=self.execution_context_class, operation_extensions=None,
            ))
        except asyncio.CancelledError:
            if WATCHDOG.disarm():
                return self._timed_out()
            raise
        except Exception as exc:
            WATCHDOG.disarm()
            error = exc if isinstance(exc, GraphQLError) else GraphQLError(
                str(exc), original_error=exc)
            self._process_errors([error])
            return ExecutionResult(data=None, errors=[error], extensions=extensions)
        if WATCHDOG.disarm():
            return self._timed_out()
        if result.errors:
            self._process_errors(result.errors)
        return ExecutionResult(data=result.data, errors=result.errors, extensions=extensions)

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        """Every path's errors are rewritten here, in place, to their client-facing form."""
        for error in errors:
            code, message, extra = classify(error)
            if code == "INTERNAL_SERVER_ERROR":
                log.error("unexpected error", exc_info=error.original_error or error)
            elif code == "UNAVAILABLE":
                log.warning("backend unavailable: %r", error.original_error)
            error.message = message
            error.extensions = {"code": code, **extra}
