"""The object-store contract: every adapter in ADAPTERS runs this same suite."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from storage import object_server
from storage.objects import (
    FileObjectStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    S3Config,
    S3ObjectStore,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADAPTERS = ["file", "s3"]


@dataclass
class Subject:
    store: ObjectStore
    http: httpx.AsyncClient
    prefix: str  # this test's keys: no test sees another's objects


def local_s3_config() -> S3Config:
    from deploy.local import s3proxy

    return S3Config(f"http://127.0.0.1:{s3proxy.PORT}", s3proxy.ACCESS_KEY,
                    s3proxy.SECRET_KEY, s3proxy.REGION)


@pytest.fixture(scope="session")
def local_s3():
    from tests.backends import ensure_s3

    return ensure_s3()


@pytest_asyncio.fixture(loop_scope="session", params=ADAPTERS)
async def subject(request, tmp_path) -> AsyncIterator[Subject]:
    prefix = f"t{secrets.token_hex(4)}/"
    if request.param == "file":
        store = FileObjectStore(tmp_path / "objects", "media", "http://objects.test",
                                b"test-secret")
        app = Starlette(routes=object_server.routes({"media": store}.get))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    elif request.param == "s3":
        request.getfixturevalue("local_s3")
        store = S3ObjectStore("s3://chirp-media/contract", local_s3_config())
        http = httpx.AsyncClient()
    else:
        raise AssertionError(request.param)
    try:
        yield Subject(store, http, prefix)
    finally:
        await store.delete_many(await store.list(prefix))
        await http.aclose()
        await store.close()


async def test_put_get_head_delete(subject):
    s, key = subject.store, subject.prefix + "a/b.jpg"
    assert await s.head(key) is None
    with pytest.raises(ObjectNotFound):
        await s.get(key)
    await s.put(key, b"\xff\xd8 bytes", "image/jpeg")
    assert await s.get(key) == b"\xff\xd8 bytes"
    assert await s.head(key) == ObjectInfo(8, "image/jpeg")
    await s.put(key, b"new", "image/png")  # a rewrite replaces the object whole
    assert await s.get(key) == b"new"
    assert await s.head(key) == ObjectInfo(3, "image/png")
    await s.delete(key)
    await s.delete(key)
    assert await s.head(key) is None
    with pytest.raises(ObjectNotFound):
        await s.get(key)


async def test_list_and_delete_many(subject):
    s, p = subject.store, subject.prefix
    keys = [f"{p}m/1/a.webp", f"{p}m/1/b.jpg", f"{p}m/12/a.webp", f"{p}n/x"]
    await asyncio.gather(*(s.put(k, k.encode(), "application/octet-stream") for k in keys))
    assert await s.list(p) == sorted(keys)
    assert await s.list(f"{p}m/1/") == keys[:2]
    assert await s.list(f"{p}m/1") == keys[:3]
    assert await s.list(f"{p}zzz") == []
    await s.delete_many([*keys[:3], f"{p}never-written"])
    await s.delete_many([])
    assert await s.list(p) == [keys[3]]


async def test_empty_and_large_objects(subject):
    s, p = subject.store, subject.prefix
    big = secrets.token_bytes(3 << 20)
    await s.put(p + "empty", b"", "text/plain")
    await s.put(p + "big", big, "application/octet-stream")
    assert await s.get(p + "empty") == b""
    assert await s.get(p + "big") == big


async def test_url_answers_get(subject):
    s, key = subject.store, subject.prefix + "pic.png"
    await s.put(key, b"\x89PNG data", "image/png")
    url = s.url(key)
    assert url == s.url(key)  # stable: caches can keep it
    r = await subject.http.get(url)
    assert r.status_code == 200
    assert r.content == b"\x89PNG data"
    assert r.headers["content-type"] == "image/png"
    await s.delete(key)
    assert (await subject.http.get(url)).status_code in (403, 404)


async def test_presigned_put_stores_exactly_what_was_declared(subject):
    s, key = subject.store, subject.prefix + "up/1.jpg"
    data = secrets.token_bytes(1000)
    url, headers = s.presign_put(key, "image/jpeg", len(data), 60)
    assert headers == {"Content-Type": "image/jpeg"}
    r = await subject.http.put(url, content=data, headers=headers)
    assert r.status_code == 200, r.text
    assert await s.get(key) == data
    assert await s.head(key) == ObjectInfo(1000, "image/jpeg")


@pytest.mark.parametrize("body,content_type", [
    (b"x" * 1001, "image/jpeg"),  # longer than declared
    (b"x" * 999, "image/jpeg"),  # shorter
    (b"x" * 1000, "image/png"),  # another type
    (b"x" * 1000, None),  # no type
])
async def test_presigned_put_refuses_other_length_or_type(subject, body, content_type):
    s, key = subject.store, subject.prefix + "up/2.jpg"
    url, _ = s.presign_put(key, "image/jpeg", 1000, 60)
    headers = {"Content-Type": content_type} if content_type else {}
    r = await subject.http.put(url, content=body, headers=headers)
    assert r.status_code == 403, r.text
    assert await s.head(key) is None


async def test_presigned_put_refuses_a_tampered_url(subject):
    s, key = subject.store, subject.prefix + "up/3.jpg"
    url, headers = s.presign_put(key, "image/jpeg", 4, 60)
    other = url.replace("up/3.jpg", "up/4.jpg")
    r = await subject.http.put(other, content=b"abcd", headers=headers)
    assert r.status_code == 403, r.text
    assert await s.list(subject.prefix) == []


async def test_expired_upload_url_is_refused(subject):
    s, key = subject.store, subject.prefix + "up/5.jpg"
    url, headers = s.presign_put(key, "image/jpeg", 4, 1)
    await asyncio.sleep(2.2)
    r = await subject.http.put(url, content=b"abcd", headers=headers)
    assert r.status_code == 403, r.text
    assert await s.head(key) is None


async def test_ping(subject):
    await subject.store.ping()

