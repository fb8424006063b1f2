"""A local Apache Kafka broker (KRaft) from Maven Central jars (docs/backends.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.local._jvm import POMS, JvmServer, java
from deploy.local.ports import port_in_use

PORT = 9092
CONTROLLER_PORT = 9093
HEAP = "512m"

LOG4J2 = """\
<Configuration status="warn">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <!-- Every client the broker makes dumps its whole config at INFO. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="warn"/>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


def _cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints: 16 random bytes, unpadded base64url,
    never starting with '-' (it would read as a command-line flag)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class LocalKafka(JvmServer):
    name = "kafka"
    title = "Kafka"
    pom = POMS / "kafka" / "pom.xml"
    ready_timeout = 90

    def __init__(self, data_dir: Path, port: int = PORT, controller_port: int = CONTROLLER_PORT,
                 detached: bool = False) -> None:
        super().__init__(data_dir, port, detached)
        self.controller_port = controller_port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def cluster_id(self) -> str | None:
        """From the storage's meta.properties: set when the storage was formatted."""
        with contextlib.suppress(OSError):
            for line in (self.logs_dir / "meta.properties").read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cluster.id":
                    return value.strip()
        return None

    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set: the storage is formatted without --standalone.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.logs_dir),
            # One broker: every internal topic with one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # A consumer group's first join needn't wait 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self, cp: str) -> None:
        (self.data_dir / "server.properties").write_text(self._properties())
        (self.data_dir / "log4j2.xml").write_text(LOG4J2)
        if self.cluster_id is not None:
            return
        # Never started (or a format cut short): format afresh.
        shutil.rmtree(self.logs_dir, ignore_errors=True)
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                [java(), "-Xmx256m", *self._logging(), "-cp", cp, "kafka.tools.StorageTool",
                 "format", "-t", _cluster_id(), "-c", str(self.data_dir / "server.properties")],
                cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        if done.returncode or self.cluster_id is None:
            raise RuntimeError(f"formatting Kafka storage in {self.logs_dir} failed; "
                               f"see {self.log_path}")

    def _logging(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}"]

    def command(self, cp: str) -> list[str]:
        return [
            java(), *self.jvm_tags(), f"-Xms{HEAP}", f"-Xmx{HEAP}",
            # As kafka-run-class.sh runs the broker.
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", *self._logging(),
            *self.user_opts(), "-cp", cp, "kafka.Kafka", str(self.data_dir / "server.properties"),
        ]

    def probe(self) -> bool:
        """A metadata request answered, with the cluster id of our storage (so it is not
        some other broker that took the port)."""
        if not port_in_use(self.port):
            return False
        try:
            answer = _in_thread(_describe_cluster(self.bootstrap_servers))
        except Exception:
            return False
        return answer.get("cluster_id") == self.cluster_id


async def _describe_cluster(bootstrap: str) -> dict:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        return await admin.describe_cluster()
    finally:
        await admin.close()


def _in_thread(coro: object) -> dict:
    """Run `coro` on a fresh event loop in another thread: callers may be inside a loop.
    aiokafka logs every refused connection at ERROR; while a broker starts that is noise."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]
    finally:
        quiet.setLevel(level)
