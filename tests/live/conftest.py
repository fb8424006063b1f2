"""Two uvicorn API processes, a fan-out worker and real WebSocket clients (docs/testing.md)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.local.ports import free_port
from deploy.local.valkey import EmbeddedValkey
from deploy.local.valkey_cluster import ValkeyCluster
from tests.conftest import CLUSTER, worker_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Live:
    apis: list[str]  # http://127.0.0.1:PORT
    redis_url: str
    valkey: EmbeddedValkey | ValkeyCluster  # stop() and start() it: a Redis restart
    procs: list[subprocess.Popen]

    def ws(self, i: int) -> str:
        return self.apis[i].replace("http://", "ws://") + "/graphql"


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


@contextlib.contextmanager
def api_process(stack, redis_url: str, **env: str) -> Iterator[str]:
    """One more uvicorn API process on the given Redis, with settings of its own."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=worker_env(stack, redis_url, **env))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def live(stack):
    if CLUSTER:
        vk: EmbeddedValkey | ValkeyCluster = ValkeyCluster(stack.root / f"live-{free_port()}")
        vk.start()
        redis_url = vk.url
    else:
        vk = EmbeddedValkey(stack.root / f"live-valkey-{free_port()}")
        redis_url = vk.start()
    env = worker_env(stack, redis_url, CHIRP_WORKER_CLAIM_IDLE_MS="2000")
    procs: list[subprocess.Popen] = []
    apis = []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app:create_app", "--factory",
                 "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
            ))
            apis.append(f"http://127.0.0.1:{port}")
        procs.append(subprocess.Popen([sys.executable, "-m", "workers.fanout"], cwd=ROOT,
                                      env=env))
        for url, proc in zip(apis, procs, strict=False):
            _wait_ready(url, proc)
        yield Live(apis, redis_url, vk, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        vk.stop()
