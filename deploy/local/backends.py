"""Kafka, Cassandra, S3 and a Valkey cluster as local daemons (docs/backends.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.local._jvm import JvmServer
from deploy.local.cassandra import LocalCassandra
from deploy.local.kafka import LocalKafka
from deploy.local.s3proxy import LocalS3
from deploy.local.valkey_cluster import ValkeyCluster

NAMES = ("kafka", "cassandra", "s3", "valkey-cluster")
VALKEY_CLUSTER_PORT = 7000


def default_data_dir() -> Path:
    env = os.environ.get("CHIRP_BACKENDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".chirp" / "backends"


def servers(data_dir: Path | None = None, only: str | None = None,
            detached: bool = True) -> dict[str, JvmServer | ValkeyCluster]:
    base = Path(data_dir) if data_dir else default_data_dir()
    made: dict[str, JvmServer | ValkeyCluster] = {
        "kafka": LocalKafka(base / "kafka", detached=detached),
        "cassandra": LocalCassandra(base / "cassandra", detached=detached),
        "s3": LocalS3(base / "s3", detached=detached),
        "valkey-cluster": ValkeyCluster(base / "valkey-cluster", VALKEY_CLUSTER_PORT,
                                        detached=detached),
    }
    return {n: s for n, s in made.items() if only in (None, n)}


def address(server: JvmServer | ValkeyCluster) -> str:
    if isinstance(server, ValkeyCluster):
        return f"127.0.0.1:{server.nodes[0].port}-{server.nodes[-1].port}"
    return f"127.0.0.1:{server.port}"


def start_all(found: dict[str, JvmServer | ValkeyCluster], report: bool = True) -> None:
    """Start them side by side (each JVM spends its start-up mostly on one core); raise
    the first failure after all have had their go."""

    def one(server: JvmServer | ValkeyCluster) -> None:
        t0 = time.monotonic()
        launched = server.start()
        if report:
            how = f"started in {time.monotonic() - t0:.1f} s" if launched else "already running"
            print(f"{server.title} at {address(server)}: {how} (pid {server.pid}, "
                  f"data {server.data_dir})", flush=True)

    with ThreadPoolExecutor(len(found) or 1) as pool:
        futures = [pool.submit(one, s) for s in found.values()]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]


def stop_all(found: dict[str, JvmServer | ValkeyCluster], report: bool = True) -> None:
    def one(server: JvmServer | ValkeyCluster) -> None:
        was = server.is_running()
        t0 = time.monotonic()
        server.stop()
        if report:
            how = f"stopped in {time.monotonic() - t0:.1f} s" if was else "was not running"
            print(f"{server.title}: {how}", flush=True)

    with ThreadPoolExecutor(len(found) or 1) as pool:
        for f in [pool.submit(one, s) for s in found.values()]:
            f.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--data-dir", type=Path, help="default: .chirp/backends in the checkout")
    parser.add_argument("--only", choices=NAMES)
    args = parser.parse_args(argv)
    found = servers(args.data_dir, args.only)
    if args.command == "start":
        try:
            start_all(found)
        except Exception as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    elif args.command == "stop":
        stop_all(found)
    else:
        down = 0
        for server in found.values():
            if server.is_running():
                print(f"{server.title} at {address(server)}: running (pid {server.pid}, "
                      f"data {server.data_dir})")
            else:
                down += 1
                print(f"{server.title} at {address(server)}: not running")
        return 3 if down else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
