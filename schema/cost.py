"""Query cost: objects an operation may resolve, known before it runs (docs/modules.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
)

from resolvers.args import MAX_PAGE

LIST_GUESS = 10  # items assumed for a list without a page size

Factor = int | tuple[str, int]  # a constant, or (variable name, its default)


@dataclass(frozen=True, slots=True)
class Formula:
    constant: int
    introspection: int  # objects the introspection part (__schema, __type) may produce
    # Each a constant coefficient times variable factors.
    terms: tuple[tuple[Factor, ...], ...]

    def of(self, variables: dict[str, Any] | None) -> int:
        total = self.constant
        for factors in self.terms:
            product = 1
            for f in factors:
                product *= f if f.__class__ is int else _size(
                    (variables or {}).get(f[0], f[1]))  # type: ignore[index]
            total += product
        return total


def _size(value: Any) -> int:
    if value.__class__ is not int:
        return MAX_PAGE  # the resolver rejects what is not an int; count it as the worst
    return min(max(value, 1), MAX_PAGE)


def formula(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
            ) -> Formula | None:
    """The cost formula of the named operation; None if the document has no such one."""
    operation = _operation(document, operation_name)
    if operation is None:
        return None
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    terms: list[tuple[Factor, ...]] = []
    introspection: list[tuple[Factor, ...]] = []
    # A variable's own default, when the request leaves it out.
    defaults = {
        v.variable.name.value: (_size(int(v.default_value.value))
                                if isinstance(v.default_value, IntValueNode) else MAX_PAGE)
        for v in operation.variable_definitions or () if v.default_value is not None
    }
    _walk(schema, fragments, root, [operation.selection_set], (), terms, defaults,
          introspection=introspection)
    constant = 0
    grouped: dict[tuple[Factor, ...], int] = {}
    for factors in terms:
        coefficient = 1
        variables = []
        for f in factors:
            if f.__class__ is int:
                coefficient *= f  # type: ignore[operator]
            else:
                variables.append(f)
        if variables:
            key = tuple(variables)
            grouped[key] = grouped.get(key, 0) + coefficient
        else:
            constant += coefficient
    spent = sum(_product(f) for f in introspection)
    return Formula(constant, spent, tuple((c, *v) for v, c in grouped.items()))


def _product(factors: tuple[Factor, ...]) -> int:
    product = 1
    for f in factors:
        product *= f if f.__class__ is int else MAX_PAGE  # type: ignore[operator]
    return product


def introspection_sizes(schema: GraphQLSchema) -> dict[str, int]:
    """The longest each introspection list can be in this (fixed) schema."""
    found = _SIZES.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    types = list(schema.type_map.values())

    def most(values) -> int:
        return max([len(v) for v in values] or [0]) or 1

    fields = [t.fields for t in types if hasattr(t, "fields")]
    sizes = {
        "types": len(types),
        "fields": most(fields),
        "inputFields": most(fields),
        "enumValues": most([t.values for t in types if hasattr(t, "values")]),
        "interfaces": most([t.interfaces for t in types if hasattr(t, "interfaces")]),
        "possibleTypes": len(types),
        "directives": len(schema.directives),
        "args": most([f.args for fs in fields for f in fs.values() if hasattr(f, "args")]
                     + [d.args for d in schema.directives]),
    }
    _SIZES[id(schema)] = (schema, sizes)
    return sizes


_SIZES: dict[int, tuple[GraphQLSchema, dict[str, int]]] = {}


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def _collect(schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
             parent: Any, selection_sets: list, out: dict[str, list[FieldNode]],
             visited: set[str]) -> None:
    for selection_set in selection_sets:
        if selection_set is None:
            continue
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                out.setdefault(key, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                _collect(schema, fragments, parent, [sel.selection_set], out, visited)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in visited or name not in fragments:
                    continue
                visited.add(name)
                _collect(schema, fragments, parent, [fragments[name].selection_set], out,
                         visited)


def _walk(schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], parent: Any,
          selection_sets: list, factors: tuple[Factor, ...],
          terms: list[tuple[Factor, ...]], defaults: dict[str, int],
          page: Factor | None = None, *, introspection: list | None = None,
          sizes: dict[str, int] | None = None) -> None:
    """Terms for a selection; introspection subtrees go to `introspection`, sized by `sizes`."""
    grouped: dict[str, list[FieldNode]] = {}
    _collect(schema, fragments, parent, selection_sets, grouped, set())
    for nodes in grouped.values():
        name = nodes[0].name.value
        if name == "__typename":
            continue
        if sizes is None and name.startswith("__") and introspection is not None:
            _fields(schema, fragments, parent, nodes, (), introspection, defaults, None,
                    introspection_sizes(schema))
            continue
        _fields(schema, fragments, parent, nodes, factors, terms, defaults, page, sizes)


def _fields(schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], parent: Any,
            nodes: list[FieldNode], factors: tuple[Factor, ...],
            terms: list[tuple[Factor, ...]], defaults: dict[str, int], page: Factor | None,
            sizes: dict[str, int] | None) -> None:
    name = nodes[0].name.value
    field_def = _field(schema, parent, name)
    if field_def is None:
        return
    field_type = get_nullable_type(field_def.type)
    named = get_named_type(field_type)
    if not is_composite_type(named):
        return
    terms.append(factors or (1,))
    below = factors
    if is_list_type(field_type):
        size = sizes.get(name, LIST_GUESS) if sizes is not None else page
        below = (*factors, size if size is not None else LIST_GUESS)
    first = _first(field_def, nodes[0], defaults)
    children = [n.selection_set for n in nodes]
    # Fragments are collected whatever their type condition: an upper bound.
    _walk(schema, fragments, named, children, below, terms, defaults, first, sizes=sizes)


def _field(schema: GraphQLSchema, parent: Any, name: str) -> Any:
    fields = getattr(parent, "fields", None)
    if fields is not None and name in fields:
        return fields[name]
    return schema.get_field(parent, name) if hasattr(schema, "get_field") else None


def _first(field_def: Any, node: FieldNode, defaults: dict[str, int]) -> Factor | None:
    arg = field_def.args.get("first")
    if arg is None:
        return None
    default = arg.default_value if isinstance(arg.default_value, int) else MAX_PAGE
    for a in node.arguments or ():
        if a.name.value != "first":
            continue
        if isinstance(a.value, IntValueNode):
            return _size(int(a.value.value))
        if isinstance(a.value, VariableNode):
            name = a.value.name.value
            return (name, defaults.get(name, default))
        return MAX_PAGE
    return _size(default)
