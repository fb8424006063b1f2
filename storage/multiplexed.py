"""One pipelined connection to a Redis server for the read path's hot calls (docs/modules.md).

Callers share one connection: the commands sent in one turn of the event loop go out in
one write, and replies are matched to callers in order. Errors are redis-py's own classes,
so callers handle a failure here exactly as one from the redis-py client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError, InvalidResponse
from redis.exceptions import TimeoutError as ReadTimeout

from storage.redis_client import CONNECT_TIMEOUT_S, READ_TIMEOUT_S


class _Line(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reader = hiredis.Reader(protocolError=InvalidResponse,
                                     replyError=BaseParser.parse_error)
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                future = self.waiting.popleft()[0]
                if future.done():
                    continue  # its caller gave up: the reply is dropped in order
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (InvalidResponse, IndexError) as e:  # garbage, or a reply nobody asked for
            self.fail(ConnectionError(f"Redis protocol error: {e!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis connection lost: {exc or 'closed by server'}"))

    def fail(self, error: Exception) -> None:
        """Closes the line, failing every call still waiting."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(error)

    def call(self, payload: bytes) -> asyncio.Future:
        future = self.loop.create_future()
        self.waiting.append((future, self.loop.time()))
        self.out.append(payload)
        if len(self.out) == 1:
            self.loop.call_soon(self._flush)
        if self.timer is None:
            self.timer = self.loop.call_later(self.timeout, self._check)
        return future

    def _flush(self) -> None:
        if not self.closed:
            self.transport.write(b"".join(self.out))  # type: ignore[union-attr]
        self.out.clear()

    def _check(self) -> None:
        """One timer per line, not one per call: the oldest call waiting past the timeout
        fails the line, as redis-py's socket timeout fails its connection."""
        self.timer = None
        if not self.waiting:
            return
        late = self.waiting[0][1] + self.timeout - self.loop.time()
        if late <= 0:
            self.fail(ReadTimeout("Timeout reading from Redis"))
        else:
            self.timer = self.loop.call_later(late, self._check)


class MultiplexedRedis:
    """Commands that may run twice: one lost connection is retried once on a new one, as
    the redis-py client is configured (storage/redis_client.py)."""

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, db: int = 0,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 timeout: float = READ_TIMEOUT_S) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.db = username, password, db
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._line: _Line | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MultiplexedRedis | None:
        """For a redis:// URL; None for anything else (TLS, a socket file, a cluster)."""
        if not url.startswith("redis://"):
            return None
        parts = parse_url(url)
        return cls(parts.get("host", "localhost"), int(parts.get("port", 6379)),
                   username=parts.get("username"), password=parts.get("password"),
                   db=int(parts.get("db", 0)), **options)

    async def execute(self, *args: Any) -> Any:
        payload = hiredis.pack_command(args)
        line = self._line
        if line is None or line.closed:
            line = await self._connect()
        try:
            return await line.call(payload)
        except ConnectionError:
            return await (await self._connect()).call(payload)

    async def _connect(self) -> _Line:
        async with self._lock:
            if self._line is not None and not self._line.closed:
                return self._line
            loop = asyncio.get_running_loop()
            try:
                _transport, line = await asyncio.wait_for(
                    loop.create_connection(lambda: _Line(self.timeout), self.host, self.port),
                    self.connect_timeout)
            except OSError as e:  # the connect timeout's TimeoutError too
                raise ConnectionError(f"Error connecting to {self.host}:{self.port}: {e!r}") \
                    from e
            try:
                if self.password is not None:
                    auth = ("AUTH", self.username, self.password) if self.username \
                        else ("AUTH", self.password)
                    await line.call(hiredis.pack_command(auth))
                if self.db:
                    await line.call(hiredis.pack_command(("SELECT", self.db)))
            except BaseException:
                line.fail(ConnectionError("Redis connection set-up failed"))
                raise
            self._line = line
            return line

    async def aclose(self) -> None:
        if self._line is not None:
            self._line.fail(ConnectionError("closed"))
            self._line = None
