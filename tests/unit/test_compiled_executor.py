"""The compiled executor against graphql-core's stock executor: same data, same errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum

import pytest
import strawberry
from graphql import execute, parse, validate

from schema.compiled import CompiledExecutionContext


class Boom(Exception):
    pass


@strawberry.enum
class Color(Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Dog(Named):
    barks: bool


@strawberry.type
class Cat(Named):
    lives: int


@strawberry.type
class Leaf:
    n: int
    label: str | None
    when: datetime
    color: Color

    @strawberry.field
    def fails(self) -> str | None:
        raise Boom(f"leaf {self.n} fails")

    @strawberry.field
    def must(self) -> str:
        if self.n % 2:
            raise Boom(f"leaf {self.n} must fail")
        return f"ok {self.n}"

    @strawberry.field
    def null_required(self) -> str:
        return None  # type: ignore[return-value]

    @strawberry.field
    async def later(self, times: int = 1) -> str:
        await asyncio.sleep(0)
        return f"{self.n}x{times}"

    @strawberry.field
    async def later_fails(self) -> int | None:
        await asyncio.sleep(0)
        raise Boom(f"async {self.n}")

    @strawberry.field
    def huge(self) -> int:
        return 2**40

    @strawberry.field
    def wrong_scalar(self) -> bool | None:
        return "not a bool"  # type: ignore[return-value]


@strawberry.type
class Branch:
    leaves: list[Leaf]
    maybe_leaves: list[Leaf | None] | None
    strict: list[Leaf]
    tags: list[str]
    loose_tags: list[str | None]
    bad_tags: list[str]
    pet: Named
    pets: list[Named]
    missing: Leaf | None
    required: Leaf

    @strawberry.field
    async def async_leaves(self) -> list[Leaf]:
        await asyncio.sleep(0)
        return self.leaves

    @strawberry.field
    def awaitable_items(self) -> list[Leaf | None]:
        async def one(leaf: Leaf) -> Leaf:
            await asyncio.sleep(0)
            return leaf

        return [one(leaf) for leaf in self.leaves]  # type: ignore[misc]

    @strawberry.field
    def not_a_list(self) -> list[int] | None:
        return 7  # type: ignore[return-value]


def _leaf(n: int) -> Leaf:
    return Leaf(n=n, label=None if n % 3 == 0 else f"leaf {n}",
                when=datetime(2024, 1, n + 1, tzinfo=UTC), color=Color.RED if n % 2 else Color.BLUE)


def _branch() -> Branch:
    leaves = [_leaf(i) for i in range(4)]
    return Branch(
        leaves=leaves, maybe_leaves=[leaves[0], None, leaves[2]],
        strict=[leaves[0], None, leaves[1]],  # type: ignore[list-item]
        tags=["a", "b"], loose_tags=["a", None], bad_tags=["a", None],  # type: ignore[list-item]
        pet=Dog(name="rex", barks=True), pets=[Dog(name="rex", barks=True), Cat(name="tom", lives=9)],
        missing=None, required=None,  # type: ignore[arg-type]
    )


@strawberry.type
class Query:
    @strawberry.field
    def branch(self) -> Branch:
        return _branch()

    @strawberry.field
    async def async_branch(self) -> Branch | None:
        await asyncio.sleep(0)
        return _branch()

    @strawberry.field
    def leaf(self, n: int) -> Leaf:
        return _leaf(n)

    @strawberry.field
    def broken(self) -> Branch | None:
        raise Boom("no branch")

    @strawberry.field
    def greeting(self, name: str = "world") -> str:
        return f"hello {name}"


SCHEMA = strawberry.Schema(query=Query, types=[Dog, Cat])

CASES = {
    "plain leaves": "{ branch { leaves { n label when color } tags loose_tags: looseTags } }",
    "typename everywhere": "{ __typename branch { __typename leaves { __typename n } pet { __typename name } } }",
    "aliases": "{ a: branch { x: leaves { y: n z: n } } b: branch { tags } }",
    "named fragments": """
        query { branch { ...B } }
        fragment B on Branch { leaves { ...L } required { ...L } }
        fragment L on Leaf { n label }""",
    "inline fragments": "{ branch { ... on Branch { tags leaves { ... { n } n color } } } }",
    "merged selections": "{ branch { leaves { n } leaves { label n } } }",
    "variables": ("query($n: Int!, $t: Int = 3, $who: String) { leaf(n: $n) { n later(times: $t) } "
                  "greeting(name: $who) }"),
    "resolver error, nullable": "{ branch { leaves { n fails } } }",
    "resolver error, non-null in list": "{ branch { leaves { n must } } }",
    "non-null null propagates": "{ branch { leaves { n nullRequired } } }",
    "non-null object null": "{ branch { required { n } } }",
    "null item in non-null list": "{ branch { strict { n } maybeLeaves { n } } }",
    "null scalar item in non-null list": "{ branch { badTags } }",
    "null nullable object": "{ branch { missing { n } } }",
    "root resolver error": "{ broken { tags } greeting }",
    "async fields": "{ asyncBranch { asyncLeaves { n later laterFails } } }",
    "async error under non-null": "{ branch { asyncLeaves { n must later } } }",
    "awaitable list items": "{ branch { awaitableItems { n later } } }",
    "int out of range": "{ branch { leaves { n huge } } }",
    "wrong scalar": "{ branch { leaves { wrongScalar } } }",
    "not a list": "{ branch { notAList } }",
    "interface": "{ branch { pet { name ... on Dog { barks } } pets { name ... on Cat { lives } } } }",
    "directives": "query($s: Boolean!) { branch { tags @skip(if: $s) leaves { n @include(if: $s) } } }",
    "introspection": "{ __schema { queryType { name } } __type(name: \"Leaf\") { fields { name } } }",
}
VARIABLES = {"variables": {"n": 3, "who": "ada"}, "directives": {"s": False}}


async def _run(executor: type | None, query: str, variables: dict | None):
    """executor None: graphql-core's own (its default executor class)."""
    document = parse(query)
    assert validate(SCHEMA._schema, document) == []
    result = execute(SCHEMA._schema, document, variable_values=variables,
                     executor_class=executor)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    return result.data, [e.formatted for e in result.errors or []]


@pytest.mark.parametrize("case", list(CASES))
async def test_same_data_and_errors_as_graphql_core(case):
    query, variables = CASES[case], VARIABLES.get(case)
    stock = await _run(None, query, variables)
    compiled = await _run(CompiledExecutionContext, query, variables)
    assert compiled == stock
    # A second run takes the cached plans.
    assert await _run(CompiledExecutionContext, query, variables) == stock


async def test_the_plans_are_used():
    """Without this the cases above could pass by never compiling anything."""
    document = parse(CASES["plain leaves"])
    context = CompiledExecutionContext.build(SCHEMA._schema, document)
    assert context.compiled
    context = CompiledExecutionContext.build(SCHEMA._schema, parse(CASES["directives"]),
                                             raw_variable_values={"s": True})
    assert not context.compiled
