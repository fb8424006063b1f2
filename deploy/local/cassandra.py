"""A local Apache Cassandra node from Maven Central jars (docs/backends.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from deploy.local._jvm import POMS, JvmServer, java
from deploy.local.ports import port_in_use

PORT = 9042
STORAGE_PORT = 7100  # 7000-7005 belong to the local Valkey cluster
HEAP_MAX = "1g"
# Cassandra mlockall()s the heap it has at start: a small initial heap starts faster.
HEAP_START = "256m"

LOGBACK = """\
<configuration>
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="out"/></root>
</configuration>
"""

# From Cassandra 5.0's conf/jvm17-server.options: the JDK internals it reaches into.
JPMS = [
    *(f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
        "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
        "jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach",
    )),
    *(f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader",
        "java.base/jdk.internal.ref", "java.base/jdk.internal.reflect",
        "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect",
        "jdk.compiler/com.sun.tools.javac", "java.base/java.lang", "java.base/java.util",
    )),
]


class LocalCassandra(JvmServer):
    name = "cassandra"
    title = "Cassandra"
    pom = POMS / "cassandra" / "pom.xml"
    ready_timeout = 180

    def __init__(self, data_dir: Path, port: int = PORT, storage_port: int = STORAGE_PORT,
                 detached: bool = False) -> None:
        super().__init__(data_dir, port, detached)
        self.storage_port = storage_port
        self.host = "127.0.0.1"

    @property
    def contact_points(self) -> list[str]:
        return [self.host]

    @property
    def store(self) -> Path:
        return self.data_dir / "data"

    def ports(self) -> list[int]:
        return [self.port, self.storage_port]

    def _yaml(self) -> str:
        s = self.store
        return f"""\
cluster_name: chirp
# One node: one token, set rather than allocated.
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
# A new cluster: all of 5.0's formats and features, no 4.x compatibility.
storage_compatibility_mode: NONE
data_file_directories: [{s / "data"}]
commitlog_directory: {s / "commitlog"}
hints_directory: {s / "hints"}
saved_caches_directory: {s / "saved_caches"}
cdc_raw_directory: {s / "cdc_raw"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{self.storage_port}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {self.storage_port}
native_transport_port: {self.port}
start_native_transport: true
endpoint_snitch: SimpleSnitch
dynamic_snitch: false
hinted_handoff_enabled: false
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
# Tests TRUNCATE and DROP often: no snapshot of each.
auto_snapshot: false
# A 2-core box under a test run is slow at times; the 2 s defaults would fail requests.
read_request_timeout: 10000ms
write_request_timeout: 10000ms
range_request_timeout: 20000ms
request_timeout: 20000ms
"""

    def prepare(self, cp: str) -> None:
        (self.data_dir / "cassandra.yaml").write_text(self._yaml())
        (self.data_dir / "logback.xml").write_text(LOGBACK)

    def command(self, cp: str) -> list[str]:
        return [
            java(), *self.jvm_tags(), f"-Xms{HEAP_START}", f"-Xmx{HEAP_MAX}", "-Xss256k",
            # G1 as jvm17-server.options sets it.
            "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
            "-XX:G1HeapRegionSize=16m", "-XX:MaxGCPauseMillis=300",
            "-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem",
            "-Djdk.attach.allowAttachSelf=true", *JPMS,
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true", "-Dio.netty.allocator.maxOrder=11",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dcassandra.config=file://{self.data_dir / 'cassandra.yaml'}",
            f"-Dlogback.configurationFile={self.data_dir / 'logback.xml'}",
            f"-Dcassandra.logdir={self.data_dir}", f"-Dcassandra.storagedir={self.store}",
            "-Dcassandra-foreground=yes",
            # One node: no peers' gossip to wait for.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            *self.user_opts(), "-cp", cp, "org.apache.cassandra.service.CassandraDaemon",
        ]

    def probe(self) -> bool:
        """A CQL query answered by the node whose data directory is ours."""
        if not port_in_use(self.port):
            return False
        from cassandra.cluster import Cluster, NoHostAvailable

        quiet = logging.getLogger("cassandra")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # refused connections while it starts: noise
        cluster = Cluster(self.contact_points, port=self.port, connect_timeout=3,
                          control_connection_timeout=3)
        try:
            session = cluster.connect()
            session.execute("SELECT release_version FROM system.local").one()
            row = session.execute("SELECT value FROM system_views.settings "
                                  "WHERE name = 'data_file_directories'").one()
            return row is not None and str(self.store / "data") in row.value
        except (NoHostAvailable, OSError):
            return False
        except Exception as e:  # OperationTimedOut, Unavailable... while it starts
            if type(e).__module__.startswith("cassandra"):
                return False
            raise
        finally:
            cluster.shutdown()
            quiet.setLevel(level)
