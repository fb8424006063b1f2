"""The ASGI application: GraphQL at /graphql, the seed REST adapters, health and metrics.

Run with `uvicorn app:create_app --factory`; `make dev` does that for you.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn
from cross_web import HTTPException
from graphql import OperationType, get_operation_ast
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

import web
from core import addresses, cursor
from core.errors import (
    HTTP_STATUS,
    BadInput,
    ChirpError,
    PersistedQueryNotFound,
    RateLimited,
    error_body,
)
from resolvers import media, timelines, tweets
from resolvers.context import Context, build_context
from runtime import collector, logscrub, metrics
from runtime.container import Services, open_services
from runtime.settings import Settings, load
from schema import build_schema
from schema.errors import formatted
from schema.persisted import PersistedQueries, trusted_texts
from services import limits
from storage import keys, object_server, outbox
from storage.objects import FileObjectStore
from subscriptions.hub import Hub
from subscriptions.hydrate import EventHydrator
from subscriptions.wire import LegacyWSHandler, RawSend, TransportWSHandler

log = logging.getLogger("chirp.app")


class GraphQLApp(GraphQL):
    # Live subscriptions: each operation's task learns how to frame and send its events,
    # so the hub can write shared events to its socket directly (subscriptions/wire.py).
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, services: Services) -> None:
        # Its executor (schema/compiled.py) extends the live one: a live event's selection
        # runs once per process, not once per subscription.
        settings = services.settings
        schema = build_schema(settings)
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self.services = services
        self.settings = settings
        self.hydrator = EventHydrator(services)
        self.hub = Hub(settings.redis_url, self.hydrator)
        self._hub_started = False
        self.proxies = addresses.networks(settings.trusted_proxies)
        self.persisted = PersistedQueries(services.redis, trusted_texts(settings))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            if not origin_allowed(scope, self.settings.cors_origins):
                return await send({"type": "websocket.close", "code": 4403})
            return await super().__call__(
                scope, _bounded_messages(receive, self.settings.max_ws_message_bytes), send)
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope, receive)
        if scope["method"] == "GET":
            refusal = self._check_get(request)
            response = refusal or await self._strawberry(request)
            return await response(scope, receive, send)
        if scope["method"] != "POST":
            return await super().__call__(scope, receive, send)
        # Strawberry's own HTTP handling, with a shortcut for the common request.
        response = None
        data = None
        content_type = request.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() == "application/json":
            try:
                data = orjson.loads(await request.body())
            except orjson.JSONDecodeError:  # also JSON nested deeper than orjson's 1024
                response = _refusal(BadInput("the body is not valid JSON"), 400)
            else:
                response = await self._prepare(request, data)
        if response is None and data is not None:
            response = await self._known_query(request, data)
        if response is None:
            response = await self._strawberry(request)
        await response(scope, receive, send)

    async def _strawberry(self, request: Request) -> Response:
        try:
            return await self.run(request)
        except HTTPException as e:
            return PlainTextResponse(e.reason, status_code=e.status_code)

    def _check_get(self, request: Request) -> Response | None:
        params = request.query_params
        query = params.get("query")
        if query is not None and len(query) > self.settings.max_query_bytes:
            return _refusal(_query_too_long(self.settings), 413)
        for name in ("variables", "extensions"):
            raw = params.get(name)
            if raw is not None:
                try:
                    orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return _refusal(BadInput(f"{name} is not valid JSON"), 400)
        return None

    async def _prepare(self, request: Request, data: Any) -> Response | None:
        """Checks of a decoded JSON body before any GraphQL runs: the query text's size and
        persisted queries (the hash resolved to its text, which replaces the body)."""
        if type(data) is not dict:
            return None  # Strawberry answers batches and junk with its own 400
        extensions = data.get("extensions")
        if type(extensions) is dict and "persistedQuery" in extensions:
            try:
                data["query"] = await self.persisted.resolve(
                    extensions["persistedQuery"], data.get("query"))
            except PersistedQueryNotFound as e:
                return _json(error_body(e))
            except BadInput as e:
                return _refusal(e, 400)
            rest = {k: v for k, v in extensions.items() if k != "persistedQuery"}
            data["extensions"] = rest or None
            request._body = orjson.dumps(data)
            request.__dict__.pop("_json", None)
        query = data.get("query")
        if type(query) is str and len(query) > self.settings.max_query_bytes:
            return _refusal(_query_too_long(self.settings), 413)
        return None

    async def _known_query(self, request: Request, data: Any) -> Response | None:
        """A JSON POST of one query whose text already passed every text-only check
        (ChirpSchema.documents, runnable) is executed directly; None for anything else,
        which takes Strawberry's path. The answer is the one that path gives: same
        execution, cost check, time budget, errors and extensions, same status and
        headers."""
        accept = request.headers.get("accept", "")
        if "multipart" in accept or "event-stream" in accept:
            return None
        if type(data) is not dict or data.get("extensions") is not None:
            return None
        query, variables = data.get("query"), data.get("variables")
        name = data.get("operationName")
        if type(query) is not str or not (variables is None or type(variables) is dict) \
                or not (name is None or type(name) is str):
            return None
        entry = self.schema.documents.runnable(query)
        if entry is None:
            return None
        operation = get_operation_ast(entry.document, name)
        if operation is None or operation.operation != OperationType.QUERY:
            return None
        root_value = await self.get_root_value(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        try:
            context.check_read()
        except RateLimited as e:
            result = self.schema.refused(e)
        else:
            result = await self.schema.execute_validated(entry, variables, context, root_value,
                                                         name)
        response_data = await self.process_result(request, result)
        response = Response(orjson.dumps(response_data), media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def get_context(self, request: Any, response: Any = None) -> Context:
        context = await build_context(
            self.services, request.headers.get("authorization"),
            request=request, response=response,
            address=addresses.client_address(
                request.client.host if request.client else None,
                request.headers.get("x-forwarded-for"), self.proxies),
        )
        with contextlib.suppress(AttributeError):
            request.state.chirp_context = context
        if request.scope.get("type") == "websocket":
            if not self._hub_started:  # one pub/sub connection per process, on first use
                self._hub_started = True
                await self.hub.start()
            context.hub, context.hydrator = self.hub, self.hydrator
        return context

    async def on_ws_connect(self, context: Context) -> None:
        """Auth from the connection_init payload {"authorization": "Bearer <jwt>"}: a bad
        token closes the socket (4403); none leaves public subscriptions usable."""
        params = context.connection_params or {}
        authorization = params.get("authorization") or params.get("Authorization")
        if authorization is not None:
            await context.authenticate(authorization if isinstance(authorization, str) else "")
            if context.auth_error is not None:
                raise ConnectionRejectionError({"message": str(context.auth_error)})
        return None

    async def shutdown(self) -> None:
        if self._hub_started:
            await self.hub.stop()

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        out: GraphQLHTTPResponse = {"data": result.data}
        state = getattr(request, "state", None)
        if result.errors:
            out["errors"] = [formatted(e) for e in result.errors]
            context = getattr(state, "chirp_context", None)
            if context is not None:
                for e in result.errors:  # a refusal's rate-limit headers, Retry-After too
                    context.note(getattr(e.original_error, "verdict", None))
        extensions = dict(result.extensions or {})
        if getattr(state, "chirp_degraded", False):
            extensions["degraded"] = True
        if extensions:
            out["extensions"] = extensions
        return out

    def encode_json(self, data: object) -> str:
        # str, not bytes: WebSocket clients expect text frames.
        return orjson.dumps(data).decode()


def origin_allowed(scope: dict, origins: tuple[str, ...]) -> bool:
    """A WebSocket from a browser page carries its Origin: allowed when it is this host's
    own (the /live page) or listed in CHIRP_CORS_ORIGINS. Clients that send none (not
    browsers) are not subject to it."""
    headers = dict(scope.get("headers") or ())
    origin = headers.get(b"origin")
    if origin is None:
        return True
    text = origin.decode("latin-1")
    if "*" in origins or text in origins:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return text.partition("://")[2] == host


def _bounded_messages(receive, max_bytes: int):
    """A WebSocket message over the limit closes the socket (1009, "message too big")
    before any handler parses it."""
    async def bounded() -> dict:
        message = await receive()
        if message["type"] == "websocket.receive":
            size = len(message.get("text") or "") + len(message.get("bytes") or b"")
            if size > max_bytes:
                raise _TooBig()
        return message
    return bounded


class _TooBig(Exception):
    pass


class BodyLimit:
    """Bodies over CHIRP_MAX_BODY_BYTES are refused with 413 before anything reads them; a
    WebSocket message over CHIRP_MAX_WS_MESSAGE_BYTES closes its socket with 1009."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            try:
                return await self.app(scope, receive, send)
            except _TooBig:
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": 1009})
                return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        if scope["path"].startswith(object_server.PREFIX):
            # An upload's length is signed into its URL (at most CHIRP_MEDIA_MAX_BYTES),
            # checked before its body is read.
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and (
                    not value.isdigit() or int(value) > self.max_bytes):
                return await self._too_large(scope, receive, send)
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(body)
            if not message.get("more_body"):
                break
        whole = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        error = BadInput(f"the body is larger than {self.max_bytes} bytes",
                         maxBodyBytes=self.max_bytes)
        await _refusal(error, 413)(scope, receive, send)


