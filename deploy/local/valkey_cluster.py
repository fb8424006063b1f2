"""A local Valkey cluster, formed without valkey-cli (docs/backends.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from deploy.local._proc import Server, death_signal_prefix, log_tail
from deploy.local.ports import free_port, port_in_use
from deploy.local.valkey import _binary

SLOTS = 16384
NODE_TIMEOUT_MS = 2000


class ClusterNode:
    def __init__(self, data_dir: Path, port: int, bus_port: int, detached: bool) -> None:
        self.data_dir = data_dir
        self.port = port
        self.bus_port = bus_port
        self.detached = detached
        self.pid_path = data_dir / "valkey.pid"
        self.log_path = data_dir / "valkey.log"
        self.process: subprocess.Popen | None = None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=1)

    @property
    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        with contextlib.suppress(OSError, ValueError):
            return int(self.pid_path.read_text().strip())
        return None

    def is_running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        if self.process is not None and self.process.poll() is not None:
            return False
        try:
            with self.client(1.0) as c:
                return c.info("server")["process_id"] == pid
        except (redis.RedisError, OSError):
            return False

    def start(self, persist: bool) -> bool:
        """False if it was already running."""
        if self.is_running():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; cannot start a Valkey node on it")
        cmd = [
            str(_binary()), "--port", str(self.port), "--cluster-port", str(self.bus_port),
            "--bind", "127.0.0.1", "--protected-mode", "no", "--dir", str(self.data_dir),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A shard failing over must not stop the others serving their slots.
            "--cluster-require-full-coverage", "no",
            "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
            "--save", "", "--logfile", str(self.log_path),
        ]
        if self.detached:
            cmd += ["--daemonize", "yes", "--pidfile", str(self.pid_path)]
            self.pid_path.unlink(missing_ok=True)
            subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        else:
            cmd = [*death_signal_prefix(signal.SIGTERM), *cmd, "--daemonize", "no"]
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.is_running():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Valkey node {self.port} exited:\n{log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Valkey node {self.port} not up:\n{log_tail(self.log_path)}")
            time.sleep(0.05)
        return True

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        pid = self.pid if self.is_running() else None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
            self.process = None
        while port_in_use(self.port):
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        self.stop(signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


class ValkeyCluster(Server):
    title = "Valkey cluster"

    def __init__(self, data_dir: Path, port: int | None = None, primaries: int = 3,
                 replicas: int = 1, detached: bool = False, persist: bool | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.primaries = primaries
        self.replicas = replicas
        self.detached = detached
        self.persist = detached if persist is None else persist
        count = primaries * (1 + replicas)
        if port is None:  # throwaway: any free ports, the bus ports too
            ports = [free_port() for _ in range(2 * count)]
            pairs = list(zip(ports[:count], ports[count:], strict=True))
        else:
            pairs = [(port + i, port + i + 10000) for i in range(count)]
        self.nodes = [ClusterNode(self.data_dir / str(p), p, b, detached) for p, b in pairs]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid

    @property
    def url(self) -> str:
        """Two seeds are enough: the client learns the rest from CLUSTER SLOTS."""
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])
        return f"redis+cluster://{seeds}"

    def is_running(self) -> bool:
        return all(n.is_running() for n in self.nodes) and self._healthy()

    def start(self) -> bool:
        """Start every node and form the cluster if it is not formed; False if it was all
        running and healthy already."""
        launched = [n.start(self.persist) for n in self.nodes]
        if not any(launched) and self._healthy():
            return False
        if not self._formed():
            self._form()
        self.wait_healthy()
        return True

    def stop(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(ClusterNode.stop, self.nodes))

    def wipe(self) -> None:
        """Stop every node and delete its data (and cluster configuration)."""
        self.stop()
        for n in self.nodes:
            for f in n.data_dir.rglob("*"):
                if f.is_file():
                    f.unlink()

    def _formed(self) -> bool:
        try:
            with self.nodes[0].client() as c:
                info = c.cluster("info")
        except (redis.RedisError, OSError):
            return False
        return int(info.get("cluster_slots_assigned", 0)) == SLOTS

    def _form(self) -> None:
        clients = [n.client() for n in self.nodes]
        try:
            ids = [c.cluster("myid") for c in clients]
            ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
            for n in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port, n.bus_port)
            self._until(lambda: all(len(_nodes(c)) == len(self.nodes) for c in clients),
                        "every node to know every other")
            step = SLOTS // self.primaries
            for i in range(self.primaries):
                lo, hi = i * step, (SLOTS - 1 if i == self.primaries - 1 else (i + 1) * step - 1)
                clients[i].execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            for k in range(self.replicas):
                for i in range(self.primaries):
                    replica = clients[self.primaries * (1 + k) + i]
                    self._until(lambda r=replica, p=ids[i]: "master" in _nodes(r).get(p, ""),
                                "replicas to see their primary's slots")
                    replica.execute_command("CLUSTER", "REPLICATE", ids[i])
        finally:
            for c in clients:
                c.close()

    def _healthy(self) -> bool:
        try:
            for n in self.nodes:
                with n.client() as c:
                    info = c.cluster("info")
                    # cluster_state stays 'ok' with slots uncovered (full coverage is
                    # not required), so every node must see every slot served
                    if info.get("cluster_state") != "ok" or \
                            int(info.get("cluster_slots_ok", 0)) != SLOTS or \
                            int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                        return False
                    # A replica that has not synced yet cannot take over (its data is too old)
                    repl = c.info("replication")
                    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                        return False
            with self.nodes[0].client() as c:
                shards = c.execute_command("CLUSTER", "SHARDS")
            return len(shards) == self.primaries and all(
                len(_shard_nodes(s)) == 1 + self.replicas for s in shards
            )
        except (redis.RedisError, OSError):
            return False

    def wait_healthy(self, timeout: float = 60) -> None:
        self._until(self._healthy, "the cluster to be ok with every replica synced", timeout)

    @staticmethod
    def _until(check, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def primary_ports(self) -> list[int]:
        with self.nodes[0].client() as c:
            out = []
            for line in _nodes(c).values():
                parts = line.split()
                if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8:
                    out.append(int(parts[1].split(":")[1].split("@")[0]))
        return sorted(out)

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def move_slot(self, slot: int, source: int, target: int, batch: int = 100,
                  pause: float = 0.0) -> None:
        """Move a slot and its keys to another primary: SETSLOT IMPORTING and MIGRATING,
        MIGRATE `batch` keys at a time after `pause` s each (so a load sees the slot half
        moved: ASK redirections, TRYAGAIN), then SETSLOT NODE on every primary."""
        src, dst = self.node(source).client(5), self.node(target).client(5)
        try:
            dst_id = dst.cluster("myid")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.cluster("myid"))
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while True:
                time.sleep(pause)
                moving = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
                if not moving:
                    break
                src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *moving)
            for port in self.primary_ports():
                with self.node(port).client(5) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        finally:
            src.close()
            dst.close()


def _nodes(client: redis.Redis) -> dict[str, str]:
    """CLUSTER NODES as node id -> its line."""
    raw = client.execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else raw
    return {line.split()[0]: line for line in text.splitlines() if line.strip()}


def _shard_nodes(shard) -> list:
    fields = dict(zip(shard[::2], shard[1::2], strict=True)) if isinstance(shard, list) \
        else shard
    nodes = fields.get(b"nodes", fields.get("nodes", []))
    return nodes
