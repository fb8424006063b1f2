"""Compiled completion of query results: graphql-core's answer with far less work per field.

For a query without directives, the fields selected below an object type depend only on
the document, so a plan per (type, selection) says, for each response key, how to get the
value and complete it. Anything a plan does not cover (abstract types, `is_type_of`,
introspection, a field with a resolver and no direct getter) goes through graphql-core's
own machinery, errors included. Twin tests and the measurements: docs/api.md, "Fast paths".
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    OperationType,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import collect_subfields
from graphql.pyutils import Path, Undefined, gather_with_cancel

from schema.subscription import LiveExecutionContext
from schema.types import DIRECT, PURE, SHARED, UNRESOLVED
from storage.readcache import MISSING

_PLANS_MAX = 4096
_MIN_INT, _MAX_INT = -(2**31), 2**31 - 1

# Plan entry kinds.
_LEAF = 0  # attribute, scalar or enum
_TREE = 1  # attribute, object or list
_DIRECT_LEAF = 2  # direct getter, scalar or enum
_DIRECT_TREE = 3  # direct getter, object or list
_RESOLVER = 4  # graphql-core's execute_field
_TYPENAME = 5

_NOT_AWAITABLE = frozenset({dict, list, str, int, bool, float, type(None)})


class _Plan:
    __slots__ = ("fields", "leading", "rest", "shared", "type", "type_name")

    def __init__(self, type_: GraphQLObjectType, fields: list[tuple]) -> None:
        self.type = type_
        self.type_name = type_.name
        self.fields = fields
        self.shared = type_.name in SHARED
        # The attribute leaves before any other field, completed in one tight loop (the
        # response keeps the query's key order), and the fields after them.
        n = 0
        while n < len(fields) and fields[n][0] == _LEAF:
            n += 1
        self.leading = tuple((f[1], f[2], f[3]) for f in fields[:n])
        self.rest = fields[n:]


# (object type, ids of the selection's field nodes) -> (the nodes, kept alive so their
# ids stay unique, and the plan). Shared by all requests: a plan holds no request state.
_plans: dict[tuple, tuple[tuple, _Plan | None]] = {}
# id(operation) -> (operation, whether its results can be completed by plans)
_operations: dict[int, tuple[Any, bool]] = {}


def _no_directives(node: Any) -> bool:
    if getattr(node, "directives", None):
        return False
    if getattr(node, "arguments", None) and not hasattr(node, "alias"):
        return False  # fragment spread arguments (experimental)
    selection_set = getattr(node, "selection_set", None)
    if selection_set is not None:
        return all(_no_directives(s) for s in selection_set.selections)
    return True


def _eligible(operation: Any, fragments: dict[str, Any]) -> bool:
    found = _operations.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    ok = (
        operation.operation == OperationType.QUERY
        and _no_directives(operation)
        and all(not f.variable_definitions and _no_directives(f) for f in fragments.values())
    )
    if len(_operations) >= _PLANS_MAX:
        _operations.clear()
    _operations[id(operation)] = (operation, ok)
    return ok


def _null_message(parent: str, field: str) -> str:
    return f"Cannot return null for non-nullable field {parent}.{field}."


def _leaf(type_: GraphQLOutputType, parent: str, field: str) -> Callable[[Any], Any]:
    """Completion of a scalar or enum value, as graphql-core's complete_value would."""
    non_null = is_non_null_type(type_)
    base = type_.of_type if non_null else type_
    message = _null_message(parent, field)
    coerce = base.coerce_output_value
    if base is GraphQLString or base is GraphQLID:
        same: type | None = str
    elif base is GraphQLBoolean:
        same = bool
    else:
        same = None

    def complete(value: Any) -> Any:
        if value.__class__ is same:
            return value
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        if base is GraphQLInt and value.__class__ is int and _MIN_INT <= value <= _MAX_INT:
            return value
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            from graphql.pyutils import inspect

            raise TypeError(
                f"Expected `{inspect(base)}.coerce_output_value({inspect(value)})` to"
                f" return non-nullable value, returned: {inspect(coerced)}"
            )
        return coerced

    return complete


