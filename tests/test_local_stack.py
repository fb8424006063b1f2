"""The embedded servers: persistence across stop and SIGKILL, ports, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from deploy.local._proc import death_signal_prefix
from deploy.local.ports import port_in_use
from deploy.local.postgres import EmbeddedPostgres
from deploy.local.valkey import EmbeddedValkey

ROOT = Path(__file__).resolve().parent.parent


async def _rows(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["v"] for r in await conn.fetch("SELECT v FROM t ORDER BY v")]
    finally:
        await conn.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _has_pid_file(data_dir: Path) -> bool:
    return (data_dir / "pgdata" / "postmaster.pid").exists()


async def test_postgres_keeps_data_across_stop_and_kill(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    url = pg.start()
    try:
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/chirp")
        await _execute(url, "CREATE TABLE t (v text); INSERT INTO t VALUES ('a')")
        pg.stop()
        assert not pg.is_running()
        assert pg.start() == url
        assert await _rows(url) == ["a"]
        await _execute(url, "INSERT INTO t VALUES ('b')")  # committed: fsync=on
        pg.kill()
        assert _has_pid_file(tmp_path / "pg"), "a killed postmaster leaves its pid file"
        assert pg.start() == url
        assert await _rows(url) == ["a", "b"]
        with pytest.raises(RuntimeError, match="already running"):
            EmbeddedPostgres(tmp_path / "pg").start()
    finally:
        pg.stop()


async def test_postgres_socket_dir_falls_back_when_path_is_long(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / ("d" * 90))
    try:
        assert await asyncpg.connect(pg.start()) is not None
    finally:
        pg.stop()


async def test_valkey_keeps_data_across_restart_and_kill(tmp_path: Path) -> None:
    vk = EmbeddedValkey(tmp_path / "vk")
    url = vk.start()
    try:
        assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
        r = aioredis.from_url(url)
        await r.set("k1", "v1")
        await r.aclose()
        assert vk.restart() == url  # SIGTERM fsyncs the AOF; the port is kept
        r = aioredis.from_url(url)
        assert await r.get("k1") == b"v1"
        await r.set("k2", "v2")
        await r.aclose()
        await asyncio.sleep(1.2)  # appendfsync everysec
        vk.kill()
        assert not vk.is_running()
        assert vk.start() == url
        r = aioredis.from_url(url)
        assert await r.mget("k1", "k2") == [b"v1", b"v2"]
        await r.aclose()
    finally:
        vk.stop()


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(RuntimeError, match="taken"):
            EmbeddedValkey(tmp_path / "vk", s.getsockname()[1]).start()


def _servers_under(data_dir: Path) -> list[int]:
    """Pids of processes working in data_dir: postgres chdirs to its pgdata, valkey to its
    --dir (it rewrites its command line, so that cannot tell)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and data_dir in Path(os.readlink(proc / "cwd")).parents:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _start_cli(data_dir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.stack", "--data-dir", str(data_dir), "--print-env"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    env = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))
    assert set(env) == {"CHIRP_POSTGRES_URL", "CHIRP_REDIS_URL"}, env
    return proc, env


def _wait_gone(data_dir: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _servers_under(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_stack_cli_stops_both_on_sigint(tmp_path: Path) -> None:
    proc, env = _start_cli(tmp_path / "stack")
    try:
        assert len(_servers_under(tmp_path / "stack")) > 2  # postmaster, its helpers, valkey
        assert redis_ping(env["CHIRP_REDIS_URL"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _wait_gone(tmp_path / "stack") == []
    for url in env.values():
        assert not port_in_use(int(url.rsplit(":", 1)[1].split("/")[0]))


def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    # setpriv (util-linux) is what makes this work; every supported Linux has it.
    assert death_signal_prefix(signal.SIGTERM), "setpriv not found: install util-linux"
    proc, _ = _start_cli(tmp_path / "stack")
    proc.kill()
    proc.wait()
    assert _wait_gone(tmp_path / "stack") == []


def redis_ping(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return bool(client.ping())
    finally:
        client.close()
