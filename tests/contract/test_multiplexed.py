"""The pipelined connection answers as the redis-py client does, and survives what it does."""

import asyncio
import time

import pytest
import pytest_asyncio
import redis.asyncio as redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from deploy.local.ports import free_port
from storage.multiplexed import MultiplexedRedis

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def url(stack):
    """The embedded server (also in the scale pass, whose Redis is a cluster), database 5."""
    url = stack.valkey.url.rsplit("/", 1)[0] + "/5"
    client = redis.Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def both(url):
    """The pipelined connection and a redis-py client, to the same database."""
    line, client = MultiplexedRedis.from_url(url), redis.Redis.from_url(url)
    assert line is not None
    yield line, client
    await line.aclose()
    await client.aclose()


async def test_replies_and_errors_match_redis_py(both):
    line, client = both
    await client.rpush("l", b"a", b"b\r\n", 3)
    await client.set("s", "x")
    for command in [("GET", "s"), ("GET", "absent"), ("LRANGE", "l", 0, -1), ("LLEN", "l"),
                    ("EXISTS", "s", "l", "absent"), ("ECHO", b"\x00\xff"),
                    ("EVAL", "return redis.status_reply('FINE')", 0),
                    ("EVAL", "return {1, 'two', {3}}", 0)]:
        assert await line.execute(*command) == await client.execute_command(*command)
    for command in [("LPUSH", "s", "x"), ("EVALSHA", "0" * 40, 0), ("NOSUCHCOMMAND",)]:
        with pytest.raises(ResponseError) as ours:
            await line.execute(*command)
        with pytest.raises(ResponseError) as theirs:
            await client.execute_command(*command)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value),
                                                       str(theirs.value))
    with pytest.raises(NoScriptError):
        await line.execute("EVALSHA", "0" * 40, 0)
    assert await client.get("s") == b"x"  # the database chosen in the URL


async def test_concurrent_callers_get_their_own_replies_in_few_writes(both):
    line, client = both
    await line.execute("PING")
    before = (await client.info("stats"))["total_reads_processed"]
    values = [f"v{i}".encode() * (i % 7 + 1) for i in range(500)]
    got = await asyncio.gather(*(line.execute("ECHO", v) for v in values))
    assert got == values
    # The calls of one turn of the loop share a write, so the server reads them at once
    # (the INFO call itself is one read)
    reads = (await client.info("stats"))["total_reads_processed"] - before
    assert reads < 20, reads


async def test_a_killed_connection_is_replaced_and_its_call_retried(both):
    line, client = both
    first = await line.execute("CLIENT", "ID")
    waiting = asyncio.ensure_future(line.execute("BLPOP", "q", 5))
    await asyncio.sleep(0.1)
    await client.execute_command("CLIENT", "KILL", "ID", first)
    await asyncio.sleep(0.1)
    await client.rpush("q", "after")
    assert await waiting == [b"q", b"after"]
    assert await line.execute("CLIENT", "ID") != first


async def test_a_call_past_the_timeout_fails_and_the_next_one_reconnects(url):
    line = MultiplexedRedis.from_url(url, timeout=0.3)
    try:
        first = await line.execute("CLIENT", "ID")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await line.execute("BLPOP", "never", 5)
        assert 0.25 < time.monotonic() - started < 2
        assert await line.execute("CLIENT", "ID") != first
    finally:
        await line.aclose()


async def test_no_server_is_a_connection_error():
    line = MultiplexedRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError):
        await line.execute("PING")


async def test_only_plain_tcp_urls():
    assert MultiplexedRedis.from_url("rediss://h:1/0") is None
    assert MultiplexedRedis.from_url("unix:///tmp/s") is None
    assert MultiplexedRedis.from_url("redis+cluster://h:1,h:2") is None
