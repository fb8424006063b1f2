"""The archive tests' own stack: a run moves every tweet below its cut-off."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from runtime.container import Services, open_services
from tests.conftest import (
    Api,
    Stack,
    client_for,
    embedded_stack,
    make_settings,
    scale_backend_env,
)

LIVE_STORES = ["postgres", "cassandra"]
ARCHIVE_STORES = ["file", "s3"]


@pytest.fixture(scope="session")
def archive_stack(tmp_path_factory) -> Iterator[Stack]:
    with embedded_stack(tmp_path_factory.mktemp("archive-stack")) as found:
        yield found


def store_env(request, live: str, objects: str) -> dict[str, str]:
    """CHIRP_* settings putting tweets in `live` and the archive in `objects`."""
    env = {"CHIRP_TWEET_STORE": "postgres", "CHIRP_ARCHIVE_STORE": "file"}
    if live == "cassandra":
        backends = request.getfixturevalue("scale_backends")
        tag = "a" + secrets.token_hex(4)
        env["CHIRP_TWEET_STORE"] = scale_backend_env(backends, tag)["CHIRP_TWEET_STORE"]
    if objects == "s3":
        env.update(request.getfixturevalue("local_s3_env"))
        env["CHIRP_ARCHIVE_STORE"] = f"s3://chirp-archive/t{secrets.token_hex(4)}"
    return env


@contextlib.asynccontextmanager
async def archive_api(stack: Stack, env: dict[str, str], **overrides) -> AsyncIterator[
        tuple[Api, Services]]:
    settings = make_settings(stack, **{k[6:].lower(): v for k, v in env.items()}, **overrides)
    svc = await open_services(settings, claim_idle_ms=500)
    try:
        async with client_for(svc) as api:
            yield api, svc
    finally:
        await svc.close()


@pytest_asyncio.fixture(loop_scope="session",
                        params=[(a, b) for a in LIVE_STORES for b in ARCHIVE_STORES],
                        ids=lambda p: f"{p[0]}-{p[1]}")
async def stores(request, archive_stack) -> dict[str, str]:
    return store_env(request, *request.param)


@pytest.fixture(scope="session")
def local_s3_env() -> dict[str, str]:
    """The S3 settings of the local S3 server (`make backends`; started if needed)."""
    from deploy.local import s3proxy
    from tests.backends import ensure_s3

    ensure_s3()
    return {
        "CHIRP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3proxy.PORT}",
        "CHIRP_S3_ACCESS_KEY_ID": s3proxy.ACCESS_KEY,
        "CHIRP_S3_SECRET_ACCESS_KEY": s3proxy.SECRET_KEY,
        "CHIRP_S3_REGION": s3proxy.REGION,
    }


async def backdating(svc: Services) -> None:
    """Before a test writes tweets with old ids straight into the live store: forget that
    runs finished below them (readers skip the live store there, where no real tweet can
    appear)."""
    await svc.pool.execute("UPDATE archive_totals SET complete_below = 0")
    svc.archive.forget_bounds()
