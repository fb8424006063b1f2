"""Kafka, Cassandra, S3 and the Valkey cluster for the tests; missing ones fail the run."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from deploy.local.backends import servers, start_all
from deploy.local.cassandra import LocalCassandra
from deploy.local.kafka import LocalKafka
from deploy.local.s3proxy import LocalS3
from deploy.local.valkey_cluster import ValkeyCluster


class BackendsUnavailable(RuntimeError):
    pass


def java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and os.access(f"{home}/bin/java", os.X_OK)))


@dataclass
class Backends:
    """Running servers; fault tests stop and start one on the same data."""

    kafka: LocalKafka
    cassandra: LocalCassandra
    s3: LocalS3
    valkey_cluster: ValkeyCluster

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap_servers


def ensure_backends() -> Backends:
    if not java_available():
        raise BackendsUnavailable(
            "java is not on PATH: Kafka and Cassandra need OpenJDK 17 and Maven "
            "(apt-get install openjdk-17-jdk-headless maven)")
    found = servers()
    try:
        start_all(found, report=False)
    except Exception as e:
        raise BackendsUnavailable(f"Kafka/Cassandra did not start: {e}") from e
    kafka, cassandra, s3 = found["kafka"], found["cassandra"], found["s3"]
    cluster = found["valkey-cluster"]
    assert isinstance(kafka, LocalKafka) and isinstance(cassandra, LocalCassandra)
    assert isinstance(s3, LocalS3) and isinstance(cluster, ValkeyCluster)
    return Backends(kafka, cassandra, s3, cluster)


def ensure_s3() -> LocalS3:
    """The S3 server alone (the object-store tests need no Kafka or Cassandra)."""
    if not java_available():
        raise BackendsUnavailable(
            "java is not on PATH: the local S3 server needs OpenJDK 17 and Maven "
            "(apt-get install openjdk-17-jdk-headless maven)")
    found = servers(only="s3")
    try:
        start_all(found, report=False)
    except Exception as e:
        raise BackendsUnavailable(f"the S3 server did not start: {e}") from e
    s3 = found["s3"]
    assert isinstance(s3, LocalS3)
    return s3
