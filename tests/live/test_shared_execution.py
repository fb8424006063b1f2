"""Which live selections are executed once per process and shared."""

from __future__ import annotations

import pytest
from graphql import parse

from schema import build_schema
from schema.subscription import LiveExecutionContext, _selection_key


@pytest.fixture(scope="module")
def graphql_schema(services):
    return build_schema(services.settings)._schema


def key(graphql_schema, query: str, variables: dict | None = None):
    executor = LiveExecutionContext.build(graphql_schema, parse(query), None, None, variables)
    assert not isinstance(executor, list), executor  # a valid operation
    return _selection_key(executor)


def test_viewer_independent_selections_are_shared(graphql_schema):
    plain = key(graphql_schema, "subscription { homeTimeline { kind tweetId } }")
    since = key(graphql_schema, 'subscription { homeTimeline(sinceId: "5") { kind tweetId } }')
    assert plain is not None and plain == since  # the root's arguments do not matter
    deep = key(graphql_schema, """subscription($s: ID) { homeTimeline(sinceId: $s) {
        kind tweet { id text createdAt author { handle displayName isCelebrity } } } }""",
               {"s": "7"})
    assert deep is not None and deep != plain
    fragment = key(graphql_schema, """subscription { homeTimeline { ...E } }
        fragment E on TimelineEvent { kind tweetId }""")
    assert fragment is not None and fragment != plain
    aliased = key(graphql_schema, "subscription { t: homeTimeline { kind tweetId } }")
    assert aliased is not None and aliased != plain  # the response key differs


def test_directive_variables_are_part_of_the_key(graphql_schema):
    q = "subscription($t: Boolean!) { homeTimeline { kind tweet @include(if: $t) { id } } }"
    yes, no = key(graphql_schema, q, {"t": True}), key(graphql_schema, q, {"t": False})
    assert yes is not None and no is not None and yes != no


@pytest.mark.parametrize("query", [
    "subscription { homeTimeline { tweet { author { viewerIsFollowing } } } }",
    "subscription { homeTimeline { tweet { author { tweets { edges { cursor } } } } } }",
    "subscription { homeTimeline { ... on TimelineEvent { tweet { author { viewerIsFollowing } } } } }",
])
def test_viewer_dependent_or_loading_selections_are_not_shared(graphql_schema, query):
    assert key(graphql_schema, query) is None
    assert key(graphql_schema, "query { __typename }") is None  # not a subscription
