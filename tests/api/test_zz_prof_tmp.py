import cProfile
import json
import pstats
import time

import pytest

from bench.app import QUERY as HOME
from tests.api.test_round_trips import _graph
from tests.conftest import api_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_profile(stack):
    async with api_with(stack) as api:
        viewer, _c, _v, _cs = await _graph(api)
        app = api.client._transport.app
        body = json.dumps({"query": HOME, "variables": {"f": 20}}).encode()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
                 "server": ("127.0.0.1", 8000),
                 "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                             (b"authorization", f"Bearer {viewer}".encode()),
                             (b"content-length", str(len(body)).encode())]}
        out = []

        async def one():
            sent = False

            async def receive():
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(m):
                if m["type"] == "http.response.body":
                    out.append(m["body"])

            await app(dict(scope), receive, send)

        for _ in range(100):
            await one()
        assert b'"errors"' not in out[-1], out[-1][:300]
        n = 2000
        t0 = time.process_time()
        for _ in range(n):
            await one()
        cpu = time.process_time() - t0
        print(f"\nCPU per read, no profiler {cpu * 1000 / n:.3f} ms")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            await one()
        prof.disable()
        prof.dump_stats("/tmp/rp-prof/home.prof")
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