# ----------------------------------------------------------------------- REST adapters

def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def _refusal(e: ChirpError, status: int) -> Response:
    """A request refused before GraphQL runs: GraphQL's error shape, an HTTP status."""
    return _json(error_body(e), status)


def _query_too_long(settings: Settings) -> BadInput:
    return BadInput(f"the query text is longer than {settings.max_query_bytes} bytes",
                    maxQueryBytes=settings.max_query_bytes)


def _error(e: ChirpError) -> Response:
    verdict = getattr(e, "verdict", None)
    if verdict is not None:
        headers = limits.headers(verdict)
    elif e.code == "RATE_LIMITED":
        headers = {"Retry-After": str(e.extensions["retryAfter"])}
    else:
        headers = None
    body = {"error": {"code": e.code, "message": e.message, **e.extensions}}
    return _json(body, HTTP_STATUS.get(e.code, 500), headers)


def _tweet_json(t, author, media_of_tweet, library) -> dict[str, Any]:
    return {
        "id": str(t.id), "text": t.text, "created_at": t.created_at.isoformat(),
        "author": {"id": str(author.id), "handle": author.handle,
                   "display_name": author.display_name} if author else None,
        "media": [_media_json(m, library) for m in media_of_tweet],
    }


def _media_json(m, library) -> dict[str, Any]:
    return {
        "id": str(m.id), "state": m.state, "content_type": m.content_type, "width": m.width,
        "height": m.height, "alt_text": m.alt_text, "url": library.main_url(m),
        "variants": [{"name": v.name, "url": library.url_of(v.key), "width": v.width,
                      "height": v.height, "content_type": v.content_type,
                      "byte_size": v.byte_size} for v in m.variants],
    }


