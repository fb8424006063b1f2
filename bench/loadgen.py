"""HTTP load generator for the benchmarks, open or closed loop (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import struct
import time
from pathlib import Path

import numpy as np


def build_requests(kind: str, port: int, tokens: list[str], body: bytes = b"",
                   path: str = "/graphql") -> list[bytes]:
    """One request per token: POST `body` to `path` (kind "post") or GET `path`."""
    out = []
    for token in tokens:
        head = (f"{'POST' if kind == 'post' else 'GET'} {path} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n")
        if kind == "post":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        out.append((head + "\r\n").encode() + (body if kind == "post" else b""))
    return out


def write_requests(path: Path, requests: list[bytes]) -> None:
    with open(path, "wb") as f:
        for r in requests:
            f.write(struct.pack("<I", len(r)))
            f.write(r)


def read_requests(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


class _Conn(asyncio.Protocol):
    __slots__ = ("gen", "transport", "buf", "intended", "sent", "alive")

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.intended = 0.0
        self.sent = 0.0
        self.alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.alive = False
        self.gen.lost(self)

    def send(self, request: bytes, intended: float) -> None:
        self.intended = intended
        self.sent = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            i = head.lower().find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0
                              else len(head)]) if i >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            body = buf[end + 4:end + 4 + length]
            buf = buf[end + 4 + length:]
            status = head[9:12]
            self.gen.done(self, status == b"200" and b'"errors"' not in body[:200000])
        self.buf = buf


class _Generator:
    def __init__(self, requests: list[bytes], seed: int) -> None:
        self.requests = requests
        rng = np.random.default_rng(seed)
        self.order = rng.permutation(len(requests)).tolist()
        self.next = 0
        self.idle: list[_Conn] = []
        self.backlog: collections.deque[float] = collections.deque()
        self.latencies: list[float] = []
        self.ends: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.inflight = 0
        self.closed_loop = False
        self.once = False  # closed loop sending each request exactly once
        self.finished = asyncio.Event()  # set when `once` has had every answer
        self.stop_at = float("inf")
        self.conns: list[_Conn] = []

    def _request(self) -> bytes:
        r = self.requests[self.order[self.next % len(self.order)]]
        self.next += 1
        return r

    def dispatch(self, intended: float) -> None:
        if self.idle:
            conn = self.idle.pop()
            self.inflight += 1
            conn.send(self._request(), intended)
            self.lags.append(conn.sent - intended)
        else:
            self.backlog.append(intended)

    def done(self, conn: _Conn, ok: bool) -> None:
        now = time.perf_counter()
        self.inflight -= 1
        self.latencies.append(now - conn.intended)
        self.ends.append(now)
        if not ok:
            self.errors += 1
        if self.backlog:
            intended = self.backlog.popleft()
            self.inflight += 1
            conn.send(self._request(), intended)
            self.lags.append(conn.sent - intended)
        elif self.closed_loop and now < self.stop_at and not (
                self.once and self.next >= len(self.order)):
            self.inflight += 1
            conn.send(self._request(), now)
        else:
            self.idle.append(conn)
            if self.once and not self.inflight:
                self.finished.set()

    def lost(self, conn: _Conn) -> None:
        if conn in self.idle:
            self.idle.remove(conn)


async def run(host: str, port: int, requests: list[bytes], rate: float, seconds: float,
              connections: int, grace: float, seed: int, once: bool = False) -> dict:
    loop = asyncio.get_running_loop()
    gen = _Generator(requests, seed)
    gen.once = once
    for _ in range(connections):
        _t, conn = await loop.create_connection(lambda: _Conn(gen), host, port)
        gen.conns.append(conn)
        gen.idle.append(conn)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter() + 0.02
    if rate <= 0:
        gen.closed_loop = True
        gen.stop_at = t0 + seconds
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        for _ in range(min(connections, len(requests)) if once else connections):
            gen.dispatch(time.perf_counter())
        if once:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gen.finished.wait(), seconds)
        else:
            await asyncio.sleep(seconds)
        sent = gen.next
    else:
        total = int(rate * seconds)
        interval = 1.0 / rate
        i = 0
        while i < total:
            now = time.perf_counter()
            due = t0 + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < total and t0 + i * interval <= now:
                gen.dispatch(t0 + i * interval)
                i += 1
        sent = total
    for _ in range(int(grace / 0.005)):  # let the last answers arrive
        if not (gen.inflight or gen.backlog):
            break
        await asyncio.sleep(0.005)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    now = time.perf_counter()
    # Unanswered at the deadline: their wait so far is a lower bound of their latency.
    waiting = list(gen.backlog) + [c.intended for c in gen.conns
                                   if c.alive and c not in gen.idle]
    timeouts = len(waiting) if not gen.closed_loop else 0
    for c in gen.conns:
        c.transport.close()
    return {
        "mode": "closed" if rate <= 0 else "open",
        "offered_rps": rate,
        "seconds": seconds,
        "connections": connections,
        "sent": sent,
        "completed": len(gen.latencies),
        "errors": gen.errors,
        "timeouts": timeouts,
        "client_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                              3),
        "latencies": np.array(gen.latencies + [now - w for w in waiting][:timeouts]),
        "ends": np.array(gen.ends) - t0,
        "lag": np.array(gen.lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=0, help="requests/s; 0: closed loop")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--grace", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--once", action="store_true",
                        help="closed loop: send each request once, then stop (warm-ups)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(run(args.host, args.port, read_requests(args.requests), args.rate,
                            args.seconds, args.connections, args.grace,
                            args.seed or os.getpid(), args.once))
    np.savez(args.out, latencies=result.pop("latencies"), lag=result.pop("lag"),
             ends=result.pop("ends"))
    args.out.with_suffix(".json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
