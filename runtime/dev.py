"""`make dev`: the whole service in one foreground command (docs/modules.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

from runtime.settings import ConfigError, Settings, load
from storage import postgres

DEV_INTERNAL_PORT = 9100


def dev_postgres_url(settings: Settings) -> str:
    """The embedded PostgreSQL `make dev` runs (for commands run beside it)."""
    from deploy.local.postgres import DATABASE

    return f"postgresql://postgres@127.0.0.1:{settings.dev_pg_port}/{DATABASE}"


def _children(settings: Settings, env: dict[str, str]) -> list[subprocess.Popen]:
    api = [
        sys.executable, "-m", "uvicorn", "app:create_app", "--factory",
        "--host", settings.host, "--port", str(settings.port),
        "--no-access-log", "--lifespan", "on",
        # Live frames are ~100 bytes: compression saves little and its per-connection
        # zlib state costs ~40 KB of each WebSocket's ~100 KB (docs/live.md).
        "--ws-per-message-deflate", "false",
    ]
    worker = [sys.executable, "-m", "workers.fanout"]
    return [subprocess.Popen(cmd, env=env) for cmd in (api, worker)]


async def _migrate(url: str) -> list[str]:
    pool = await postgres.connect(url, 2)
    try:
        return await postgres.migrate(pool)
    finally:
        await pool.close()


def main() -> int:
    # Operators' metrics on loopback unless set (0: off); docs/security.md.
    os.environ.setdefault("CHIRP_INTERNAL_PORT", str(DEV_INTERNAL_PORT))
    try:
        settings = load()
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    env = dict(os.environ, CHIRP_DATA_DIR=str(settings.data_dir))
    stack = None
    if not settings.postgres_url or not settings.redis_url:
        from deploy.local.stack import LocalStack

        stack = LocalStack(
            settings.data_dir,
            pg_port=settings.dev_pg_port,
            redis_port=settings.dev_redis_port,
        )
        stack.start()
        env["CHIRP_POSTGRES_URL"] = settings.postgres_url or stack.postgres_url
        env["CHIRP_REDIS_URL"] = settings.redis_url or stack.redis_url
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        applied = asyncio.run(_migrate(env["CHIRP_POSTGRES_URL"]))
        if applied:
            print(f"applied migrations: {', '.join(applied)}")
        children = _children(settings, env)
        metrics_at = "" if settings.internal_port is None else (
            f", metrics at http://{settings.internal_host}:{settings.internal_port}/metrics")
        print(
            f"Chirp is up: GraphiQL at http://{settings.host}:{settings.port}/graphql"
            f"{metrics_at} (data in {settings.data_dir}); Ctrl-C stops it.",
            flush=True,
        )
        while not stopping:
            if any(c.poll() is not None for c in children):
                print("a child process exited; stopping", file=sys.stderr)
                break
            time.sleep(0.2)
    finally:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(10)
            except subprocess.TimeoutExpired:
                c.kill()
        if stack is not None:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
