"""Real servers for the whole suite, and helpers to talk GraphQL to the app (docs/testing.md)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app import create_app
from deploy.local.postgres import EmbeddedPostgres
from deploy.local.valkey import EmbeddedValkey
from runtime.container import Services, open_services
from runtime.settings import Settings, load
from storage import outbox
from workers.fanout import _apply

SCALE_STACK = "scale"
TEST_STACK = os.environ.get("CHIRP_TEST_STACK") or "default"
if TEST_STACK == "kafka-cassandra":
    TEST_STACK = SCALE_STACK
assert TEST_STACK in ("default", SCALE_STACK), f"CHIRP_TEST_STACK={TEST_STACK!r}"
CLUSTER = TEST_STACK == SCALE_STACK  # Redis is the local Valkey cluster


# The suite signs up, logs in and follows far more from one address than a person would;
# tests of the limits themselves set them back (tests/api/test_hardening.py).
RELAXED_LIMITS = {
    "CHIRP_SIGNUP_RATE_PER_HOUR": "1000000",
    "CHIRP_LOGIN_RATE_PER_MINUTE": "1000000",
    "CHIRP_LOGIN_IP_RATE_PER_MINUTE": "1000000",
    "CHIRP_FOLLOW_RATE_PER_HOUR": "1000000",
    "CHIRP_READ_RATE_PER_MINUTE": "10000000",
}


@dataclass
class Stack:
    root: Path
    postgres: EmbeddedPostgres
    valkey: EmbeddedValkey
    postgres_url: str
    redis_url: str  # the suite's Redis: the embedded Valkey, or the cluster's URL
    # CHIRP_* settings choosing the event bus and tweet store (empty: the defaults).
    backend_env: dict[str, str]
    backends: Any = None  # tests.backends.Backends when Kafka and Cassandra are in use


def scale_backend_env(backends: Any, tag: str) -> dict[str, str]:
    """Settings that put this session on Kafka and Cassandra, isolated by `tag`."""
    return {
        "CHIRP_EVENT_BUS": f"kafka://{backends.kafka_bootstrap}",
        "CHIRP_KAFKA_TOPIC": f"chirp.test.{tag}",
        "CHIRP_KAFKA_PARTITIONS": "6",
        "CHIRP_TWEET_STORE": f"cassandra://{backends.cassandra.contact_points[0]}:"
                             f"{backends.cassandra.port}/chirp_test_{tag}",
        "CHIRP_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
    }


@contextlib.contextmanager
def embedded_stack(root: Path, backend_env: dict[str, str] | None = None,
                   backends: Any = None) -> Iterator[Stack]:
    """A PostgreSQL and a Valkey of its own under `root`, stopped on exit."""
    pg = EmbeddedPostgres(root / "pg")
    vk = EmbeddedValkey(root / "valkey")
    pg_url = pg.start()
    try:
        redis_url = vk.start()
        if backends is not None:
            redis_url = backends.valkey_cluster.url
        yield Stack(root, pg, vk, pg_url, redis_url, backend_env or {}, backends)
    finally:
        vk.stop()
        pg.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    backends, backend_env = None, {}
    if TEST_STACK == SCALE_STACK:
        from tests.backends import ensure_backends

        backends = ensure_backends()
        backend_env = scale_backend_env(backends, secrets.token_hex(4))
    with embedded_stack(tmp_path_factory.mktemp("stack"), backend_env, backends) as found:
        yield found


def make_settings(stack: Stack, redis_url: str | None = None, **overrides: Any) -> Settings:
    env = {
        "CHIRP_ENV": "test",
        "CHIRP_POSTGRES_URL": stack.postgres_url,
        "CHIRP_REDIS_URL": redis_url or stack.redis_url,
        "CHIRP_DATA_DIR": str(stack.root / "data"),
        "CHIRP_CELEBRITY_THRESHOLD": "5",
        "CHIRP_TWEET_RATE_PER_HOUR": "100000",
        **RELAXED_LIMITS,
        **stack.backend_env,
    }
    env.update({f"CHIRP_{k.upper()}": str(v) for k, v in overrides.items()})
    return load(env)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(stack) -> AsyncIterator[Services]:
    svc = await open_services(make_settings(stack), claim_idle_ms=500)
    yield svc
    await svc.close()


class Api:
    """A GraphQL client over the real app (in-process ASGI), with shortcuts."""

    def __init__(self, client: httpx.AsyncClient, services: Services) -> None:
        self.client = client
        self.services = services

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def ok(self, query: str, variables: dict | None = None, token: str | None = None):
        body = await self.gql(query, variables, token)
        assert "errors" not in body, body
        return body["data"]

    async def sign_up(self, prefix: str = "u") -> tuple[str, int, str]:
        handle = f"{prefix}{secrets.token_hex(4)}"[:15]
        d = await self.ok(
            "mutation($h:String!){signUp(handle:$h,password:\"password123\"){token user{id}}}",
            {"h": handle},
        )
        return d["signUp"]["token"], int(d["signUp"]["user"]["id"]), handle

    async def post(self, token: str, text: str = "hello") -> int:
        d = await self.ok(
            "mutation($t:String!){postTweet(text:$t){id}}", {"t": text}, token
        )
        return int(d["postTweet"]["id"])

    async def follow(self, token: str, user_id: int) -> dict:
        d = await self.ok(
            "mutation($u:ID!){follow(userId:$u){id followersCount}}", {"u": str(user_id)}, token
        )
        return d["follow"]

    async def unfollow(self, token: str, user_id: int) -> dict:
        d = await self.ok(
            "mutation($u:ID!){unfollow(userId:$u){id followersCount}}", {"u": str(user_id)}, token
        )
        return d["unfollow"]

    async def home_ids(self, token: str, page: int = 20) -> list[int]:
        """The whole home timeline, read page by page to the end."""
        out: list[int] = []
        after = None
        while True:
            d = await self.ok(
                "query($f:Int!,$a:String){homeTimeline(first:$f,after:$a){"
                "edges{cursor node{id}} pageInfo{hasNextPage endCursor}}}",
                {"f": page, "a": after}, token,
            )
            conn = d["homeTimeline"]
            out += [int(e["node"]["id"]) for e in conn["edges"]]
            if not conn["pageInfo"]["hasNextPage"]:
                return out
            after = conn["pageInfo"]["endCursor"]


@contextlib.asynccontextmanager
async def client_for(services: Services) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://chirp.test") as client:
        yield Api(client, services)


@contextlib.asynccontextmanager
async def api_with(
    stack: Stack, redis_url: str | None = None, on_query=None, claim_idle_ms: int = 30_000,
    **overrides: Any,
) -> AsyncIterator[Api]:
    """An app on services of its own, with settings overridden (e.g. timeline_max=10)."""
    svc = await open_services(
        make_settings(stack, redis_url, **overrides), on_query=on_query,
        claim_idle_ms=claim_idle_ms,
    )
    try:
        async with client_for(svc) as api:
            yield api
    finally:
        await svc.close()


@pytest_asyncio.fixture(loop_scope="session")
async def api(services) -> AsyncIterator[Api]:
    async with client_for(services) as client:
        yield client


async def reader_of_three_tweets(api, svc) -> tuple[str, int, str, list[int]]:
    """A reader following a writer with three tweets, the reader's timeline cached."""
    reader, rid, _ = await api.sign_up("r")
    writer, wid, _ = await api.sign_up("w")
    await api.follow(reader, wid)
    before = [await api.post(writer, f"before {i}") for i in range(3)]
    await drain(svc)
    assert await api.home_ids(reader) == before[::-1]
    return reader, rid, writer, before


