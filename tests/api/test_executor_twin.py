"""The API's hand-written fast paths against the library's own, on real data."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from graphql import execute, parse, validate

from resolvers.context import build_context
from runtime import metrics
from schema import build_schema
from schema.compiled import CompiledExecutionContext
from schema.errors import formatted
from tests.conftest import client_for, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

TWEET = "id text createdAt author { id handle displayName isCelebrity viewerIsFollowing }"
QUERIES = {
    "home page (bench)": ("query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text "
                          "createdAt author{id handle displayName}}} pageInfo{hasNextPage "
                          "endCursor}}}", {"f": 20}),
    "home page, second page": ("query($f:Int,$a:String){homeTimeline(first:$f,after:$a){edges{"
                               "cursor node{" + TWEET + "}} pageInfo{hasNextPage endCursor "
                               "hasPreviousPage startCursor}}}", {"f": 2, "a": "AFTER"}),
    "viewer": ("{ viewer { __typename id handle bio followersCount followingCount tweetsCount "
               "isCelebrity followers(first: 3) { edges { cursor node { handle } } pageInfo { "
               "hasNextPage } } following { edges { node { handle viewerIsFollowing } } } } }",
               None),
    "user with tweets, aliases": ("query($h:String!){ a: user(handle:$h) { handle t: tweets("
                                  "first: 2) { edges { n: node { " + TWEET + " } } } } "
                                  "b: user(handle: \"nobody_here\") { id } }", {"h": "HANDLE"}),
    "tweet by id: author through its resolver": (
        "query($id:ID!){ tweet(id:$id) { __typename " + TWEET + " } }", {"id": "TWEET"}),
    "fragments": ("query($h:String!){ userTimeline(handle:$h, first: 3) { ...Conn } "
                  "homeTimeline { ...Conn } } "
                  "fragment Conn on TweetConnection { edges { node { ...T ... on Tweet { "
                  "author { ...U } } } } pageInfo { ...on PageInfo { endCursor } } } "
                  "fragment T on Tweet { id text } fragment U on User { handle isCelebrity }",
                  {"h": "HANDLE"}),
    "media (none here; tests/api/test_media.py has a twin with pictures)": (
        "{ homeTimeline(first: 10) { edges { node { id media { id state url altText "
        "variants { name url width } } } } } }", None),
    "directives": ("query($s:Boolean!){ homeTimeline(first: 3) { edges { node { id text "
                   "@skip(if:$s) author @include(if:$s) { handle } } } } }", {"s": True}),
    "error: bad arguments next to good fields": (
        "{ viewer { handle } homeTimeline(first: 0) { edges { cursor } } }", None),
    "error: bad cursor and bad id": (
        "{ homeTimeline(after: \"garbage!\") { edges { cursor } } tweet(id: \"x\") { id } }",
        None),
    "error: non-null root field of an unknown user": (
        "{ userTimeline(handle: \"nobody_here\") { edges { cursor } } viewer { id } }", None),
    "error: nested field with a bad argument": (
        "{ viewer { handle tweets(first: -1) { edges { cursor } } followers(after: \"zz\") "
        "{ edges { cursor } } } }", None),
}
ANONYMOUS = {"error: needs a viewer": "{ homeTimeline { edges { cursor } } viewer { id } }"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(services):
    """A viewer following an author, a celebrity (5 followers in this suite) and a follower."""
    async with client_for(services) as api:
        return await _world(api, services)


async def _world(api, services):
    viewer, vid, vhandle = await api.sign_up("twin")
    author, aid, ahandle = await api.sign_up("twina")
    celeb, cid, _ = await api.sign_up("twinc")
    for _ in range(4):
        fan, _, _ = await api.sign_up("twinf")
        await api.follow(fan, cid)
    for token, uid in ((viewer, aid), (viewer, cid), (author, vid)):
        await api.follow(token, uid)
    tweets = [await api.post(t, f"twin {i}") for i, t in enumerate([author, celeb] * 3)]
    tweets.append(await api.post(viewer, "mine"))
    await drain(services)
    first = await api.ok("{homeTimeline(first:2){pageInfo{endCursor}}}", token=viewer)
    return {"token": viewer, "HANDLE": ahandle, "author_id": aid, "TWEET": str(tweets[0]),
            "AFTER": first["homeTimeline"]["pageInfo"]["endCursor"], "viewer_handle": vhandle}


def _fill(variables: dict | None, world: dict) -> dict | None:
    if variables is None:
        return None
    return {k: world.get(v, v) if isinstance(v, str) else v for k, v in variables.items()}


async def _execute(schema, services, token, document, variables, executor):
    assert validate(schema._schema, document) == []
    context = await build_context(services, f"Bearer {token}" if token else None)
    result = execute(schema._schema, document, variable_values=variables,
                     context_value=context, executor_class=executor)
    if asyncio.iscoroutine(result):
        result = await result
    return result.data, [formatted(e) for e in result.errors or []]


@pytest.mark.parametrize("name", [*QUERIES, *ANONYMOUS])
async def test_compiled_executor_matches_graphql_core(name, world, services):
    schema = build_schema(services.settings)
    if name in ANONYMOUS:
        query, variables, token = ANONYMOUS[name], None, None
    else:
        (query, variables), token = QUERIES[name], world["token"]
        variables = _fill(variables, world)
    stock = await _execute(schema, services, token, parse(query), variables, None)
    document = parse(query)
    compiled = await _execute(schema, services, token, document, variables,
                              CompiledExecutionContext)
    # The same document again: shared objects' completions may be reused (plans' memos)
    again = await _execute(schema, services, token, document, variables,
                           CompiledExecutionContext)
    assert compiled == stock and again == stock
    assert stock[0] is not None or stock[1]  # something was answered


async def test_a_reused_completion_follows_its_records(world, api):
    """A page read again reuses its edges' completions; a changed author is a new record,
    so a new edge, completed again."""
    query = "{homeTimeline{edges{node{id author{handle followersCount}}}}}"
    reused = metrics.CACHE_HITS.labels("completions")

    async def counts() -> dict[str, int]:
        d = await api.ok(query, token=world["token"])
        return {e["node"]["author"]["handle"]: e["node"]["author"]["followersCount"]
                for e in d["homeTimeline"]["edges"]}

    before = await counts()
    hits = reused._value.get()
    assert await counts() == before
    assert reused._value.get() - hits >= 7  # every edge of the page
    fan, _, _ = await api.sign_up("twinfan")
    await api.follow(fan, world["author_id"])
    expected = {**before, world["HANDLE"]: before[world["HANDLE"]] + 1}
    for _ in range(40):  # others see counts within 1 s (docs/caches.md)
        if (got := await counts()) == expected:
            break
        await asyncio.sleep(0.05)
    assert got == expected


@pytest.mark.parametrize("name", [*QUERIES, *ANONYMOUS])
async def test_known_query_shortcut_matches_strawberry(name, world, api):
    if name in ANONYMOUS:
        query, variables, token = ANONYMOUS[name], None, None
    else:
        (query, variables), token = QUERIES[name], world["token"]
        variables = _fill(variables, world)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables}
    first = await api.client.post("/graphql", json=body, headers=headers)  # builds the app
    graphql = api.client._transport.app.routes[0].app.app  # the GraphQLApp behind the route
    schema = graphql.schema
    shortcuts = 0
    real = schema.execute_validated

    async def counted(*args):
        nonlocal shortcuts
        shortcuts += 1
        return await real(*args)

    schema.execute_validated = counted
    try:
        schema.documents.forget(query)
        plain = await api.client.post("/graphql", json=body, headers=headers)
        assert shortcuts == 0 and schema.documents.runnable(query) is not None
        fast = await api.client.post("/graphql", json=body, headers=headers)
        assert shortcuts == 1
    finally:
        del schema.execute_validated
    assert first.status_code == plain.status_code == fast.status_code
    assert fast.headers.get("content-type") == plain.headers.get("content-type")
    assert fast.json() == plain.json()


async def test_a_completion_that_depends_on_the_viewer_is_not_reused(world, api):
    query = ("query($h:String!){userTimeline(handle:$h){edges{node{id author{handle "
             "viewerIsFollowing}}}}}")

    async def following() -> set[bool]:
        d = await api.ok(query, {"h": world["HANDLE"]}, token=world["token"])
        return {e["node"]["author"]["viewerIsFollowing"] for e in d["userTimeline"]["edges"]}

    assert await following() == {True}
    await api.unfollow(world["token"], world["author_id"])
    try:
        assert await following() == {False}
    finally:
        await api.follow(world["token"], world["author_id"])
    assert await following() == {True}
