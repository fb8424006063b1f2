"""The operators' port on a real uvicorn process: /metrics and the detailed /readyz with no
token there, while the public port serves them only with the token."""

from __future__ import annotations

import httpx
import pytest

from deploy.local.ports import free_port
from tests.live.conftest import api_process

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "m" * 32


async def test_internal_port_serves_metrics_without_a_token(stack):
    port = free_port()
    with api_process(stack, stack.redis_url, CHIRP_ENV="production",
                     CHIRP_JWT_SECRET="s" * 40, CHIRP_INTERNAL_PORT=str(port),
                     CHIRP_METRICS_TOKEN=TOKEN) as public:
        internal = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(internal + "/metrics")
            assert r.status_code == 200 and "chirp_request_seconds" in r.text
            ready = (await c.get(internal + "/readyz")).json()
            assert ready["ready"] and set(ready["checks"].values()) == {"ok"}, ready
            assert (await c.get(internal + "/graphql")).status_code == 404
            assert (await c.post(internal + "/graphql", json={"query": "{viewer{id}}"})
                    ).status_code == 404
            # the public port: only with the token
            assert (await c.get(public + "/metrics")).status_code == 404
            assert "checks" not in (await c.get(public + "/readyz")).json()
            auth = {"authorization": f"Bearer {TOKEN}"}
            assert (await c.get(public + "/metrics", headers=auth)).status_code == 200
            assert "checks" in (await c.get(public + "/readyz", headers=auth)).json()


async def test_public_port_closes_without_a_token_once_an_internal_port_exists(stack):
    port = free_port()
    with api_process(stack, stack.redis_url, CHIRP_INTERNAL_PORT=str(port)) as public:
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await c.get(public + "/metrics")).status_code == 404
            assert "checks" not in (await c.get(public + "/readyz")).json()
            assert (await c.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
