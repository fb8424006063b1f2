"""The API as the benchmarks run it, with floors (docs/benchmarks.md)."""

from __future__ import annotations

import inspect
import os
from contextvars import ContextVar

import orjson
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import app as chirp
from core import cursor
from core.errors import ChirpError
from resolvers import timelines
from resolvers.context import build_context
from runtime import container, metrics
from services.feed import FeedManager, Page

QUERY = ("query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text createdAt "
         "author{id handle displayName}}} pageInfo{hasNextPage endCursor}}}")


async def _awaited(value):
    """A value, or what it resolves to (older revisions built the context synchronously:
    a before-run of an older commit with this bench)."""
    return await value if inspect.isawaitable(value) else value


async def home_page_json(services, authorization: str | None, first: int,
                         request=None) -> bytes:
    """The GraphQL answer to QUERY, built without GraphQL."""
    ctx = await _awaited(build_context(services, authorization, request=request))
    page = await timelines.home(ctx, first, None, None)
    authors = page.authors or {}
    edges = []
    for t in page.tweets:
        a = authors[t.author_id]
        edges.append({
            "cursor": cursor.encode(cursor.TWEET, t.id),
            "node": {"id": str(t.id), "text": t.text, "createdAt": t.created_at.isoformat(),
                     "author": {"id": str(a.id), "handle": a.handle,
                                "displayName": a.display_name}},
        })
    body: dict = {"data": {"homeTimeline": {
        "edges": edges,
        "pageInfo": {"hasNextPage": page.has_next,
                     "endCursor": edges[-1]["cursor"] if edges else None},
    }}}
    if page.degraded:
        body["extensions"] = {"degraded": True}
    return orjson.dumps(body)


async def plain_home(request: Request) -> Response:
    services = request.app.state.services
    try:
        body = await home_page_json(services, request.headers.get("authorization"),
                                    int(request.query_params.get("first", "20")), request)
    except ChirpError as e:
        return Response(orjson.dumps({"error": e.code}), 400, media_type="application/json")
    return Response(body, media_type="application/json")


def pull_home_page(feed: FeedManager):
    """FeedManager.home_page as fan-out-on-read: the page straight from the tweet store."""

    async def home_page(viewer: int, first: int, before: int, since: int, load,
                        fence=None) -> Page:
        followed = await feed.followed(viewer)
        got = await feed.tweets.by_authors(sorted(followed.allowed), before, since, first + 1)
        return Page(got[:first], len(got) > first, False)

    return home_page


class _PullMode:
    """Switches the FeedManager to pull before the first request."""

    def __init__(self, app) -> None:
        self.app = app
        self.switched = False

    async def __call__(self, scope, receive, send) -> None:
        if not self.switched and scope["type"] in ("http", "websocket"):
            feed = self.app.state.services.feed
            feed.home_page = pull_home_page(feed)
            self.switched = True
        await self.app(scope, receive, send)


QUERIES = Counter("chirp_bench_postgres_queries_total",
                  "PostgreSQL queries sent by this API process", registry=metrics.REGISTRY)


# Set while /metrics is served: its gauges query PostgreSQL, and those are not a read's.
_SCRAPING: ContextVar[bool] = ContextVar("scraping", default=False)


def _count(_record) -> None:
    # asyncpg calls query loggers through call_soon, in the querying task's context.
    if not _SCRAPING.get():
        QUERIES.inc()


def _counting_connect(connect):
    async def counted(url: str, size: int = 10, on_query=None):
        return await connect(url, size, on_query or _count)

    return counted


class _Scrapes:
    """Marks the handling of /metrics (see _SCRAPING)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            token = _SCRAPING.set(True)
            try:
                await self.app(scope, receive, send)
            finally:
                _SCRAPING.reset(token)
            return
        await self.app(scope, receive, send)


def create_app():
    container.postgres.connect = _counting_connect(container.postgres.connect)
    application = chirp.create_app()
    application.router.routes.append(Route("/bench/home", plain_home, methods=["GET"]))
    if os.environ.get("BENCH_FEED") == "pull":
        return _Scrapes(_PullMode(application))
    return _Scrapes(application)
