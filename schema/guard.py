"""The checks every operation passes before it runs, on every path (HTTP, the HTTP
shortcut, WebSocket): cached parsing and validation bounded in bytes, trusted documents,
query cost, and the time budget of queries."""

from __future__ import annotations

import asyncio
from collections.abc import Container, Iterator
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError, OperationType
from strawberry.extensions import SchemaExtension

from core.errors import Forbidden, QueryTooComplex
from schema import cost
from schema.documents import DocumentCache, Entry
from schema.persisted import sha256

# The running operation's time budget, opened by ChirpSchema.execute with no deadline; a
# query sets the deadline when it starts executing (mutations are never cut mid-write).
BUDGET: ContextVar[asyncio.Timeout | None] = ContextVar("chirp_budget", default=None)


def too_complex(requested: int, maximum: int) -> QueryTooComplex:
    return QueryTooComplex(
        f"query cost {requested} exceeds the maximum of {maximum}: ask for smaller pages "
        "or fewer nested lists", cost=requested, maximumCost=maximum)


def timed_out(ms: int) -> QueryTooComplex:
    return QueryTooComplex(f"the query ran longer than its budget of {ms} ms", timeoutMs=ms)


def cost_of(schema: Any, entry: Entry | None, document: Any, operation_name: str | None,
            variables: dict[str, Any] | None) -> int:
    if entry is not None:
        found = entry.formulas.get(operation_name)
        if found is None:
            found = cost.formula(schema, document, operation_name)
            entry.formulas[operation_name] = found
    else:
        found = cost.formula(schema, document, operation_name)
    return 0 if found is None else found.of(variables)


class Guard(SchemaExtension):
    def __init__(self, documents: DocumentCache, max_cost: int, timeout_ms: int,
                 trusted: Container[str] | None) -> None:
        self.documents = documents
        self.max_cost = max_cost
        self.timeout_ms = timeout_ms
        self.trusted = trusted
        self.entry: Entry | None = None
        self.cost: int | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query and context.graphql_document is None:
            self.entry = self.documents.get(query)
            if self.entry is not None:
                context.graphql_document = self.entry.document
        yield
        if self.entry is None and query and context.graphql_document is not None:
            self.entry = self.documents.put(query, context.graphql_document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.entry
        if entry is not None and entry.errors is not None and context.pre_execution_errors is None:
            context.pre_execution_errors = list(entry.errors)
        yield
        if entry is not None and entry.errors is None:
            entry.errors = list(context.pre_execution_errors or ())

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if self.trusted is not None and (not context.query
                                         or sha256(context.query) not in self.trusted):
            raise GraphQLError("only trusted documents run here",
                               original_error=Forbidden("only trusted documents run here"))
        requested = cost_of(context.schema._schema, self.entry, context.graphql_document,
                            context.operation_name, context.variables)
        if requested > self.max_cost:
            error = too_complex(requested, self.max_cost)
            raise GraphQLError(error.message, original_error=error)
        self.cost = requested
        if self.entry is not None:
            self.entry.runnable = True
        if context.operation_type == OperationType.QUERY:
            check_read = getattr(context.context, "check_read", None)
            if check_read is not None:
                check_read()
            budget = BUDGET.get()
            if budget is not None:
                budget.reschedule(asyncio.get_running_loop().time() + self.timeout_ms / 1000)
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "maximum": self.max_cost}}
