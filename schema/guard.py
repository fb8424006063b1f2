"""The checks every operation passes before it runs, on every path (HTTP, the HTTP
shortcut, WebSocket): cached parsing and validation bounded in bytes, trusted documents,
query cost, and the time budget of queries."""

from __future__ import annotations

import asyncio
from collections.abc import Container, Iterator
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError, get_introspection_query, parse
from strawberry.extensions import SchemaExtension

from core.errors import Forbidden, QueryTooComplex
from schema import cost
from schema.documents import DocumentCache, Entry
from schema.persisted import sha256


class Watchdog:
    """Time budgets of running operations, one timer per process, kept to within TICK_S
    (docs/modules.md)."""

    TICK_S = 0.05

    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task, float] = {}
        self._fired: set[asyncio.Task] = set()
        self._ticking = False

    def arm(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + seconds
        if not self._ticking:
            self._ticking = True
            loop.call_later(self.TICK_S, self._tick, loop)

    def disarm(self) -> bool:
        """Ends the current task's budget; whether it ran out (the task was cancelled for
        it: that cancellation is consumed here)."""
        task = asyncio.current_task()
        self._deadlines.pop(task, None)  # type: ignore[arg-type]
        if task in self._fired:
            self._fired.discard(task)  # type: ignore[arg-type]
            task.uncancel()  # type: ignore[union-attr]
            return True
        return False

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[task]
                if not task.done():
                    self._fired.add(task)
                    task.cancel()
        if self._deadlines:
            loop.call_later(self.TICK_S, self._tick, loop)
        else:
            self._ticking = False


WATCHDOG = Watchdog()
# Set while ChirpSchema.execute (HTTP) or _stream_non_subscription (WebSocket, in the
# operation's own task) runs an operation: they disarm what the Guard arms.
BUDGETED: ContextVar[bool] = ContextVar("chirp_budgeted", default=False)


def too_complex(requested: int, maximum: int) -> QueryTooComplex:
    return QueryTooComplex(
        f"query cost {requested} exceeds the maximum of {maximum}: ask for smaller pages "
        "or fewer nested lists", cost=requested, maximumCost=maximum)


def timed_out(ms: int) -> QueryTooComplex:
    return QueryTooComplex(f"the query ran longer than its budget of {ms} ms", timeoutMs=ms)


def cost_of(schema: Any, entry: Entry | None, document: Any, operation_name: str | None,
            variables: dict[str, Any] | None, max_cost: int, max_introspection: int) -> int:
    """The operation's cost; QueryTooComplex if it or its introspection is over its limit."""
    if entry is not None:
        found = entry.formulas.get(operation_name)
        if found is None:
            found = cost.formula(schema, document, operation_name)
            entry.formulas[operation_name] = found
    else:
        found = cost.formula(schema, document, operation_name)
    if found is None:
        return 0
    if found.introspection > max_introspection:
        raise QueryTooComplex(
            f"introspection may produce {found.introspection} objects; at most "
            f"{max_introspection} (twice the full schema)", cost=found.introspection,
            maximumCost=max_introspection)
    requested = found.of(variables)
    if requested > max_cost:
        raise too_complex(requested, max_cost)
    return requested


def introspection_allowance(schema: Any) -> int:
    """Twice what the complete standard introspection query may produce."""
    full = get_introspection_query(descriptions=True, specified_by_url=True,
                                   directive_is_repeatable=True, schema_description=True,
                                   input_value_deprecation=True)
    found = cost.formula(schema, parse(full), None)
    return 2 * (found.introspection if found is not None else 0)


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
        try:
            self.cost = cost_of(context.schema._schema, self.entry, context.graphql_document,
                                context.operation_name, context.variables, self.max_cost,
                                context.schema.introspection_allowance)
        except QueryTooComplex as error:
            raise GraphQLError(error.message, original_error=error) from None
        if self.entry is not None:
            self.entry.runnable = True
        # Strawberry's OperationType, not graphql-core's: compare the value.
        if context.operation_type.value == "query":
            check_read = getattr(context.context, "check_read", None)
            if check_read is not None:
                check_read()
            if BUDGETED.get():
                WATCHDOG.arm(self.timeout_ms / 1000)  # ChirpSchema.execute disarms it
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "maximum": self.max_cost}}
