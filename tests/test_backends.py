"""The local Kafka, Cassandra and S3 serve clients and survive a stop."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra.cluster import Cluster

from deploy.local.backends import servers
from tests.backends import Backends, ensure_backends

KEYSPACE = "chirp_backends_test"


@pytest.fixture(scope="module")
def backends() -> Backends:
    return ensure_backends()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"test-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        got: list[bytes] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                got.append((await consumer.getone()).value)
        return got
    finally:
        await consumer.stop()


async def test_kafka_round_trip(backends: Backends) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    await _produce(backends.kafka_bootstrap, topic, [b"one", b"two"])
    assert await _consume(backends.kafka_bootstrap, topic, 2) == [b"one", b"two"]


async def test_kafka_stop_start_keeps_messages(backends: Backends) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    await _produce(backends.kafka_bootstrap, topic, [b"before"])
    await asyncio.to_thread(backends.kafka.stop)
    assert not backends.kafka.is_running()
    assert await asyncio.to_thread(backends.kafka.start)  # launched afresh
    await _produce(backends.kafka_bootstrap, topic, [b"after"])
    assert await _consume(backends.kafka_bootstrap, topic, 2) == [b"before", b"after"]


async def test_a_server_whose_data_dir_was_deleted_is_replaced(backends: Backends,
                                                               tmp_path) -> None:
    """A server left running by a deleted checkout is replaced, not adopted."""
    ours = backends.kafka.data_dir
    await asyncio.to_thread(backends.kafka.stop)
    orphan = servers(tmp_path / "gone", only="kafka")["kafka"]
    assert await asyncio.to_thread(orphan.start)
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone" / "kafka").mkdir(parents=True)  # a new checkout at the same path
    fresh = servers(ours.parent, only="kafka")["kafka"]
    assert await asyncio.to_thread(fresh.start)  # launched, not adopted
    assert fresh.pid != orphan.pid and fresh.data_dir == ours
    assert not orphan.is_running() or orphan.pid == fresh.pid
    backends.kafka.pid = None  # the fixture's handle adopts the new process
    topic = f"replaced-{uuid.uuid4().hex[:8]}"
    await _produce(backends.kafka_bootstrap, topic, [b"served"])
    assert await _consume(backends.kafka_bootstrap, topic, 1) == [b"served"]


def _session(backends: Backends):  # -> (Cluster, Session)
    cluster = Cluster(backends.cassandra.contact_points, port=backends.cassandra.port)
    session = cluster.connect()
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.kv (k text PRIMARY KEY, v text)")
    return cluster, session


def test_cassandra_query(backends: Backends) -> None:
    cluster, session = _session(backends)
    try:
        assert session.execute("SELECT release_version FROM system.local").one() \
            .release_version.startswith("5.0")
        key = uuid.uuid4().hex
        session.execute(f"INSERT INTO {KEYSPACE}.kv (k, v) VALUES (%s, %s)", (key, "x"))
        assert session.execute(f"SELECT v FROM {KEYSPACE}.kv WHERE k = %s", (key,)).one().v == "x"
    finally:
        cluster.shutdown()


def test_cassandra_stop_start_keeps_rows(backends: Backends) -> None:
    cluster, session = _session(backends)
    key = uuid.uuid4().hex
    try:
        session.execute(f"INSERT INTO {KEYSPACE}.kv (k, v) VALUES (%s, %s)", (key, "kept"))
    finally:
        cluster.shutdown()
    backends.cassandra.stop()
    assert not backends.cassandra.is_running()
    assert backends.cassandra.start()
    cluster, session = _session(backends)
    try:
        assert session.execute(f"SELECT v FROM {KEYSPACE}.kv WHERE k = %s", (key,)).one().v \
            == "kept"
    finally:
        cluster.shutdown()


def test_s3_stop_start_keeps_objects_and_buckets(backends: Backends) -> None:
    s3 = backends.s3
    client = s3.client()
    key = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        client.put_object(Bucket="chirp-media", Key=key, Body=b"before")
        s3.stop()
        assert not s3.is_running()
        assert s3.start()  # launched afresh
        assert client.get_object(Bucket="chirp-media", Key=key)["Body"].read() == b"before"
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert {"chirp-media", "chirp-archive"} <= names
    finally:
        client.delete_object(Bucket="chirp-media", Key=key)
        client.close()