def _null(value: Any) -> bool:
    """Whether a value completes to null; a value that is an exception is raised."""
    if isinstance(value, Exception):
        raise value
    return value is None or value is Undefined


def _tree(type_: GraphQLOutputType, parent: GraphQLObjectType, field: str, field_def: Any,
          field_details: list) -> Callable:
    """Completion of an object or list value: complete(executor, value, path, position)."""
    if is_non_null_type(type_):
        inner = _tree(type_.of_type, parent, field, field_def, field_details)
        message = _null_message(parent.name, field)

        def non_null(ex: CompiledExecutionContext, value: Any, path: Path, pc: Any) -> Any:
            completed = inner(ex, value, path, pc)
            if completed is None:
                raise TypeError(message)
            return completed

        return non_null

    if is_list_type(type_):
        item_type = type_.of_type
        base = item_type.of_type if is_non_null_type(item_type) else item_type
        if is_leaf_type(base):
            leaf = _leaf(item_type, parent.name, field)

            def item(ex: Any, value: Any, path: Path, pc: Any) -> Any:
                return leaf(value)
        else:
            item = _tree(item_type, parent, field, field_def, field_details)

        def complete_list(ex: CompiledExecutionContext, value: Any, path: Path,
                          pc: Any) -> Any:
            if _null(value):
                return None
            if value.__class__ is not list and value.__class__ is not tuple:
                return ex.generic(type_, field_details, field_def, parent, path, value, pc)
            return ex.complete_items(item, item_type, field_details, field_def, parent, path,
                                     value, pc)

        return complete_list

    if is_object_type(type_):
        cell: list[_Plan | None] = []

        def complete_object(ex: CompiledExecutionContext, value: Any, path: Path,
                            pc: Any) -> Any:
            if _null(value):
                return None
            if not cell:
                cell.append(ex.plan(type_, field_details))
            plan = cell[0]
            if plan is None:
                return ex.generic(type_, field_details, field_def, parent, path, value, pc)
            return ex.complete_plan(plan, value, path, pc)

        return complete_object

    def complete_abstract(ex: CompiledExecutionContext, value: Any, path: Path,
                          pc: Any) -> Any:
        return ex.generic(type_, field_details, field_def, parent, path, value, pc)

    return complete_abstract


async def _gathered(out: Any, pending: list) -> Any:
    """`out` (a dict or a list) with the awaitables at `pending` replaced by their results."""
    if len(pending) == 1:
        out[pending[0]] = await out[pending[0]]
    else:
        done = await gather_with_cancel(*(out[k] for k in pending))
        for key, value in zip(pending, done, strict=True):
            out[key] = value
    return out