async def drain(services: Services, consumer: str = "test-drain") -> int:
    """Relay the outbox and apply every bus event, as the worker does, until both are empty;
    the events applied. On Kafka the consumer then leaves the group."""
    applied = 0
    exact = services.settings.event_bus != "redis"
    try:
        while True:
            moved = await outbox.relay_batch(services.pool, services.bus.publish)
            deliveries = await services.bus.receive(consumer, 200, block_ms=10)
            ok = []
            for d in deliveries:
                if await _apply(services, d):
                    ok.append(d)
            await services.bus.ack(ok)
            applied += len(ok)
            if not moved and not deliveries and (not exact or await services.bus.lag() == 0):
                return applied
    finally:
        if exact:
            await services.bus.release()


def worker_env(stack: Stack, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CHIRP_ENV="test",
        CHIRP_POSTGRES_URL=stack.postgres_url,
        CHIRP_REDIS_URL=redis_url or stack.redis_url,
        CHIRP_DATA_DIR=str(stack.root / "data"),
        CHIRP_CELEBRITY_THRESHOLD="5",
        CHIRP_WORKER_CLAIM_IDLE_MS="1000",
        **RELAXED_LIMITS,
        **stack.backend_env,
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def scale_backends(stack) -> Any:
    """Kafka and Cassandra for the contract suites, in every profile; without them, a failure."""
    if stack.backends is not None:
        return stack.backends
    from tests.backends import ensure_backends

    return ensure_backends()


@pytest.fixture(scope="session")
def cassandra_store(scale_backends) -> Any:
    """Synchronous, so an async fixture may ask for it with getfixturevalue."""
    from storage.cassandra_tweets import CassandraTweetStore

    env = scale_backend_env(scale_backends, "c" + secrets.token_hex(4))
    store = CassandraTweetStore.open(env["CHIRP_TWEET_STORE"])
    yield store
    store.cluster.shutdown()


async def bulk_followers(svc, author: int, n: int) -> list[int]:
    """n followers with cached (empty) timelines, written straight to the tables (no argon2)."""
    ids = [svc.ids.next_id() for _ in range(n)]
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash"],
            records=[(i, f"b{i % 10**13}", "bulk", "x") for i in ids],
        )
        await conn.copy_records_to_table(
            "follows", columns=["follower_id", "followee_id", "seq"],
            records=[(i, author, svc.ids.next_id()) for i in ids],
        )
        await conn.execute("UPDATE users SET followers_count = $2 WHERE id = $1", author, n)
    async with svc.redis.pipeline(transaction=False) as pipe:
        for i in ids:
            pipe.set(svc.home.key(i), b"", ex=3600)
        await pipe.execute()
    return ids
