"""Plumbing shared by the JVM servers run from Maven Central jars (docs/backends.md)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from deploy.local._proc import Server, death_signal_prefix, log_tail
from deploy.local.ports import port_in_use

POMS = Path(__file__).parent / "jvm"
LOG_ROTATE_BYTES = 64 << 20


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not os.access(found, os.X_OK):
        raise RuntimeError("java (17) is needed for Kafka and Cassandra: apt-get install "
                           "openjdk-17-jdk-headless maven")
    return found


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """A lock shared by every process on the machine (the servers' ports are too)."""
    with open(Path(tempfile.gettempdir()) / f"chirp-{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def classpath(pom: Path, cache_dir: Path) -> str:
    """The runtime classpath of `pom`, resolved by Maven once per pom content."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"classpath-{digest}.txt"
    if cached.exists():
        cp = cached.read_text().strip()
        if all(Path(jar).exists() for jar in cp.split(os.pathsep)):
            return cp
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn is needed to fetch the Kafka and Cassandra jars: "
                           "apt-get install maven")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    # One mvn at a time: Maven 3's local repository is not safe for concurrent downloads.
    with machine_lock("mvn"):
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
             "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={tmp}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
    if done.returncode:
        raise RuntimeError(f"mvn could not resolve {pom}:\n{done.stdout[-3000:]}{done.stderr}")
    tmp.rename(cached)
    return cached.read_text().strip()


def _cmdline(pid: int) -> list[bytes]:
    """The process's arguments; none for a zombie (it has exited) or a vanished pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        if stat[stat.rindex(b")") + 2:].startswith(b"Z"):
            return []
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return []


def alive(pid: int, tag: str) -> bool:
    return os.fsencode(tag) in _cmdline(pid)


def find(tag: str) -> tuple[int, Path] | None:
    """(pid, data dir) of the live process whose command line has the argument `tag`."""
    want = os.fsencode(tag)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if want in args:
            for arg in args:
                if arg.startswith(b"-Dchirp.data_dir="):
                    return int(entry.name), Path(os.fsdecode(arg.split(b"=", 1)[1]))
    return None


class JvmServer(Server):
    """One JVM server on fixed ports. Subclasses say how to configure, run and probe it.

    `detached=False`: the server dies with the thread that started it (setpriv pdeathsig);
    `detached=True`: it outlives the starting process, e.g. for `make backends`."""

    name: str  # "kafka": the tag, the lock, the file names
    title: str  # "Kafka": for messages
    pom: Path
    ready_timeout: float = 120

    def __init__(self, data_dir: Path, port: int, detached: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.detached = detached
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None

    def ports(self) -> list[int]:
        """Every port the server binds: all must be free before it is launched."""
        return [self.port]

    def prepare(self, cp: str) -> None:
        """Write config files, format storage: whatever must precede the first launch."""

    def command(self, cp: str) -> list[str]:
        raise NotImplementedError

    def probe(self) -> bool:
        """True once the server answers clients and is the one running on our data dir."""
        raise NotImplementedError

    @property
    def tag(self) -> str:
        return f"-Dchirp.server={self.name}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    def jvm_tags(self) -> list[str]:
        return [self.tag, f"-Dchirp.data_dir={self.data_dir}"]

    def user_opts(self) -> list[str]:
        """CHIRP_BACKENDS_JVM_OPTS, last so they win (docs/backends.md)."""
        return shlex.split(os.environ.get("CHIRP_BACKENDS_JVM_OPTS", ""))

    def _adopt(self) -> int | None:
        """The running server's pid, adopting its data dir (it may be another checkout's)."""
        if self.pid is not None and alive(self.pid, self.tag):
            return self.pid
        found = find(self.tag)
        self.pid, self.data_dir = (found[0], found[1]) if found else (None, self.data_dir)
        return self.pid

    def is_running(self) -> bool:
        return self._adopt() is not None

    def start(self) -> bool:
        """Start unless running, and wait until it serves clients. True if we launched it."""
        with machine_lock(f"{self.name}-{self.port}"):
            own = self.data_dir
            if self._adopt() is not None and not self.pid_path.exists():
                # Left running by a deleted checkout: it cannot serve, so replace it.
                self.kill()
                self.data_dir = own
            launched = self._adopt() is None
            if launched:
                self._launch()
            try:
                self._wait_ready()
            except BaseException:
                if launched:
                    self.kill()
                raise
        return launched

    def _launch(self) -> None:
        taken = [p for p in self.ports() if port_in_use(p)]
        if taken:
            raise RuntimeError(f"port(s) {taken} taken by another process; "
                               f"cannot start {self.title} on them")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cp = classpath(self.pom, self.data_dir)
        self.prepare(cp)
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        prefix = [] if self.detached else death_signal_prefix(signal.SIGTERM)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== chirp: starting {self.title} at {time.ctime()}\n".encode())
            log.flush()
            # Own session: a Ctrl-C in the starting terminal does not reach the server.
            self.process = subprocess.Popen(
                [*prefix, *self.command(cp)], cwd=self.data_dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid = self.process.pid
        self.pid_path.write_text(f"{self.pid}\n")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if not self.is_running():
                raise RuntimeError(f"{self.title} exited during start-up:\n"
                                   f"{log_tail(self.log_path, 30)}")
            if self.probe():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.title} not ready after {self.ready_timeout} s:\n"
                                   f"{log_tail(self.log_path, 30)}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, the server's clean shutdown; SIGKILL if it takes longer than `timeout`."""
        pid = self._adopt()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        pid = self._adopt()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # own session: its group id is its pid
            self._wait_exit(pid, 30)
        self._forget()

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """Until the process is gone and its ports are free (they close just after)."""
        deadline = time.monotonic() + timeout
        while alive(pid, self.tag) or any(port_in_use(p) for p in self.ports()):
            if time.monotonic() > deadline:
                return not alive(pid, self.tag)
            time.sleep(0.1)
        return True

    def _forget(self) -> None:
        if self.process is not None:
            self.process.wait()  # ours: reap it
            self.process = None
        self.pid = None
        self.pid_path.unlink(missing_ok=True)
