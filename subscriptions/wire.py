"""Direct delivery of live events: the hub writes an event's frame to a subscription's
socket itself, instead of waking the subscription's task to run it through graphql-core,
Strawberry's result stream, its protocol handler and Starlette.

Invariants: the protocol handlers below give each operation's task a `Wire` (its frame
prefix, how to send, whether it is still open) through a context variable; a
subscription is sent to directly only while its own task is idle with nothing queued, and
anything the hub cannot send directly goes back through its queue, in order. Why and the
measurements: docs/live.md, "Direct delivery".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

log = logging.getLogger("chirp.live")


@dataclass(slots=True)
class Wire:
    """How one subscription operation's frames reach its socket."""

    prefix: str  # the frame up to its payload: '{"id":"1","type":"next","payload":'
    send: Callable[[dict], Awaitable[None]]  # the socket's ASGI send
    alive: Callable[[], bool]  # the operation is still open (not completed or stopped)
    executor: Any = None  # its graphql-core executor, registered by schema/subscription.py


WIRE: ContextVar[Wire | None] = ContextVar("chirp_live_wire", default=None)


RAW_SEND = "chirp.raw_send"  # scope key: the server's own ASGI send for this WebSocket


class RawSend:
    """ASGI middleware, outermost: keeps the server's own `send` in a WebSocket's scope, for
    direct frames (the server's send still refuses a closed socket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def _wire(handler: Any, operation_id: str, kind: str, alive: Callable[[], bool]) -> Wire | None:
    ws = getattr(handler.websocket, "ws", None)  # Starlette's WebSocket (ASGI adapter)
    if ws is None:
        return None
    head = orjson.dumps({"id": operation_id, "type": kind}).decode()
    # the server's own send, or Starlette's where RawSend is not mounted
    send = ws.scope.get(RAW_SEND) or ws.send
    return Wire(head[:-1] + ',"payload":', send, alive)


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws, with a Wire for each operation's task."""

    async def run_operation(self, operation: Operation) -> None:
        WIRE.set(_wire(self, operation.id, "next",
                       lambda: self.operations.get(operation.id) is operation
                       and not operation.completed))
        await super().run_operation(operation)


class LegacyWSHandler(BaseGraphQLWSHandler):
    """The legacy graphql-ws protocol, with a Wire for each operation's task."""

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        task = asyncio.current_task()
        WIRE.set(_wire(self, operation_id, "data",
                       lambda: self.tasks.get(operation_id) is task))
        await super().handle_async_results(operation_id, query, operation_name, variables)


def send_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Future | None:
    """Run `coro` now, in the caller's task, until it finishes or has to wait. None if it
    finished (an ASGI send to a socket that is not paused does); otherwise a task that
    finishes it. (Python 3.12's eager tasks do this; we are on 3.11.) Exceptions raised
    before the first wait propagate to the caller."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.ensure_future(_finish(coro, waiting))
    task.add_done_callback(_retrieved)
    return task


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        # the socket went away; its operation's task finds out by itself
        log.debug("direct live send failed: %r", task.exception())


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    try:
        while True:
            if waiting is None:  # a bare yield: let the loop run once
                await asyncio.sleep(0)
            else:  # a future the coroutine awaits (Future.__await__ yielded it)
                waiting._asyncio_future_blocking = False
                await asyncio.wait([waiting])
            try:
                waiting = coro.send(None)
            except StopIteration:
                return
    except BaseException:
        with contextlib.suppress(BaseException):
            coro.close()
        raise
