"""Media end to end on the file store and the local S3 server, every URL fetched."""

from __future__ import annotations

import asyncio
import io
import secrets
import struct
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from PIL import Image
from PIL.ExifTags import IFD

from storage.objects import FileObjectStore
from tests.conftest import Api, api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

STORES = ["file", "s3"]
MEDIA = "id state contentType width height altText url error " \
        "variants { name url width height contentType byteSize }"
CREATE = """mutation($t:String!,$n:Int!,$a:String){createMediaUpload(contentType:$t,byteSize:$n,
  altText:$a){media{id state contentType} uploadUrl uploadHeaders{name value} expiresAt}}"""
COMPLETE = "mutation($m:ID!){completeMediaUpload(mediaId:$m){" + MEDIA + "}}"
POST = """mutation($t:String!,$m:[ID!],$k:String){postTweet(text:$t,mediaIds:$m,idempotencyKey:$k){
  id text media{""" + MEDIA + "}}}"


def s3_env(prefix: str) -> dict[str, str]:
    from deploy.local import s3proxy

    return {"media_store": f"s3://chirp-media/{prefix}",
            "s3_endpoint_url": f"http://127.0.0.1:{s3proxy.PORT}",
            "s3_access_key_id": s3proxy.ACCESS_KEY,
            "s3_secret_access_key": s3proxy.SECRET_KEY}


@pytest.fixture(scope="module", params=STORES)
def store_env(request):
    if request.param == "file":
        yield {"media_store": "file"}
        return
    from tests.backends import ensure_s3

    ensure_s3()
    env = s3_env(f"t{secrets.token_hex(4)}")
    yield env
    asyncio.run(_empty(env))  # the local S3 server outlives the run: leave nothing there


async def _empty(env: dict[str, str]) -> None:
    from storage.objects import S3Config, S3ObjectStore

    store = S3ObjectStore(env["media_store"], S3Config(
        env["s3_endpoint_url"], env["s3_access_key_id"], env["s3_secret_access_key"],
        "us-east-1"))
    try:
        await store.delete_many(await store.list(""))
    finally:
        await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mapi(stack, store_env) -> AsyncIterator[Api]:
    async with api_with(stack, media_orphan_hours=1, **store_env) as api:
        yield api


