"""Live subscription types, and their once-per-process executor (docs/modules.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Hashable
from typing import Any

import orjson
import strawberry
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    print_ast,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from core.errors import Unauthenticated
from core.models import LiveKind
from schema.errors import classify
from schema.guard import WATCHDOG, timed_out
from schema.types import Tweet
from subscriptions import streams
from subscriptions.wire import WIRE, Wire

TimelineEventKind = strawberry.enum(LiveKind, name="TimelineEventKind")


@strawberry.type
class TimelineEvent:
    kind: TimelineEventKind  # type: ignore[valid-type]
    tweet_id: strawberry.ID | None
    tweet: Tweet | None
    # execution results of this event, per shareable selection (see LiveExecutionContext)
    results: strawberry.Private[dict[Hashable, Any]]

    @classmethod
    def of(cls, e: streams.LiveEvent) -> TimelineEvent:
        """One object per event per process, whichever sessions it reaches."""
        made = e.memo.get(cls)
        if made is None:
            made = e.memo[cls] = cls(
                kind=e.kind,
                tweet_id=strawberry.ID(str(e.tweet_id)) if e.tweet_id is not None else None,
                tweet=Tweet.of(e.tweet, e.author, e.media) if e.tweet is not None else None,
                results={},
            )
        return made


async def _coded(events: AsyncIterator[streams.LiveEvent]) -> AsyncIterator[streams.LiveEvent]:
    """WebSocket errors are formatted by the protocol handler, not by our HTTP view: give
    them their extensions.code here."""
    try:
        async for event in events:
            yield event
    except GraphQLError:
        raise
    except Exception as e:
        code, message, extra = classify(GraphQLError(str(e), original_error=e))
        raise GraphQLError(message, extensions={"code": code, **extra}) from e


async def _while_authorized(context: Any, events: AsyncIterator[streams.LiveEvent]
                            ) -> AsyncIterator[streams.LiveEvent]:
    """A subscription opened with a token ends with UNAUTHENTICATED when the token expires
    or is logged out (services/sessions.py: at its expiry, or within a second of the
    logout in this process's copy of the revocations)."""
    claims = getattr(context, "claims", None)
    if claims is None:
        async for event in events:
            yield event
        return
    watch = context.services.accounts.sessions
    ended = watch.watch(claims)
    iterator = events.__aiter__()
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait((pending, ended), return_when=asyncio.FIRST_COMPLETED)
            if not pending.done():
                raise Unauthenticated("the subscription's token expired or was logged out")
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield event
    finally:
        watch.unwatch(ended)
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def home_timeline(
        self, info: Info, since_id: strawberry.ID | None = None
    ) -> AsyncGenerator[TimelineEvent, None]:
        """The viewer's home timeline, live: own tweets, followees' tweets (pushed by
        fan-out) and followed celebrities' tweets (from their channels), and deletes."""
        events = streams.home_timeline(info.context, since_id, _direct())
        async for event in _coded(_while_authorized(info.context, events)):
            yield TimelineEvent.of(event)

    @strawberry.subscription
    async def user_tweets(
        self, info: Info, handle: str
    ) -> AsyncGenerator[TimelineEvent, None]:
        """One author's new and deleted tweets."""
        events = streams.user_tweets(info.context, handle, _direct())
        async for event in _coded(_while_authorized(info.context, events)):
            yield TimelineEvent.of(event)


# Fields whose value is the same for every viewer and needs no I/O: only these may be
# shared. Anything not listed (a field added later included) is executed per subscription.
_SHAREABLE: dict[str, frozenset[str]] = {
    "TimelineEvent": frozenset({"__typename", "kind", "tweetId", "tweet"}),
    "Tweet": frozenset({"__typename", "id", "text", "createdAt", "author", "media"}),
    "Media": frozenset({"__typename", "id", "state", "contentType", "width", "height",
                        "altText", "url", "variants", "error"}),
    "MediaVariant": frozenset({"__typename", "name", "url", "width", "height", "contentType",
                               "byteSize"}),
    "User": frozenset({"__typename", "id", "handle", "displayName", "bio", "createdAt",
                       "followersCount", "followingCount", "tweetsCount", "isCelebrity"}),
}
_MEMO_MAX = 32  # distinct shareable selections remembered per event
_UNKNOWN = object()


class _Executed:
    """Stands in for a per-event executor whose result another subscription computed."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None, budget: bool = True) -> Any:
        return self.result


class LiveExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """For a live event and a shareable selection the result is memoized on the event: one
    execution per distinct selection per process; everything else runs as in Strawberry."""

    _share_key: Any = _UNKNOWN  # per subscription: its selection's key, None if unshareable
    _memo: dict[Hashable, Any] | None = None  # per event, set on a copy that executes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wire = WIRE.get()  # set by our protocol handler in this operation's task
        if (
            wire is not None
            and wire.executor is None
            and self.operation.operation == OperationType.SUBSCRIPTION
        ):
            wire.executor = self

    def share_key(self) -> Hashable | None:
        if self._share_key is _UNKNOWN:
            self._share_key = _selection_key(self)
        return self._share_key

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, TimelineEvent):
            key = self.share_key()
            if key is not None:
                done = payload.results.get(key)
                if done is not None:
                    return _Executed(done)
                executor = super().build_per_event_executor(payload)
                if len(payload.results) < _MEMO_MAX:
                    executor._memo = payload.results
                return executor
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None, budget: bool = True) -> Any:
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            if budget and self.operation.operation == OperationType.SUBSCRIPTION:
                # One event's execution, in its subscription's task: the query time budget.
                return _within_budget(result, self.context_value.services.settings)
        elif self._memo is not None:
            # Only complete results: a selection that awaited something is not shared.
            self._memo[self._share_key] = result
        return result


async def _within_budget(execution: Any, settings: Any) -> ExecutionResult:
    """A subscription event's execution under CHIRP_QUERY_TIMEOUT_MS; past it the event is
    answered with the error HTTP gives, and the subscription goes on."""
    WATCHDOG.arm(settings.query_timeout_ms / 1000)
    try:
        result = await execution
    except asyncio.CancelledError:
        if not WATCHDOG.disarm():
            raise
        result = None
    if WATCHDOG.disarm() or result is None:
        error = timed_out(settings.query_timeout_ms)
        return ExecutionResult(None, [GraphQLError(error.message, original_error=error)])
    return result


class _Direct:
    """A shareable subscription's frames, for the hub to send (see subscriptions/wire.py)."""

    __slots__ = ("executor", "key", "prefix", "alive", "raw")

    def __init__(self, wire: Wire, executor: LiveExecutionContext, key: Hashable) -> None:
        self.executor, self.key = executor, ("json", key)
        self.prefix, self.alive, self.raw = wire.prefix, wire.alive, wire.send

    def send(self, event: streams.LiveEvent) -> Coroutine[Any, Any, None] | None:
        """The write of this operation's frame for the event, or None to use the ordinary
        path (the operation has ended, or its result needs formatting)."""
        if not self.alive():
            return None
        # the payload is kept on the event itself: one lookup per delivery
        payload = event.memo.get(self.key) or self._payload(event)
        if payload is None:
            return None
        return self.raw({"type": "websocket.send", "text": self.prefix + payload + "}"})

    def _payload(self, event: streams.LiveEvent) -> str | None:
        shared = TimelineEvent.of(event)
        result = self.executor.build_per_event_executor(shared).execute_operation(
            False, budget=False)
        if self.executor.is_awaitable(result):
            result.close()  # not expected for a shareable selection: decline
            return None
        if result.errors:
            return None  # the ordinary path formats and reports them
        # what the protocol handlers send as the payload, with the app's encoder
        payload = orjson.dumps({"data": result.data}).decode()
        if len(event.memo) < _MEMO_MAX:
            event.memo[self.key] = payload
        return payload


def _direct() -> _Direct | None:
    """A Direct for the running subscription operation, if it can have one."""
    wire = WIRE.get()
    if wire is None or wire.executor is None:
        return None
    key = wire.executor.share_key()
    return _Direct(wire, wire.executor, key) if key is not None else None


def _selection_key(executor: LiveExecutionContext) -> Hashable | None:
    """What besides the event determines a subscription's per-event result (response key,
    printed selection, directive variables); None if any field is not shareable."""
    operation = executor.operation
    if operation.operation != OperationType.SUBSCRIPTION:
        return None
    (root, *more) = operation.selection_set.selections
    if more or not isinstance(root, FieldNode) or root.directives or not root.selection_set:
        return None
    subscription_type = executor.schema.subscription_type
    field = subscription_type.fields.get(root.name.value) if subscription_type else None
    if field is None:
        return None
    variables: set[str] = set()
    fragments: list[str] = []

    def shareable(selection_set: SelectionSetNode, parent: Any, depth: int) -> bool:
        allowed = _SHAREABLE.get(parent.name) if isinstance(parent, GraphQLObjectType) else None
        if allowed is None or depth > 8:
            return False
        for node in selection_set.selections:
            for directive in node.directives or ():
                for argument in directive.arguments or ():
                    if not isinstance(argument.value, VariableNode):
                        continue  # a literal is part of the printed selection
                    variables.add(argument.value.name.value)
            if isinstance(node, FieldNode):
                name = node.name.value
                if name not in allowed or node.arguments:
                    return False
                if node.selection_set is not None:
                    child = get_named_type(parent.fields[name].type)
                    if not shareable(node.selection_set, child, depth + 1):
                        return False
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if condition is not None and condition.name.value != parent.name:
                    return False
                if not shareable(node.selection_set, parent, depth + 1):
                    return False
            elif isinstance(node, FragmentSpreadNode):
                fragment = executor.fragment_definitions.get(node.name.value)
                if (
                    fragment is None
                    or getattr(node, "arguments", None)
                    or fragment.type_condition.name.value != parent.name
                ):
                    return False
                fragments.append(print_ast(fragment))
                if not shareable(fragment.selection_set, parent, depth + 1):
                    return False
            else:
                return False
        return True

    if not shareable(root.selection_set, get_named_type(field.type), 0):
        return None
    coerced = executor.variable_values.coerced
    try:
        used = tuple(sorted((name, coerced.get(name)) for name in variables))
        hash(used)
    except TypeError:
        return None
    response_key = root.alias.value if root.alias else root.name.value
    return (response_key, root.name.value, print_ast(root.selection_set),
            tuple(sorted(set(fragments))), used)
