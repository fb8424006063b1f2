"""Query cost: how many objects an operation may resolve, known before it runs.

Every object-typed field costs one per time it can be resolved. A list field multiplies
what is below it by its size: the `first` of the nearest enclosing field that takes one
(a connection's page size, clamped to the page limit; its default when not given), or
`LIST_GUESS` for lists without a page size (introspection). So
`followers(first:100){edges{node{followers(first:100){...}}}}` costs 100 x 100 at the
second level, which is what the executor would resolve on a big enough graph.

Fields are grouped by response key and fragments expanded as graphql-core's executor does,
so the analysis is linear in the document. The cost of a (document, operation) compiles
once into a sum of products whose factors are constants or variables: a repeat of a
known query (schema/documents.py keeps it with the document) pays a few multiplications.
"""

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
    terms: tuple[tuple[Factor, ...], ...]  # each a product of factors, at least one a variable

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
    # A variable's own default, when the request leaves it out.
    defaults = {
        v.variable.name.value: (_size(int(v.default_value.value))
                                if isinstance(v.default_value, IntValueNode) else MAX_PAGE)
        for v in operation.variable_definitions or () if v.default_value is not None
    }
    _walk(schema, fragments, root, [operation.selection_set], (), terms, defaults)
    constant = 0
    variable_terms = []
    for factors in terms:
        if all(f.__class__ is int for f in factors):
            product = 1
            for f in factors:
                product *= f  # type: ignore[operator]
            constant += product
        else:
            variable_terms.append(factors)
    return Formula(constant, tuple(variable_terms))


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
          page: Factor | None = None) -> None:
    grouped: dict[str, list[FieldNode]] = {}
    _collect(schema, fragments, parent, selection_sets, grouped, set())
    for nodes in grouped.values():
        name = nodes[0].name.value
        if name == "__typename":
            continue
        field_def = _field(schema, parent, name)
        if field_def is None:
            continue
        field_type = get_nullable_type(field_def.type)
        named = get_named_type(field_type)
        if not is_composite_type(named):
            continue
        terms.append(factors or (1,))
        below = factors
        if is_list_type(field_type):
            below = (*factors, page if page is not None else LIST_GUESS)
        first = _first(field_def, nodes[0], defaults)
        children = [n.selection_set for n in nodes]
        # Fragments are collected whatever their type condition: an upper bound.
        _walk(schema, fragments, named, children, below, terms, defaults, first)


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