async def _rest_context(request: Request) -> Context:
    services: Services = request.app.state.services
    return await build_context(
        services, request.headers.get("authorization"), request=request,
        address=addresses.client_address(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            addresses.networks(services.settings.trusted_proxies)),
    )


async def post_tweet(request: Request) -> Response:
    try:
        ctx = await _rest_context(request)
        ctx.require_viewer()
        key = request.headers.get("idempotency-key")
        if key is None:
            raise BadInput("POST /v1/tweets needs an Idempotency-Key header",
                           field="Idempotency-Key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadInput("body must be JSON: {\"text\": \"...\"}") from None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise BadInput("body must be JSON: {\"text\": \"...\"}", field="text")
        tweet = await tweets.post(ctx, body["text"], key, body.get("media_ids"))
        author = await ctx.loaders.users.load(tweet.author_id)
        (attached,) = await media.of_tweets(ctx, [tweet.id])
    except ChirpError as e:
        return _error(e)
    return _json(_tweet_json(tweet, author, attached, ctx.services.media), 201)


async def home_timeline(request: Request) -> Response:
    q = request.query_params
    try:
        ctx = await _rest_context(request)
        limit = q.get("limit", "20")
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 3):
            raise BadInput("limit must be an integer between 1 and 100", field="limit")
        ctx.require_viewer()
        verdict = ctx.services.limits.read(ctx.viewer_id)  # type: ignore[arg-type]
        page = await timelines.home(ctx, int(limit), q.get("cursor"), q.get("since_id"))
        attached = await media.of_tweets(ctx, [t.id for t in page.tweets])
    except ChirpError as e:
        return _error(e)
    authors = page.authors or {}
    library = ctx.services.media
    items = [_tweet_json(t, authors.get(t.author_id), m, library)
             for t, m in zip(page.tweets, attached, strict=True)]
    next_cursor = cursor.encode(cursor.TWEET, page.tweets[-1].id) if page.has_next else None
    return _json({"tweets": items, "next_cursor": next_cursor, "degraded": page.degraded},
                 headers=limits.headers(verdict))


# ----------------------------------------------------------------------- live page

WEB = web.DIR
GRAPHQL_WS_JS = WEB / "node_modules" / "graphql-ws" / "umd" / "graphql-ws.min.js"


async def live_page(request: Request) -> Response:
    return FileResponse(WEB / "live.html", media_type="text/html")


