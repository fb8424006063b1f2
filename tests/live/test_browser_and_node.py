"""The npm graphql-ws client under Node and in headless Chromium (docs/testing.md)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from deploy.local.ports import free_port
from tests.live.test_subscriptions import Http, home_present, present

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


async def test_node_graphql_ws_client_receives_live_tweets(live):
    a = Http(live.apis[0])
    reader, rid, _ = await a.sign_up("node")
    writer, wid, _ = await a.sign_up("w")
    await a.follow(reader, wid)
    proc = await asyncio.create_subprocess_exec(
        "node", str(ROOT / "web" / "live-client.mjs"), live.ws(1), reader, "2", "20000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 15)) == {"connected": True}
    await present(live, home_present(rid))
    await asyncio.sleep(0.2)
    tid = await a.post(writer, "hello node")
    # delete only once it arrived: deleted first, it might never be fanned out at all
    first = await asyncio.wait_for(proc.stdout.readline(), 15)
    await a.gql("mutation($i:ID!){deleteTweet(id:$i)}", {"i": tid}, writer)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    lines = [first.decode(), *out.decode().splitlines()]
    events = [json.loads(line)["data"]["homeTimeline"] for line in lines]
    assert [(e["kind"], e["tweetId"]) for e in events] == [
        ("TWEET_ADDED", tid), ("TWEET_DELETED", tid)
    ]
    assert events[0]["tweet"]["text"] == "hello node"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is required (apt-get install chromium); .ci/run installs it"
    return found


async def test_live_page_in_headless_chromium(live):
    """Chromium signs in on /live, a tweet is posted through the API, and the page's DOM
    shows it (read through the DevTools protocol)."""
    import websockets

    a = Http(live.apis[0])
    reader, rid, rh = await a.sign_up("page")
    writer, wid, _ = await a.sign_up("w")
    await a.follow(reader, wid)
    # Chromium's helpers may still write the profile as it exits.
    picture = await _ready_picture(a, writer)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        port = free_port()
        browser = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", f"--remote-debugging-port={port}",
             f"--user-data-dir={profile}", live.apis[1] + "/live"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            page_ws = await _page_socket(port)
            async with websockets.connect(page_ws, max_size=2**24) as cdp:
                calls = 0

                async def js(expression: str):
                    nonlocal calls
                    calls += 1
                    await cdp.send(json.dumps({"id": calls, "method": "Runtime.evaluate",
                                               "params": {"expression": expression,
                                                          "awaitPromise": True,
                                                          "returnByValue": True}}))
                    while True:
                        msg = json.loads(await cdp.recv())
                        if msg.get("id") == calls:
                            return msg["result"]["result"].get("value")

                await _until(lambda: js("document.readyState === 'complete' && "
                                        "typeof graphqlWs === 'object'"))
                await js(f"handle.value = {json.dumps(rh)}; password.value = 'password123';"
                         "document.getElementById('login').requestSubmit(); true")
                await _until(lambda: js("document.getElementById('status').textContent "
                                        "=== 'Live.'"))
                await present(live, home_present(rid))
                await asyncio.sleep(0.2)
                await a.post(writer, "seen in a browser")
                text = await _until(lambda: js("document.getElementById('feed').innerText"),
                                    lambda v: v and "seen in a browser" in v)
                assert "seen in a browser" in text
                # a picture arrives live too, and the browser loads it from the API
                await a.gql("mutation($m:[ID!]){postTweet(text:\"look\",mediaIds:$m){id}}",
                            {"m": [picture]}, writer)
                size = await _until(
                    lambda: js("(() => { const i = document.querySelector('#feed img');"
                               " return i && i.complete ? [i.naturalWidth, i.naturalHeight,"
                               " i.alt, i.currentSrc] : null })()"),
                    lambda v: v and v[0] > 0)
                assert size[:3] == [320, 240, "a square"], size
                assert size[3].startswith(live.apis[1] + "/objects/media/"), size
        finally:
            os.killpg(browser.pid, signal.SIGTERM)  # the browser and all its helpers
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(browser.pid, signal.SIGKILL)
                browser.wait()


async def _ready_picture(a: Http, token: str) -> str:
    """A 320x240 JPEG uploaded through the API's own store: its media id, READY."""
    import io

    import httpx
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (250, 120, 0)).save(out, "JPEG")
    data = out.getvalue()
    d = await a.gql("mutation($n:Int!){createMediaUpload(contentType:\"image/jpeg\","
                    "byteSize:$n,altText:\"a square\"){media{id} uploadUrl "
                    "uploadHeaders{name value}}}", {"n": len(data)}, token)
    up = d["createMediaUpload"]
    async with httpx.AsyncClient() as c:
        r = await c.put(up["uploadUrl"], content=data,
                        headers={h["name"]: h["value"] for h in up["uploadHeaders"]})
    assert r.status_code == 200, r.text
    d = await a.gql("mutation($m:ID!){completeMediaUpload(mediaId:$m){state}}",
                    {"m": up["media"]["id"]}, token)
    assert d["completeMediaUpload"]["state"] == "READY"
    return up["media"]["id"]


async def _page_socket(port: int) -> str:
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            async with httpx.AsyncClient() as c:
                targets = (await c.get(f"http://127.0.0.1:{port}/json/list")).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except (httpx.HTTPError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("chromium did not open its DevTools endpoint")


async def _until(probe, ok=bool, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting; last value {value!r}")
        await asyncio.sleep(0.2)