def jpeg(w: int = 640, h: int = 480, exif: bool = True) -> bytes:
    im = Image.new("RGB", (w, h))
    im.paste((200, 30, 30), (0, 0, w // 2, h))  # left half red, right half black
    ex = Image.Exif()
    if exif:
        ex[0x0112] = 6  # displayed turned a quarter clockwise
        ex[0x010F] = "SecretCameraMaker"
        ex.get_ifd(IFD.GPSInfo)[2] = (48.0, 51.0, 29.0)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90, exif=ex.tobytes())
    return out.getvalue()


def png_alpha(w: int = 300, h: int = 200) -> bytes:
    im = Image.new("RGBA", (w, h), (0, 128, 255, 100))
    out = io.BytesIO()
    im.save(out, "PNG", pnginfo=_png_text("Comment", "a private note"))
    return out.getvalue()


def _png_text(k: str, v: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(k, v)
    return info


def gif_animated() -> bytes:
    frames = [Image.new("P", (120, 90), i * 40) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def webp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (5000, 100), (10, 200, 10)).save(out, "WEBP", quality=60)
    return out.getvalue()


def png_bomb(side: int = 60_000) -> bytes:
    """A PNG header claiming side x side pixels: refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (side // 8 + 1) * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + \
        chunk(b"IEND", b"")


def http_for(api: Api, url: str) -> httpx.AsyncClient | None:
    """The in-process app for its own URLs (the file store), None for a real server."""
    return api.client if url.startswith("http://chirp.test/") else None


async def fetch(api: Api, method: str, url: str, **kw) -> httpx.Response:
    client = http_for(api, url)
    if client is not None:
        return await client.request(method, url, **kw)
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.request(method, url, **kw)


async def create(api: Api, token: str, data: bytes, content_type: str,
                 alt: str | None = None) -> dict:
    d = await api.ok(CREATE, {"t": content_type, "n": len(data), "a": alt}, token)
    return d["createMediaUpload"]


async def upload(api: Api, token: str, data: bytes, content_type: str,
                 alt: str | None = None) -> dict:
    """createMediaUpload, the PUT, completeMediaUpload: the settled media."""
    up = await create(api, token, data, content_type, alt)
    headers = {h["name"]: h["value"] for h in up["uploadHeaders"]}
    r = await fetch(api, "PUT", up["uploadUrl"], content=data, headers=headers)
    assert r.status_code == 200, r.text
    d = await api.ok(COMPLETE, {"m": up["media"]["id"]}, token)
    return d["completeMediaUpload"]


async def ready(api: Api, token: str, data: bytes | None = None) -> str:
    m = await upload(api, token, data or jpeg(exif=False), "image/jpeg")
    assert m["state"] == "READY", m
    return m["id"]


def code(body: dict) -> str:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


async def stored_keys(api: Api, media_id: str) -> list[str]:
    store = api.services.media.store
    return [k for k in await store.list("") if f"/{media_id}-" in f"/{k}"]


async def test_upload_process_post_and_read_everywhere(mapi):
    api = mapi
    author, author_id, handle = await api.sign_up("pic")
    reader, _, _ = await api.sign_up("rdr")
    await api.follow(reader, author_id)
    data = jpeg()
    up = await create(api, author, data, "image/jpeg", "a red and black square")
    assert up["media"]["state"] == "PENDING"
    assert {"name": "Content-Type", "value": "image/jpeg"} in up["uploadHeaders"]
    assert up["expiresAt"].endswith("Z")
    if "s3" in api.services.settings.media_store:
        assert up["uploadUrl"].startswith("http://127.0.0.1:9000/chirp-media/")
    m = await upload(api, author, data, "image/jpeg", "a red and black square")
    assert m["state"] == "READY" and m["error"] is None, m
    assert (m["width"], m["height"]) == (480, 640)
    assert m["altText"] == "a red and black square"
    names = {v["name"]: v for v in m["variants"]}
    assert set(names) == {"thumbnail", "timeline", "large", "thumbnail_fallback",
                          "timeline_fallback", "large_fallback"}
    assert m["url"] == names["large_fallback"]["url"]
    for v in m["variants"]:
        assert max(v["width"], v["height"]) <= 4096
        r = await fetch(api, "GET", v["url"])
        assert r.status_code == 200, (v, r.text)
        assert r.headers["content-type"] == v["contentType"]
        assert len(r.content) == v["byteSize"]
        assert b"SecretCameraMaker" not in r.content
        im = Image.open(io.BytesIO(r.content))
        assert (im.width, im.height) == (v["width"], v["height"])
        assert not im.getexif(), v["name"]
        assert im.format == {"image/webp": "WEBP", "image/jpeg": "JPEG"}[v["contentType"]]
        if v["name"].startswith("thumbnail"):
            assert v["width"] == v["height"] == 150
        else:
            assert v["width"] < v["height"]
            # turned clockwise: the red left half is now the top half
            assert im.convert("RGB").getpixel((im.width // 2, im.height // 5))[0] > 150
            assert im.convert("RGB").getpixel((im.width // 2, im.height * 4 // 5))[0] < 60
    # the original, metadata and all, is not kept
    assert not [k for k in await stored_keys(api, m["id"]) if k.startswith("uploads/")]

    d = await api.ok(POST, {"t": "", "m": [m["id"]]}, author)
    tweet = d["postTweet"]
    assert tweet["text"] == "" and [x["id"] for x in tweet["media"]] == [m["id"]]
    assert tweet["media"][0] == m
    await drain(api.services)

    q = "query($id:ID!,$h:String!){tweet(id:$id){media{" + MEDIA + "}} " \
        "userTimeline(handle:$h,first:5){edges{node{id media{id url}}}}}"
    d = await api.ok(q, {"id": tweet["id"], "h": handle}, reader)
    assert d["tweet"]["media"] == [m]
    assert d["userTimeline"]["edges"][0]["node"]["media"] == [{"id": m["id"], "url": m["url"]}]
    d = await api.ok("{homeTimeline(first:5){edges{node{id media{id url variants{name}}}}}}",
                     token=reader)
    node = d["homeTimeline"]["edges"][0]["node"]
    assert node["id"] == tweet["id"] and node["media"][0]["url"] == m["url"]
    d = await api.ok("query($m:ID!){media(id:$m){" + MEDIA + "}}", {"m": m["id"]}, reader)
    assert d["media"] == m

    r = await api.client.get("/v1/timeline/home", headers={"authorization": f"Bearer {reader}"})
    rest = r.json()["tweets"][0]
    assert rest["id"] == tweet["id"]
    assert rest["media"][0]["url"] == m["url"]
    assert {v["name"] for v in rest["media"][0]["variants"]} == set(names)


async def test_png_gif_webp(mapi):
    api = mapi
    token, _, _ = await api.sign_up("fmt")
    m = await upload(api, token, png_alpha(), "image/png")
    assert m["state"] == "READY", m
    fallback = {v["name"]: v for v in m["variants"]}["large_fallback"]
    assert fallback["contentType"] == "image/png"
    r = await fetch(api, "GET", fallback["url"])
    im = Image.open(io.BytesIO(r.content))
    assert im.mode == "RGBA" and "Comment" not in im.info and not im.text
    g = await upload(api, token, gif_animated(), "image/gif")
    assert g["state"] == "READY" and (g["width"], g["height"]) == (120, 90), g
    w = await upload(api, token, webp(), "image/webp")
    assert w["state"] == "READY", w
    sizes = {v["name"]: (v["width"], v["height"]) for v in w["variants"]}
    assert sizes["large"] == (2048, 41) and sizes["timeline"] == (1200, 24)
    assert sizes["thumbnail"] == (100, 100)


async def test_post_with_up_to_four_and_rest(mapi):
    api = mapi
    token, _, _ = await api.sign_up("four")
    ids = [await ready(api, token) for _ in range(4)]
    d = await api.ok(POST, {"t": "four", "m": ids}, token)
    assert [x["id"] for x in d["postTweet"]["media"]] == ids
    one = await ready(api, token)
    def headers(key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}", "idempotency-key": key}

    r = await api.client.post("/v1/tweets", json={"text": "", "media_ids": [one]},
                              headers=headers("a"))
    assert r.status_code == 201, r.text
    assert [x["id"] for x in r.json()["media"]] == [one]
    r = await api.client.post("/v1/tweets", json={"text": "x", "media_ids": [one]},
                              headers=headers("b"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
    r = await api.client.post("/v1/tweets", json={"text": "x", "media_ids": "nope"},
                              headers=headers("c"))
    assert r.status_code == 400


async def test_idempotent_repeat_with_media(mapi):
    api = mapi
    token, _, _ = await api.sign_up("rep")
    mid = await ready(api, token)
    first = await api.ok(POST, {"t": "once", "m": [mid], "k": "k1"}, token)
    again = await api.ok(POST, {"t": "once", "m": [mid], "k": "k1"}, token)
    assert again["postTweet"]["id"] == first["postTweet"]["id"]
    assert again["postTweet"]["media"] == first["postTweet"]["media"]


async def test_bad_input_at_create(mapi):
    api = mapi
    token, _, _ = await api.sign_up("bad")
    for t, n in [("image/bmp", 10), ("text/plain", 10), ("", 10), ("image/jpeg", 0),
                 ("image/jpeg", -5), ("image/jpeg", 5 * 1024 * 1024 + 1)]:
        body = await api.gql(CREATE, {"t": t, "n": n}, token)
        assert code(body) == "BAD_USER_INPUT", (t, n, body)
    body = await api.gql(CREATE, {"t": "image/jpeg", "n": 10, "a": "x" * 1001}, token)
    assert code(body) == "BAD_USER_INPUT"
    assert code(await api.gql(CREATE, {"t": "image/jpeg", "n": 10})) == "UNAUTHENTICATED"
    assert (await api.gql(CREATE, {"t": "image/jpeg", "n": 5 * 1024 * 1024}, token)) \
        .get("errors") is None


@pytest.mark.parametrize("case", ["other type", "undecodable", "bomb", "not an image"])
async def test_bad_bytes_fail_and_keep_nothing(mapi, case):
    api = mapi
    token, _, _ = await api.sign_up("bb")
    data, declared = {
        "other type": (png_alpha(), "image/jpeg"),
        "undecodable": (b"\xff\xd8\xff\xe0" + secrets.token_bytes(3000), "image/jpeg"),
        "bomb": (png_bomb(), "image/png"),
        "not an image": (b"hello, world" * 50, "image/gif"),
    }[case]
    m = await upload(api, token, data, declared)
    assert m["state"] == "FAILED", m
    assert m["error"] and m["url"] is None and m["variants"] == []
    assert await stored_keys(api, m["id"]) == []
    again = await api.ok(COMPLETE, {"m": m["id"]}, token)
    assert again["completeMediaUpload"] == m
    body = await api.gql(POST, {"t": "x", "m": [m["id"]]}, token)
    assert code(body) == "BAD_USER_INPUT"


async def test_wrong_length_is_refused_by_the_store(mapi):
    api = mapi
    token, _, _ = await api.sign_up("len")
    data = jpeg(exif=False)
    up = await create(api, token, data, "image/jpeg")
    headers = {h["name"]: h["value"] for h in up["uploadHeaders"]}
    for body in (data[:-1], data + b"x"):
        r = await fetch(api, "PUT", up["uploadUrl"], content=body, headers=headers)
        assert r.status_code == 403, r.text
    r = await fetch(api, "PUT", up["uploadUrl"], content=data,
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 403, r.text
    body = await api.gql(COMPLETE, {"m": up["media"]["id"]}, token)
    assert code(body) == "BAD_USER_INPUT"  # nothing was uploaded; still PENDING
    d = await api.ok("query($m:ID!){media(id:$m){state}}", {"m": up["media"]["id"]}, token)
    assert d["media"]["state"] == "PENDING"
    assert await stored_keys(api, up["media"]["id"]) == []
    # the right bytes still go through
    r = await fetch(api, "PUT", up["uploadUrl"], content=data, headers=headers)
    assert r.status_code == 200
    d = await api.ok(COMPLETE, {"m": up["media"]["id"]}, token)
    assert d["completeMediaUpload"]["state"] == "READY"


async def test_ownership_state_count_and_conflict(mapi):
    api = mapi
    owner, _, _ = await api.sign_up("own")
    other, _, _ = await api.sign_up("oth")
    mine = await ready(api, owner)
    pending = (await create(api, owner, jpeg(), "image/jpeg"))["media"]["id"]
    for token, mid in [(other, mine), (owner, "123456789"), (other, pending)]:
        assert code(await api.gql(COMPLETE, {"m": mid}, token)) == "NOT_FOUND"
        assert code(await api.gql(POST, {"t": "x", "m": [mid]}, token)) == "NOT_FOUND"
    assert code(await api.gql(COMPLETE, {"m": "abc"}, owner)) == "BAD_USER_INPUT"
    assert code(await api.gql(POST, {"t": "x", "m": ["abc"]}, owner)) == "BAD_USER_INPUT"
    assert code(await api.gql(COMPLETE, {"m": mine})) == "UNAUTHENTICATED"
    assert code(await api.gql(POST, {"t": "x", "m": [pending]}, owner)) == "BAD_USER_INPUT"
    five = [await ready(api, owner) for _ in range(4)] + [mine]
    assert code(await api.gql(POST, {"t": "x", "m": five}, owner)) == "BAD_USER_INPUT"
    assert code(await api.gql(POST, {"t": "x", "m": [mine, mine]}, owner)) == "BAD_USER_INPUT"
    assert code(await api.gql(POST, {"t": "   ", "m": []}, owner)) == "BAD_USER_INPUT"
    await api.ok(POST, {"t": "first", "m": [mine]}, owner)
    assert code(await api.gql(POST, {"t": "again", "m": [mine]}, owner)) == "CONFLICT"
    # nothing half-written: the refused posts made no tweets
    d = await api.ok("{viewer{tweetsCount}}", token=owner)
    assert d["viewer"]["tweetsCount"] == 1
    # someone else's unattached media is invisible; attached media are public
    d = await api.ok("query($m:ID!){media(id:$m){id}}", {"m": five[0]}, other)
    assert d["media"] is None
    d = await api.ok("query($m:ID!){media(id:$m){id}}", {"m": mine}, other)
    assert d["media"]["id"] == mine


async def test_racing_posts_attach_once(mapi):
    api = mapi
    token, _, _ = await api.sign_up("race")
    mid = await ready(api, token)
    bodies = await asyncio.gather(*(api.gql(POST, {"t": f"r{i}", "m": [mid]}, token)
                                    for i in range(4)))
    assert sum("errors" not in b for b in bodies) == 1, bodies
    assert all(code(b) == "CONFLICT" for b in bodies if "errors" in b)
    d = await api.ok("{viewer{tweetsCount}}", token=token)
    assert d["viewer"]["tweetsCount"] == 1


async def test_deleting_a_tweet_deletes_its_media(mapi):
    api = mapi
    token, _, _ = await api.sign_up("del")
    mid = await ready(api, token)
    d = await api.ok(POST, {"t": "bye", "m": [mid]}, token)
    urls = [v["url"] for v in d["postTweet"]["media"][0]["variants"]]
    assert len(await stored_keys(api, mid)) == 6
    await api.ok("mutation($id:ID!){deleteTweet(id:$id)}", {"id": d["postTweet"]["id"]}, token)
    assert await stored_keys(api, mid) == []
    for url in urls:
        assert (await fetch(api, "GET", url)).status_code in (403, 404)
    d = await api.ok("query($m:ID!){media(id:$m){id}}", {"m": mid}, token)
    assert d["media"] is None


async def test_rate_limit_per_account(stack, store_env):
    async with api_with(stack, media_uploads_per_hour=2, **store_env) as api:
        token, _, _ = await api.sign_up("rl")
        other, _, _ = await api.sign_up("rl2")
        for _ in range(2):
            await create(api, token, b"x" * 10, "image/jpeg")
        body = await api.gql(CREATE, {"t": "image/jpeg", "n": 10}, token)
        assert code(body) == "RATE_LIMITED"
        assert body["errors"][0]["extensions"]["retryAfter"] > 0
        await create(api, other, b"x" * 10, "image/jpeg")


async def test_orphans_are_swept(stack, store_env):
    async with api_with(stack, media_orphan_hours=0, **store_env) as api:
        token, _, _ = await api.sign_up("orph")
        kept = await ready(api, token)
        await api.ok(POST, {"t": "kept", "m": [kept]}, token)
        orphan = await ready(api, token)
        pending = (await create(api, token, jpeg(), "image/jpeg"))["media"]["id"]
        assert len(await stored_keys(api, orphan)) == 6
        assert await api.services.media.sweep() >= 2
        assert await stored_keys(api, orphan) == []
        for mid in (orphan, pending):
            d = await api.ok("query($m:ID!){media(id:$m){id}}", {"m": mid}, token)
            assert d["media"] is None
        assert len(await stored_keys(api, kept)) == 6
        d = await api.ok("query($m:ID!){media(id:$m){state}}", {"m": kept}, token)
        assert d["media"]["state"] == "READY"


async def test_media_hydrated_in_one_query_per_page(stack, store_env):
    queries: list[str] = []
    async with api_with(stack, on_query=lambda r: queries.append(r.query), **store_env) as api:
        token, _, _ = await api.sign_up("page")
        for i in range(6):
            ids = [await ready(api, token)] if i % 2 else []
            await api.ok(POST, {"t": f"t{i}", "m": ids}, token)
        await drain(api.services)
        api.services.media.by_tweet = type(api.services.media.by_tweet)()  # cold cache
        q = "{homeTimeline(first:10){edges{node{id media{id url}}}}}"
        queries.clear()
        d = await api.ok(q, token=token)
        edges = d["homeTimeline"]["edges"]
        assert [len(e["node"]["media"]) for e in edges] == [1, 0, 1, 0, 1, 0]
        assert sum("FROM media" in x for x in queries) == 1, queries
        queries.clear()
        assert await api.ok(q, token=token) == d
        assert not [x for x in queries if "FROM media" in x]


async def test_compiled_and_plain_executors_agree(mapi):
    """The compiled executor and graphql-core's own answer media fields the same."""
    api = mapi
    token, _, _ = await api.sign_up("twin")
    mid = await ready(api, token)
    await api.ok(POST, {"t": "twin", "m": [mid]}, token)
    await api.ok(POST, {"t": "none"}, token)
    await drain(api.services)
    sel = "edges{node{id text media{" + MEDIA + "}}}"
    fast = await api.gql("{homeTimeline(first:5){" + sel + "}}", token=token)
    plain = await api.gql("{homeTimeline(first:5) @include(if: true) {" + sel + "}}",
                          token=token)
    assert "errors" not in fast and fast == plain
    api.services.media.by_tweet = type(api.services.media.by_tweet)()
    assert await api.gql("{homeTimeline(first:5){" + sel + "}}", token=token) == fast


async def test_the_worker_sweeps(stack, store_env):
    from workers.fanout import sweep_media

    async with api_with(stack, media_orphan_hours=0, **store_env) as api:
        token, _, _ = await api.sign_up("wsw")
        orphan = await ready(api, token)
        stop = asyncio.Event()
        task = asyncio.create_task(sweep_media(api.services, stop))
        try:
            async with asyncio.timeout(30):
                while await stored_keys(api, orphan):
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task
        d = await api.ok("query($m:ID!){media(id:$m){id}}", {"m": orphan}, token)
        assert d["media"] is None


async def test_cdn_base_url(stack, store_env):
    async with api_with(stack, media_public_url="https://cdn.example/media/", **store_env) as api:
        token, _, _ = await api.sign_up("cdn")
        m = await upload(api, token, jpeg(exif=False), "image/jpeg")
        keys = await stored_keys(api, m["id"])
        assert sorted(v["url"] for v in m["variants"]) == sorted(
            f"https://cdn.example/media/{k}" for k in keys)
        # the store still serves every key the CDN would fetch from it
        store = api.services.media.store
        for k in keys:
            url = (f"http://chirp.test/objects/media/{k}" if isinstance(store, FileObjectStore)
                   else store.url(k))
            assert (await fetch(api, "GET", url)).status_code == 200
