"""PostgreSQL and Valkey together, for `make dev` and the tests (docs/backends.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from deploy.local.postgres import EmbeddedPostgres
from deploy.local.valkey import EmbeddedValkey

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class LocalStack:
    """Both servers, under `data_dir/postgres` and `data_dir/valkey`. As a context manager
    (in the main thread) SIGTERM and SIGHUP also unwind it, like Ctrl-C, so the servers
    are stopped whichever way the process is told to quit."""

    def __init__(self, data_dir: Path, pg_port: int | None = None,
                 redis_port: int | None = None) -> None:
        self.postgres = EmbeddedPostgres(Path(data_dir) / "postgres", pg_port)
        self.valkey = EmbeddedValkey(Path(data_dir) / "valkey", redis_port)
        self._saved: dict[int, object] = {}

    @property
    def postgres_url(self) -> str:
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        return self.valkey.url

    def start(self) -> None:
        try:
            self.postgres.start()
            self.valkey.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.valkey.stop()
        finally:
            self.postgres.stop()

    def __enter__(self) -> LocalStack:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._saved[sig] = signal.signal(sig, _interrupt)
        try:
            self.start()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # A second signal must not cut the shutdown short.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self.stop()
        finally:
            self._restore()
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".chirp"))
    parser.add_argument("--pg-port", type=int, help="default: a free port")
    parser.add_argument("--redis-port", type=int, help="default: a free port")
    parser.add_argument("--print-env", action="store_true",
                        help="print CHIRP_POSTGRES_URL= and CHIRP_REDIS_URL= lines")
    args = parser.parse_args(argv)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python then
    # leaves it ignored.
    signal.signal(signal.SIGINT, _interrupt)
    try:
        with LocalStack(args.data_dir, args.pg_port, args.redis_port) as stack:
            if args.print_env:
                print(f"CHIRP_POSTGRES_URL={stack.postgres_url}")
                print(f"CHIRP_REDIS_URL={stack.redis_url}")
            else:
                print(f"PostgreSQL at {stack.postgres_url}, Valkey at {stack.redis_url}")
            sys.stdout.flush()
            print("Ctrl-C stops both", file=sys.stderr, flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