class CompiledExecutionContext(LiveExecutionContext):
    """Strawberry's executor (with the live-subscription sharing of LiveExecutionContext),
    completing query results by compiled plans."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.impure = 0  # completions so far that used more than their source object
        # (id(plan), id(source)) -> (plan, source, its completion), for objects of SHARED
        # types whose completion used nothing but the object: no resolver, no request-
        # dependent getter, no error, nothing awaited. The entry keeps plan and source, so
        # their ids stay theirs.
        caches = getattr(getattr(self.context_value, "services", None), "caches", None)
        self.completions = caches.completions if caches is not None else None
        manager = self.middleware_manager
        self.compiled = (
            self.abort_signal is None
            and self.hooks is None
            and (manager is None or manager._middleware_resolvers is None)
            and _eligible(self.operation, self.fragment_definitions)
        )

    # -- entry: graphql-core completes an object value

    def complete_object_value(self, return_type, field_details_list, info, path, result,
                              position_context):
        if self.compiled:
            plan = self.plan(return_type, field_details_list)
            if plan is not None:
                return self.complete_plan(plan, result, path, position_context)
        return super().complete_object_value(return_type, field_details_list, info, path,
                                             result, position_context)

    # -- plans

    def plan(self, type_: GraphQLObjectType, field_details: list) -> _Plan | None:
        for details in field_details:
            if details.defer_usage is not None or details.fragment_variable_values is not None:
                return None
        key = (type_, *(id(d.node) for d in field_details))
        found = _plans.get(key)
        if found is not None:
            return found[1]
        plan = self._build(type_, field_details)
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        _plans[key] = (tuple(d.node for d in field_details), plan)
        return plan

    def _build(self, type_: GraphQLObjectType, field_details: list) -> _Plan | None:
        if type_.is_type_of is not None or type_.name.startswith("__"):
            return None
        grouped, defer_usages, _forbidden = collect_subfields(
            self.schema, self.fragments, self.variable_values, self.operation, type_,
            field_details, self.hide_suggestions,
        )
        if defer_usages:
            return None
        fields: list[tuple] = []
        for response_name, sub_details in grouped.items():
            node = sub_details[0].node
            name = node.name.value
            if name == "__typename":
                fields.append((_TYPENAME, response_name, None, None, None, None))
                continue
            field_def = self.schema.get_field(type_, name)
            if field_def is None:
                continue  # graphql-core leaves the key out (Undefined)
            getter = None
            direct = DIRECT.get((type_.name, name))
            if not field_def.args and not node.arguments:
                strawberry_field = (field_def.extensions or {}).get("strawberry-definition")
                if (
                    strawberry_field is not None
                    and getattr(field_def.resolve, "_is_default", False)
                    and strawberry_field.is_basic_field
                    and strawberry_field.default_resolver is getattr
                ):
                    getter = attrgetter(strawberry_field.python_name)
                    direct = None
            return_type = field_def.type
            base = return_type.of_type if is_non_null_type(return_type) else return_type
            leaf = is_leaf_type(base)
            if direct is not None and not field_def.args:
                kind = _DIRECT_LEAF if leaf else _DIRECT_TREE
                getter = direct
            elif getter is not None:
                kind = _LEAF if leaf else _TREE
            else:
                fields.append((_RESOLVER, response_name, None, None, return_type, sub_details))
                continue
            complete = (_leaf(return_type, type_.name, name) if leaf
                        else _tree(return_type, type_, name, field_def, sub_details))
            fields.append((kind, response_name, getter, complete, return_type, sub_details))
        return _Plan(type_, fields)

    # -- completion

    def complete_plan(self, plan: _Plan, source: Any, path: Path, pc: Any) -> Any:
        memo = self.completions
        if memo is None or not plan.shared:
            return self._complete_plan(plan, source, path, pc)
        key = (id(plan), id(source))
        found = memo.get(key)
        if found is not MISSING and found[0] is plan and found[1] is source:
            return found[2]
        impure = self.impure
        out = self._complete_plan(plan, source, path, pc)
        if self.impure == impure:
            memo.put(key, (plan, source, out))
        return out

    def _complete_plan(self, plan: _Plan, source: Any, path: Path, pc: Any) -> Any:
        out: dict[str, Any] = {}
        fields = plan.rest
        if plan.leading:
            try:
                for name, getter, complete in plan.leading:
                    out[name] = complete(getter(source))
            except Exception:
                # The field-by-field loop reports the error at its field (getters are pure).
                out.clear()
                fields = plan.fields
        pending: list[str] | None = None
        type_, type_name = plan.type, plan.type_name
        try:
            for kind, name, getter, complete, return_type, details in fields:
                if kind == _LEAF:
                    try:
                        out[name] = complete(getter(source))
                    except Exception as error:
                        self.handle_field_error(error, return_type, details,
                                                Path(path, name, type_name))
                        out[name] = None
                    continue
                if kind == _TYPENAME:
                    out[name] = type_name
                    continue
                field_path = Path(path, name, type_name)
                if kind == _TREE:
                    try:
                        result = complete(self, getter(source), field_path, pc)
                    except Exception as error:
                        self.handle_field_error(error, return_type, details, field_path)
                        result = None
                    else:
                        if result.__class__ not in _NOT_AWAITABLE and self.is_awaitable(result):
                            result = self._settled(result, return_type, details, field_path)
                            (pending := pending or []).append(name)
                    out[name] = result
                    continue
                value = UNRESOLVED
                if kind != _RESOLVER:
                    if getter not in PURE:
                        self.impure += 1
                    try:
                        value = getter(source, self.context_value)
                        if value is not UNRESOLVED:
                            value = (complete(value) if kind == _DIRECT_LEAF
                                     else complete(self, value, field_path, pc))
                    except Exception as error:
                        self.handle_field_error(error, return_type, details, field_path)
                        value = None
                    else:
                        if value is not UNRESOLVED and value.__class__ not in _NOT_AWAITABLE \
                                and self.is_awaitable(value):
                            value = self._settled(value, return_type, details, field_path)
                if value is UNRESOLVED:
                    # The resolver itself, with graphql-core's handling of its result.
                    self.impure += 1
                    value = self.execute_field(type_, source, details, field_path, pc)
                    if value is Undefined:
                        continue
                out[name] = value
                if value.__class__ not in _NOT_AWAITABLE and self.is_awaitable(value):
                    (pending := pending or []).append(name)
        except Exception:
            self._abandon(out, pending)
            raise
        if pending:
            self.impure += 1
            return _gathered(out, pending)
        return out

    def complete_items(self, item: Callable, item_type: GraphQLOutputType, details: list,
                       field_def: Any, parent: GraphQLObjectType, path: Path, items: Any,
                       pc: Any) -> Any:
        out: list[Any] = []
        pending: list[int] | None = None
        is_awaitable = self.is_awaitable
        try:
            for index, value in enumerate(items):
                item_path = Path(path, index, None)
                try:
                    if value.__class__ not in _NOT_AWAITABLE and is_awaitable(value):
                        info = self.build_resolve_info(field_def, [d.node for d in details],
                                                       parent, path)
                        completed = self.complete_awaitable_list_item_value(
                            value, item_type, details, info, item_path, pc)
                    else:
                        completed = item(self, value, item_path, pc)
                        if completed.__class__ not in _NOT_AWAITABLE and \
                                is_awaitable(completed):
                            completed = self._settled(completed, item_type, details,
                                                      item_path)
                except Exception as error:
                    self.handle_field_error(error, item_type, details, item_path)
                    completed = None
                out.append(completed)
                if completed.__class__ not in _NOT_AWAITABLE and is_awaitable(completed):
                    (pending := pending or []).append(index)
        except Exception:
            self._abandon(out, pending)
            raise
        if pending:
            self.impure += 1
            return _gathered(out, pending)
        return out

    def _abandon(self, out: Any, pending: list | None) -> None:
        """A completion failed half-way: its awaitables still run, and their errors are
        retrieved, as graphql-core does."""
        if pending:
            self.settle_in_background([out[k] for k in pending])

    async def _settled(self, awaitable: Any, return_type: GraphQLOutputType, details: list,
                       path: Path) -> Any:
        try:
            return await awaitable
        except Exception as error:
            self.handle_field_error(error, return_type, details, path)
            return None

    def handle_field_error(self, *args: Any) -> None:
        self.impure += 1
        super().handle_field_error(*args)

    def generic(self, type_: GraphQLOutputType, details: list, field_def: Any,
                parent: GraphQLObjectType, path: Path, value: Any, pc: Any) -> Any:
        """graphql-core's own completion, for what the plans do not cover."""
        self.impure += 1
        info = self.build_resolve_info(field_def, [d.node for d in details], parent, path)
        return self.complete_value(type_, details, info, path, value, pc)
