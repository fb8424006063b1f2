"""PostgreSQL and Valkey together, for `make dev` and the tests.

`python -m deploy.local.stack --data-dir DIR --print-env` runs both in the foreground and
prints the CHIRP_* URLs to use; Ctrl-C stops them.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from deploy.local.postgres import EmbeddedPostgres
from deploy.local.valkey import EmbeddedValkey


class LocalStack:
    def __init__(self, data_dir: Path, pg_port: int | None = None,
                 redis_port: int | None = None) -> None:
        self.postgres = EmbeddedPostgres(Path(data_dir) / "postgres", pg_port)
        self.valkey = EmbeddedValkey(Path(data_dir) / "valkey", redis_port)
        self.postgres_url = ""
        self.redis_url = ""

    def start(self) -> None:
        self.postgres_url = self.postgres.start()
        try:
            self.redis_url = self.valkey.start()
        except BaseException:
            self.postgres.stop()
            raise

    def stop(self) -> None:
        try:
            self.valkey.stop()
        finally:
            self.postgres.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".chirp"))
    parser.add_argument("--pg-port", type=int, default=54329)
    parser.add_argument("--redis-port", type=int, default=63799)
    parser.add_argument("--print-env", action="store_true")
    args = parser.parse_args()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with LocalStack(args.data_dir, args.pg_port, args.redis_port) as stack:
        if args.print_env:
            print(f"CHIRP_POSTGRES_URL={stack.postgres_url}")
            print(f"CHIRP_REDIS_URL={stack.redis_url}", flush=True)
        while not stopping:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
