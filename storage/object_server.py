"""The file store's HTTP face, as S3 would serve a bucket (docs/modules.md)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from storage.objects import FileObjectStore, UploadRefused

PREFIX = "/objects/"

# The address the current request reached the API at, when no CHIRP_PUBLIC_URL says it.
REQUEST_BASE: ContextVar[str | None] = ContextVar("chirp_request_base", default=None)

# Keys are immutable (a new upload gets a new key): caches may keep objects for good.
IMMUTABLE = "public, max-age=31536000, immutable"


def routes(store_named: Callable[[str], FileObjectStore | None]) -> list[Route]:
    """The routes serving the file stores `store_named` finds by name."""

    def store_for(request: Request) -> FileObjectStore | None:
        return store_named(request.path_params["store"])

    async def put_object(request: Request) -> Response:
        store = store_for(request)
        if store is None:
            return PlainTextResponse("no such store", 404)
        key = request.path_params["key"]
        q = request.query_params
        try:
            size = store.check_upload(
                key, q.get("expires", ""), q.get("signature", ""),
                request.headers.get("content-type", ""), request.headers.get("content-length"),
            )
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > size:
                    raise UploadRefused(400, "the body is longer than its Content-Length")
            if len(body) != size:
                raise UploadRefused(400, "the body is shorter than its Content-Length")
        except UploadRefused as e:
            return PlainTextResponse(e.reason, e.status)
        except ClientDisconnect:
            return PlainTextResponse("the upload was cut short", 400)
        await store.put(key, bytes(body), request.headers["content-type"])
        return Response(status_code=200)

    async def get_object(request: Request) -> Response:
        store = store_for(request)
        key = request.path_params["key"]
        try:
            info = await store.head(key) if store is not None else None
        except ValueError:
            info = None
        if store is None or info is None:
            return PlainTextResponse("no such object", 404)
        return FileResponse(
            store.data_path(key), media_type=info.content_type,
            headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )

    path = PREFIX + "{store}/{key:path}"
    return [
        Route(path, put_object, methods=["PUT"]),
        Route(path, get_object, methods=["GET", "HEAD"]),
    ]


def request_base_or(default: str) -> Callable[[], str]:
    """The API's address as the current request reached it (RequestBase), else `default`."""

    def base() -> str:
        return REQUEST_BASE.get() or default

    return base


class RequestBase:
    """Notes the address a request reached (for file URLs without CHIRP_PUBLIC_URL)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if not host:
            return await self.app(scope, receive, send)
        scheme = {"ws": "http", "wss": "https"}.get(scope["scheme"], scope["scheme"])
        token = REQUEST_BASE.set(f"{scheme}://{host.decode('latin-1')}")
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_BASE.reset(token)