async def live_client_js(request: Request) -> Response:
    """The reference graphql-ws browser client, installed from npm by `make web`."""
    if not GRAPHQL_WS_JS.exists():
        return Response("graphql-ws is not installed: run `make web`", 404,
                        media_type="text/plain")
    return FileResponse(GRAPHQL_WS_JS, media_type="text/javascript")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def internal_allowed(request: Request) -> bool:
    """/metrics and the detail of /readyz: always on the internal port; on the public one
    with `Authorization: Bearer $CHIRP_METRICS_TOKEN`, or without a token set only outside
    production and when there is no internal port."""
    if getattr(request.app.state, "internal", False):
        return True
    settings: Settings = request.app.state.services.settings
    token = settings.metrics_token
    if token is None:
        return not settings.production and settings.internal_port is None
    sent = request.headers.get("authorization", "")
    return secrets.compare_digest(sent.encode(), f"Bearer {token}".encode())


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}

    async def check(name: str, probe) -> None:
        try:
            await asyncio.wait_for(probe(), 2.0)
            checks[name] = "ok"
        except Exception as e:  # any failure means not ready; say which and why
            checks[name] = f"error: {type(e).__name__}: {e}"[:200]

    await asyncio.gather(*(check(name, probe) for name, probe in services.probes().items()))
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"ready": ready}
    if internal_allowed(request):
        body["checks"] = checks
    return JSONResponse(body, 200 if ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    if not internal_allowed(request):
        return PlainTextResponse("not found", 404)
    services: Services = request.app.state.services
    with contextlib.suppress(Exception):
        metrics.FANOUT_LAG.set(await services.bus.lag())
        metrics.FANOUT_DELIVERIES.set(int(await services.redis.get(keys.DELIVERIES) or 0))
        metrics.DEAD_LETTERS.set(await services.bus.dead_count())
    with contextlib.suppress(Exception):
        metrics.OUTBOX_PENDING.set(await outbox.pending(services.pool))
        archived, objects = await services.archive.totals()
        metrics.ARCHIVED_TWEETS.set(archived)
        metrics.ARCHIVE_OBJECTS.set(objects)
    if services.caches is not None:
        services.caches.report()
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


class LatencyMiddleware:
    """Request latency by route; a plain ASGI wrapper, cheap on the hot path."""

    ROUTES = {"/graphql", "/v1/tweets", "/v1/timeline/home", "/healthz", "/readyz", "/metrics"}

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope["path"] if scope["path"] in self.ROUTES else "other"
            metrics.REQUEST_SECONDS.labels(route, scope["method"]).observe(
                time.perf_counter() - start
            )


class _QuietServer(uvicorn.Server):
    """A second listener in the API's process: the main server handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def internal_app(services: Services) -> Starlette:
    """The operators' port (CHIRP_INTERNAL_PORT): /metrics and the detailed /readyz with
    no token. Bind it where only operators reach it."""
    app = Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz),
                            Route("/metrics", metrics_endpoint)])
    app.state.services = services
    app.state.internal = True
    return app


@contextlib.asynccontextmanager
async def internal_server(services: Services) -> AsyncIterator[None]:
    settings = services.settings
    if settings.internal_port is None:
        yield
        return
    where = (settings.internal_host, settings.internal_port)
    try:
        family = socket.getaddrinfo(*where, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server(where, family=family)
    except OSError as e:  # fail the API's start-up, naming the setting
        raise RuntimeError(f"CHIRP_INTERNAL_HOST/PORT {where}: {e}") from None
    server = _QuietServer(uvicorn.Config(internal_app(services), lifespan="off",
                                         access_log=False, log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # serving within a few ms: the socket is bound already
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    """The app; with `services` given (tests) it uses them instead of opening its own."""
    settings = settings or (services.settings if services else load())
    holder: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await open_services(settings)
        holder["s"] = app.state.services
        if owned:  # a server process: build everything now, then keep it out of the GC
            logscrub.install()
            graphql.app = graphql.app or GraphQLApp(app.state.services)
            collector.freeze_startup()
        try:
            async with internal_server(app.state.services) if owned \
                    else contextlib.nullcontext():
                yield
        finally:
            if graphql.app is not None:
                await graphql.app.shutdown()
            if owned:
                await app.state.services.close()

    class LazyGraphQL:
        """The GraphQL app needs the services, which exist only once lifespan has run."""

        def __init__(self) -> None:
            self.app: GraphQLApp | None = None

        async def __call__(self, scope, receive, send) -> None:
            if self.app is None:
                self.app = GraphQLApp(holder["s"])
            await self.app(scope, receive, send)

    def served_store(name: str) -> FileObjectStore | None:
        """The media store, when it is a directory the API serves (CHIRP_MEDIA_STORE=file)."""
        store = holder["s"].media.store if name == "media" and "s" in holder else None
        return store if isinstance(store, FileObjectStore) else None

    graphql = LazyGraphQL()
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/v1/tweets", post_tweet, methods=["POST"]),
            Route("/v1/timeline/home", home_timeline, methods=["GET"]),
            Route("/live", live_page),
            Route("/live/graphql-ws.js", live_client_js),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *object_server.routes(served_store),
        ],
        lifespan=lifespan,
    )
    if services is not None:
        app.state.services = services
        holder["s"] = services
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "idempotency-key", "accept"],
            expose_headers=["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                            "Retry-After"],
            max_age=600,
        )
    app.add_middleware(LatencyMiddleware)
    if settings.public_url is None:
        app.add_middleware(object_server.RequestBase)
    app.add_middleware(RawSend)  # added last: outermost, so it sees the server's own send
    return app
